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

# The default representation (mini-clip pretrained on salient captions) and two controls:
# the same architecture with random weights, and with captions that describe everything.
TASKS := traffic-light pedestrian car-colour
demo: $(STAMP)
	$(BIN)/clipprobe extract
	for t in $(TASKS); do $(BIN)/clipprobe probe --task $$t || exit 1; done
	for t in $(TASKS); do $(BIN)/clipprobe probe --task $$t --pretrained random || exit 1; done
	for t in $(TASKS); do $(BIN)/clipprobe probe --task $$t --pretrained dashcam-descriptive || exit 1; done
	$(BIN)/clipprobe report

test: $(STAMP)
	$(BIN)/python -m pytest -q

# Speed figures are ratios measured side by side in one run; see benchmarks/.
bench: $(STAMP)
	$(BIN)/python benchmarks/precision.py

clean:
	rm -rf results reports
