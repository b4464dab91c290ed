.PHONY: test bench gpu-wheels
test:
	xvfb-run -a .venv/bin/python -m pytest -q
bench:
	xvfb-run -a -s "-screen 0 1920x1200x24" .venv/bin/python -m tests.benchmarks.run
# wheels for the GPU check on a device machine (no package index there; Python 3.12), the
# versions installed here: see tests/benchmarks/gpu_check_device.sh
gpu-wheels:
	grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
	.venv/bin/pip freeze | grep -iE '^(monai|pydicom|platformdirs|imagecodecs)==' | \
	  xargs python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
	  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl
