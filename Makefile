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

# The curation experiment: mini-clip pretrained under salient, descriptive and mixed:0.1 captions (same images,
# steps and seed), probed on every dashcam task beside the baselines (CNN, orbit CNN, pixels, random weights),
# with invariance scores; then the report, headline table first. Under 10 minutes on 2 cores from an empty cache.
demo: $(STAMP)
	$(BIN)/clipprobe experiment curation
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
