# Quick start: `make demo` (the DVC pipeline on the built-in demo videos), `make test` (the fast test suite).
# `make test-all` runs every test (what CI runs), `make test-slow` only the end-to-end runs (marker `slow`).
# All of them create or reuse .venv/ first.
PYTEST = .venv/bin/python -m pytest -n 2 --dist loadgroup
.PHONY: setup demo test test-slow test-all lint format bench clean

setup:
	@bash scripts/setup.sh

demo: setup
	@bash scripts/demo.sh

test: setup
	$(PYTEST) -m "not slow" tests

test-slow: setup
	$(PYTEST) -m slow tests

test-all: setup
	$(PYTEST) tests

lint: setup
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/lint-imports --no-cache --no-logo

format: setup
	.venv/bin/ruff check --fix .
	.venv/bin/ruff format .

bench: setup
	@for b in benchmarks/bench_*.py; do echo "== $$b"; .venv/bin/python $$b; done

clean:
	rm -rf outputs data dvc_plots .pytest_cache
