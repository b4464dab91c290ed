.PHONY: test bench
test:
	xvfb-run -a .venv/bin/python -m pytest -q
bench:
	xvfb-run -a -s "-screen 0 1920x1200x24" .venv/bin/python -m tests.benchmarks.run
