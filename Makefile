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

test: $(STAMP) system-deps
	$(PY) -m pytest

report: $(STAMP)
	$(VENV)/bin/lootlab report --profile $(PROFILE) --out reports

bench: $(STAMP)
	$(PY) -m lootlab.benchmarks

lab: $(STAMP)
	$(VENV)/bin/lootlab lab

clean:
	rm -rf reports data/results .pytest_cache .hypothesis
