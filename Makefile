# Quick start: `make demo` (the DVC pipeline on the built-in demo videos), `make test` (the test suite).
# Both create or reuse .venv/ first.
.PHONY: setup demo test lint bench clean

setup:
	@bash scripts/setup.sh

demo: setup
	@bash scripts/demo.sh

test: setup
	.venv/bin/python -m pytest -n 2 --dist loadgroup tests

lint: setup
	.venv/bin/ruff check src tests benchmarks components pipelines

bench: setup
	@for b in benchmarks/bench_*.py; do echo "== $$b"; .venv/bin/python $$b; done

clean:
	rm -rf outputs data dvc_plots .pytest_cache
