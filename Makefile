# Two entry points that work on a fresh machine with only Python 3.11 and pip:
#   make demo   - budget planner on the TF Privacy tutorial example
#   make test   - the test suite
PYTHON ?= python3
VENV ?= .venv
VPY := $(VENV)/bin/python

.PHONY: demo test lint bench clean

$(VPY):
	$(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install --upgrade pip

$(VENV)/.installed-test: pyproject.toml | $(VPY)
	$(VPY) -m pip install -e '.[test,lint]'
	touch $@

demo: $(VENV)/.installed-test
	$(VENV)/bin/dp-budget epsilon --sample-size 60000 --batch-size 256 --epochs 60 \
		--noise-multiplier 1.1 --delta 1e-5
	$(VENV)/bin/dp-budget noise --sample-size 60000 --batch-size 256 --epochs 60 \
		--epsilon 3 --delta 1e-5

test: $(VENV)/.installed-test
	$(VENV)/bin/ruff check accounting dpsgd_kernels tests benchmarks
	$(VPY) -m pytest -q

bench: $(VENV)/.installed-test
	$(VPY) benchmarks/accounting_speed.py
	$(VPY) benchmarks/kernel_speed.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis .ruff_cache *.egg-info
