.PHONY: test bench
test:
	xvfb-run -a .venv/bin/python -m pytest -q
bench:
	.venv/bin/python -m tests.benchmarks.run
