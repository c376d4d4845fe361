# The two set-up commands of the README:
#   make report   # the main job: execute the notebooks (standard size, ~18 min), export
#                 # HTML reports to reports/; SIZE=quick (a smoke run) or SIZE=full;
#                 # OUT=dir elsewhere; REPLACE=1 to replace a larger report in OUT
#   make test     # the test suite (what .ci/run runs)
# Each one installs what it needs: a local venv (.venv) and the Debian packages below.

PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
STAMP   = $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
# the report size; PROFILE= is its old name, still honoured (with a notice)
SIZE ?= $(or $(PROFILE),standard)
# where the report goes, and whether it may replace a larger one there (lootlab report --replace)
OUT ?= reports
REPLACE ?=
REPORT_ARGS = --size $(SIZE) --out $(OUT) $(if $(REPLACE),--replace)
# command[:Debian package] (perf comes in linux-perf)
APT_PACKAGES = chromium wrk perf:linux-perf
SUDO = $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: test report bench lab system-deps venv clean cpp-server cpp-server-if-possible

venv: $(STAMP)

$(STAMP): pyproject.toml setup.py lootlab/_kernels.c
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	rm -f $(VENV)/.installed-*
	touch $@

system-deps:
	@missing=""; for p in $(APT_PACKAGES); do command -v $${p%%:*} >/dev/null 2>&1 || missing="$$missing $${p#*:}"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi
	@missing=""; for p in $(CPP_APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian packages for the C++ server:$$missing"; \
	    ($(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null) \
	      || echo "could not install$$missing: the C++ server (make cpp-server) will not be built"; \
	  else \
	    echo "no apt-get: cannot install$$missing; the C++ server (make cpp-server) will not be built"; \
	  fi; \
	fi

# The C++ loot server (lootlab/remote/cpp, docs/cpp-server.md): build/lootlab-server, its
# protobuf / gRPC code generated from lootlab/remote/loot.proto into build/cpp.
CPP_APT_PACKAGES = g++ pkg-config libgrpc++-dev protobuf-compiler-grpc
CPP_SERVER = build/lootlab-server
CPP_GEN    = build/cpp
CPP_DIR    = lootlab/remote/cpp
CPP_OBJS   = $(patsubst $(CPP_DIR)/%.cc,$(CPP_GEN)/%.o,$(wildcard $(CPP_DIR)/*.cc)) \
             $(CPP_GEN)/loot.pb.o $(CPP_GEN)/loot.grpc.pb.o
CPP_FLAGS  = -std=c++17 -O2 -Wall -Wextra -I$(CPP_GEN) -I$(CPP_DIR)
GRPC_PKGS  = grpc++ protobuf

cpp-server: $(CPP_SERVER)

$(CPP_SERVER): $(CPP_OBJS)
	$(CXX) -o $@ $(CPP_OBJS) $$(pkg-config --libs $(GRPC_PKGS))

$(CPP_GEN)/.proto: lootlab/remote/loot.proto
	@mkdir -p $(CPP_GEN)
	protoc -Ilootlab/remote --cpp_out=$(CPP_GEN) --grpc_out=$(CPP_GEN) \
	  --plugin=protoc-gen-grpc=$$(command -v grpc_cpp_plugin) $<
	@touch $@

$(CPP_GEN)/loot.pb.cc $(CPP_GEN)/loot.grpc.pb.cc: $(CPP_GEN)/.proto ;

$(CPP_GEN)/%.o: $(CPP_DIR)/%.cc $(wildcard $(CPP_DIR)/*.h) $(CPP_GEN)/.proto
	$(CXX) $(CPP_FLAGS) $$(pkg-config --cflags $(GRPC_PKGS)) -c $< -o $@

$(CPP_GEN)/loot.pb.o $(CPP_GEN)/loot.grpc.pb.o: $(CPP_GEN)/%.o: $(CPP_GEN)/%.cc
	$(CXX) $(CPP_FLAGS) $$(pkg-config --cflags $(GRPC_PKGS)) -c $< -o $@

# make test builds the C++ server where the toolchain and libraries are, else says why not
# (tests/integration/test_cpp_server.py then skips, and fails under CI=true if the toolchain
# is there).
cpp-server-if-possible: system-deps
	@if command -v $(CXX) >/dev/null 2>&1 && command -v protoc >/dev/null 2>&1 && \
	   command -v grpc_cpp_plugin >/dev/null 2>&1 && pkg-config --exists $(GRPC_PKGS) 2>/dev/null; then \
	  $(MAKE) --no-print-directory cpp-server; \
	else \
	  echo "no C++ toolchain or grpc++ libraries ($(CPP_APT_PACKAGES)): not building $(CPP_SERVER); its tests skip"; \
	fi

# The grpc-js interop client's modules (tests/e2e/test_interop_js.py): `npm ci` when they are
# missing or older than the lockfile, and only where npm exists (the test skips otherwise,
# and fails under CI=true).
JS_INTEROP = tests/e2e/interop_js

test: $(STAMP) system-deps cpp-server-if-possible
	@if ! command -v npm >/dev/null 2>&1; then \
	  echo "npm not found: skipping the grpc-js interop client's install ($(JS_INTEROP))"; \
	elif [ ! -d $(JS_INTEROP)/node_modules ] || \
	     [ $(JS_INTEROP)/package-lock.json -nt $(JS_INTEROP)/node_modules ]; then \
	  echo "installing the grpc-js interop client's node modules ($(JS_INTEROP): npm ci)"; \
	  (cd $(JS_INTEROP) && npm ci --silent --no-audit --no-fund) && touch $(JS_INTEROP)/node_modules; \
	fi
	$(PY) -m pytest

report: $(STAMP) cpp-server-if-possible
ifneq ($(origin PROFILE),undefined)
	@echo "make: PROFILE=$(PROFILE) is deprecated; use SIZE=$(PROFILE)" >&2
endif
	$(VENV)/bin/lootlab report $(REPORT_ARGS)

bench: $(STAMP)
	$(PY) -m lootlab.benchmarks

lab: $(STAMP)
	$(VENV)/bin/lootlab lab

clean:
	rm -rf reports data/results .pytest_cache .hypothesis
