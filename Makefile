# Two entry points for a fresh machine:
#   make demo   set everything up (.venv) and run the offline demo
#   make test   set everything up (.venv) and run the test suite (what CI runs)
PYTHON ?= python3
VENV ?= .venv
# torch is installed first and explicitly so that pip takes the CPU/GPU build you choose here
# (on this project's CI machines these releases lie on local disk). Override on your machine, e.g.
#   make test TORCH_SPEC="torch torchvision --index-url https://download.pytorch.org/whl/cpu"
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
EXTRAS ?= dev
STAMP := $(VENV)/.cfld-installed-$(EXTRAS)
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: setup test demo bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet $(TORCH_SPEC)
	$(PY) -m pip install --quiet -e ".[$(EXTRAS)]"
	rm -f $(VENV)/.cfld-installed-*
	touch $(STAMP)

setup: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q $(PYTEST_ARGS)

demo: $(STAMP)
	$(VENV)/bin/cfld demo --output demo_output

bench: $(STAMP)
	$(PY) benchmarks/pose_rendering.py

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache demo_output
