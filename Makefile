# Quick start: `make demo` and `make test` create the environment when it is missing.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The default representation (mini-clip pretrained on salient captions), probed on two tasks beside every
# baseline: a CNN trained on the labels, the orbit model, raw pixels and random weights. The orbit model
# averages over translate:2+hflip (8 elements) rather than the default translate:4+hflip (32): the same design
# point at a quarter of the evaluation cost, so the demo stays under 10 minutes on 2 cores.
demo: $(STAMP)
	$(BIN)/clipprobe extract
	$(BIN)/clipprobe probe --task traffic-light --task pedestrian-side --baselines cnn,orbit-cnn:translate:2+hflip,pixels,random
	$(BIN)/clipprobe report

test: $(STAMP)
	$(BIN)/python -m pytest -q

# Speed figures are ratios measured side by side in one run; see benchmarks/.
bench: $(STAMP)
	$(BIN)/python benchmarks/precision.py
	$(BIN)/python benchmarks/first_extract.py
	$(BIN)/python benchmarks/probe_sweep.py

clean:
	rm -rf results reports
