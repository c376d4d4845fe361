# The two set-up commands of the README:
#   make report   # the main job: execute the notebooks (standard profile, ~10 min), export
#                 # HTML reports to reports/; PROFILE=quick (a smoke run) or PROFILE=full
#   make test     # the test suite (what .ci/run runs)
# Each one installs what it needs: a local venv (.venv) and the Debian packages below.

PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
STAMP   = $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
PROFILE ?= standard
APT_PACKAGES = chromium wrk
SUDO = $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: test report bench lab system-deps venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml setup.py lootlab/_kernels.c
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	rm -f $(VENV)/.installed-*
	touch $@

system-deps:
	@missing=""; for p in $(APT_PACKAGES); do command -v $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

# The grpc-js interop client's modules (tests/test_interop_js.py): `npm ci` when they are
# missing or older than the lockfile, and only where npm exists (the test skips otherwise,
# and fails under CI=true).
JS_INTEROP = tests/interop_js

test: $(STAMP) system-deps
	@if ! command -v npm >/dev/null 2>&1; then \
	  echo "npm not found: skipping the grpc-js interop client's install ($(JS_INTEROP))"; \
	elif [ ! -d $(JS_INTEROP)/node_modules ] || \
	     [ $(JS_INTEROP)/package-lock.json -nt $(JS_INTEROP)/node_modules ]; then \
	  echo "installing the grpc-js interop client's node modules ($(JS_INTEROP): npm ci)"; \
	  (cd $(JS_INTEROP) && npm ci --silent --no-audit --no-fund) && touch $(JS_INTEROP)/node_modules; \
	fi
	$(PY) -m pytest

report: $(STAMP)
	$(VENV)/bin/lootlab report --profile $(PROFILE) --out reports

bench: $(STAMP)
	$(PY) -m lootlab.benchmarks

lab: $(STAMP)
	$(VENV)/bin/lootlab lab

clean:
	rm -rf reports data/results .pytest_cache .hypothesis
