"""Jobs: one typed job per kind of row (a probe on features, a network trained on the labels, zero-shot), each
declaring its kind and building its key; the runner runs them (clipprobe.runner)."""
