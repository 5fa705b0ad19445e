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

.PHONY: setup system-libs browser lint test demo bench bench-gpu clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(PY) system-libs
	$(PY) -m pip install --quiet $(TORCH_SPEC)
	$(PY) -m pip install --quiet -e ".[$(EXTRAS)]"
	rm -f $(VENV)/.cfld-installed-*
	touch $(STAMP)

setup: $(STAMP)

# Debian packages the set-up needs, installed with apt-get when missing and we are root (CI is); elsewhere a
# note. libgl1/libglib2.0-0: opencv-contrib-python, which mediapipe pulls in, loads them with cv2.
# chromium: the web app's end-to-end test drives Debian's browser (Playwright never downloads one here).
SYSTEM_LIBS := libgl1 libglib2.0-0
BROWSER := chromium
define apt_install
	@missing=""; for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -z "$$missing" ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "apt-get install$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	else echo "note: missing Debian packages:$$missing (as root: apt-get install$$missing)"; fi
endef

system-libs:
	$(call apt_install,$(SYSTEM_LIBS))

browser:
	$(call apt_install,$(BROWSER))

test: $(STAMP) browser lint
	$(PY) -m pytest -q $(PYTEST_ARGS)

# pyflakes, import order, bugbear, pyupgrade, 120 columns ([tool.ruff] in pyproject.toml); make test runs it first
lint: $(STAMP)
	$(VENV)/bin/ruff check .

demo: $(STAMP)
	$(VENV)/bin/cfld demo --output demo_output

bench: $(STAMP)
	$(PY) benchmarks/pose_rendering.py

# on a machine with a GPU: ours vs the original-style loop, fp16/bf16, batch 1/8/32, paper and fast sampling
bench-gpu: $(STAMP)
	$(PY) benchmarks/gpu.py

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache demo_output
