# One task runner: the README, CI (.ci/run) and developers call these targets.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: install up down status demo test test-only lint typecheck bench fmt chaos clean

NODE_STAMP := node_modules/.installed-stamp

install: $(STAMP) $(NODE_STAMP)

$(STAMP): pyproject.toml scripts/install-system-deps.sh
	./scripts/install-system-deps.sh
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev,notebooks]'
	touch $(STAMP)

# The dashboard's chart library (plotly.js's basic bundle), exactly as package-lock.json
# pins it, into node_modules/ (ignored by git; the daemon serves it from there). Re-run
# only when the lock changes or node_modules/ is gone.
$(NODE_STAMP): package.json package-lock.json scripts/install-system-deps.sh
	./scripts/install-system-deps.sh
	npm ci --no-audit --no-fund
	touch $(NODE_STAMP)

up: install
	$(BIN)/lambda-rt up

down: install
	$(BIN)/lambda-rt down

status: install
	$(BIN)/lambda-rt status

demo: install
	$(BIN)/lambda-rt demo

# lint-imports checks the layering contracts of pyproject.toml ([tool.importlinter]).
lint: install
	$(BIN)/ruff check lambda_rt speed_layer batch_layer serving tests bench
	$(BIN)/ruff format --check lambda_rt speed_layer batch_layer serving tests bench
	$(BIN)/lint-imports

typecheck: install
	$(BIN)/mypy

# pytest's exit code 5 (no test collected) is a failure here, never a pass.
test-only: install
	$(BIN)/python -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing"; exit 1; fi; exit $$rc

test: lint typecheck test-only

bench: install
	$(BIN)/python -m bench

fmt: install
	$(BIN)/ruff format lambda_rt speed_layer batch_layer serving tests bench
	$(BIN)/ruff check --fix lambda_rt speed_layer batch_layer serving tests bench

# Reliability: the FULL chaos form (kills, restarts, bursts, hostile input, secrets).
# Every scenario prints a CHAOS-SUMMARY line; they are collected in chaos-report.jsonl
# and quoted in docs/reliability.md. CI runs the reduced form as part of `make test`.
chaos: install
	rm -f chaos-report.jsonl
	LAMBDA_RT_CHAOS=full LAMBDA_RT_CHAOS_REPORT=$(CURDIR)/chaos-report.jsonl \
	  $(BIN)/python -m pytest tests/chaos tests/fuzz tests/security $(PYTEST_ARGS); rc=$$?; \
	  cat chaos-report.jsonl 2>/dev/null; exit $$rc

clean:
	rm -rf $(VENV) node_modules .lambda-rt .mypy_cache .ruff_cache build *.egg-info
