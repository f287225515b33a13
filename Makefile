# Two entry points that work on a fresh machine with only Python 3.11 and pip:
#   make demo   - budget planner on the TF Privacy tutorial example, and its privacy statement
#                 had it been trained on shuffled batches (users with up to 5 examples)
#   make test   - the test suite (executes the notebooks too)
#   make test-surface - a larger adversarial sweep of the public surface (bounded time/memory)
#   make docs   - the Sphinx site (build/docs/html) with warnings as errors, its doctests, link check
#   make notebooks - execute notebooks/*.ipynb, figures to notebooks/figures/
#   make bench  - benchmarks side by side with peer libraries (own venv .venv-bench),
#                 writes benchmarks/results.md
#   make test-tensorflow - the TensorFlow adapter's tests in two venvs of their own:
#       .venv-tf  (current TensorFlow + Keras 3, no tensorflow-privacy) and
#       .venv-tfp (TF 2.15.1 + Keras 2 + tensorflow-privacy 0.9.0, requirements/tf-privacy-cpu.txt)
#   make test-integrations - the Opacus accountants (accounting.integrations.opacus), the
#       dp_accounting cross-check and the verification kit run on both peers, in
#       .venv-integrations (CPU torch 2.13, Opacus 1.6, dp-accounting 0.6); then the samplers'
#       cross-checks (tests/test_peers_*.py: dp_accounting's fixed-size, truncated and mixture
#       events, random-allocation 1.0.5 and pld-accounting 2.0, dp-accelerator 0.1.0's RDP) in
#       .venv-sampler-peers
PYTHON ?= python3
VENV ?= .venv
VPY := $(VENV)/bin/python

TF_VENV ?= .venv-tf
TFP_VENV ?= .venv-tfp
BENCH_VENV ?= .venv-bench
INTEGRATIONS_VENV ?= .venv-integrations
SAMPLER_PEERS_VENV ?= .venv-sampler-peers
# torch for Opacus: the CPU build only (a plain torch==2.13.0 from PyPI pulls CUDA wheels).
TORCH_PIP_ARGS ?= --extra-index-url https://download.pytorch.org/whl/cpu

.PHONY: demo test test-surface test-tensorflow test-integrations lint bench notebooks docs clean

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
	$(VENV)/bin/dp-budget statement --sample-size 60000 --batch-size 256 --epochs 60 \
		--noise-multiplier 1.1 --delta 1e-5 --sampling shuffle --max-examples-per-user 5

test: $(VENV)/.installed-test
	$(VENV)/bin/ruff check accounting dpsgd_kernels tests benchmarks
	$(VPY) -m pytest -q

# Every public entry point under a 2 GiB address-space cap with adversarial arguments; make test
# runs the same property test with SURFACE_EXAMPLES=4 per entry point, derandomized.
SURFACE_EXAMPLES ?= 60
test-surface: $(VENV)/.installed-test
	SURFACE_EXAMPLES=$(SURFACE_EXAMPLES) SURFACE_RANDOM=1 $(VPY) -m pytest -q tests/test_public_surface.py

notebooks: $(VENV)/.installed-test
	$(VPY) notebooks/execute.py

# The docs extra (Sphinx, numpydoc, Furo, MyST) goes into .venv: autodoc imports the package.
$(VENV)/.installed-docs: pyproject.toml $(VENV)/.installed-test
	$(VPY) -m pip install -e '.[docs]'
	touch $@

# Any Sphinx warning fails the build (-W --keep-going lists them all first); then the doctests of
# the pages and docstrings, and every internal link of the built site and the Markdown files.
docs: $(VENV)/.installed-docs
	rm -rf build/docs docs/api/generated
	$(VPY) -m sphinx -b html -W --keep-going -q docs build/docs/html
	$(VPY) -m sphinx -b doctest -W --keep-going -q docs build/docs/doctest
	$(VPY) docs/check_links.py build/docs/html

# Peers go into a separate environment, never into the package's dependencies.
$(BENCH_VENV)/.installed-bench: pyproject.toml benchmarks/requirements-peers.txt
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install -q --no-deps 'torch==2.13.0+cpu' $(TORCH_PIP_ARGS)
	$(BENCH_VENV)/bin/python -m pip install -q -e . -r benchmarks/requirements-peers.txt
	touch $@

# One run: accounting_speed.py, kernel_speed.py, tf_step_speed.py (in $(TF_VENV), built here
# when TensorFlow installs; without it the TF row says why it is missing) and peers.py; prints
# the side-by-side table and writes benchmarks/results.md.
bench: $(BENCH_VENV)/.installed-bench
	-$(MAKE) $(TF_VENV)/.installed-tf
	$(BENCH_VENV)/bin/python benchmarks/run_all.py --tf-python $(or $(TF_VENV),.venv-tf)/bin/python

$(TF_VENV)/.installed-tf: pyproject.toml
	$(PYTHON) -m venv $(TF_VENV)
	$(TF_VENV)/bin/python -m pip install -q -e '.[tensorflow-cpu,test]' pandas
	touch $@

$(TFP_VENV)/.installed-tfp: pyproject.toml requirements/tf-privacy-cpu.txt
	$(PYTHON) -m venv $(TFP_VENV)
	$(TFP_VENV)/bin/python -m pip install -q -r requirements/tf-privacy-cpu.txt \
		-e '.[tensorflow-cpu,test]'
	$(TFP_VENV)/bin/python -m pip install -q --no-deps tensorflow-privacy==0.9.0
	touch $@

test-tensorflow: $(TF_VENV)/.installed-tf $(TFP_VENV)/.installed-tfp
	$(TF_VENV)/bin/python -m pytest -q tests/test_tf_*.py
	$(TFP_VENV)/bin/python -m pytest -q tests/test_tf_*.py

# torch first and alone (--no-deps), from the CPU index (TORCH_PIP_ARGS) or a wheel on disk, so
# that resolving Opacus's "torch" requirement never pulls a CUDA build; torch's own dependencies
# come with the second install, from the usual index.
$(INTEGRATIONS_VENV)/.installed-integrations: pyproject.toml
	$(PYTHON) -m venv $(INTEGRATIONS_VENV)
	$(INTEGRATIONS_VENV)/bin/python -m pip install -q --no-deps 'torch==2.13.0+cpu' $(TORCH_PIP_ARGS)
	$(INTEGRATIONS_VENV)/bin/python -m pip install -q -e '.[test,opacus]' 'dp-accounting==0.6.*'
	touch $@

# The samplers' peers in a venv of their own: random-allocation and pld-accounting need numba,
# which pins an older NumPy than the integrations venv's (dp_accounting's results differ with it).
$(SAMPLER_PEERS_VENV)/.installed-sampler-peers: pyproject.toml
	$(PYTHON) -m venv $(SAMPLER_PEERS_VENV)
	$(SAMPLER_PEERS_VENV)/bin/python -m pip install -q -e '.[test]' 'dp-accounting==0.6.*' \
		'random-allocation==1.0.5' 'pld-accounting==2.0' 'dp-accelerator==0.1.0' pandas
	touch $@

test-integrations: $(INTEGRATIONS_VENV)/.installed-integrations \
		$(SAMPLER_PEERS_VENV)/.installed-sampler-peers
	$(INTEGRATIONS_VENV)/bin/python -m pytest -q tests/test_integration_opacus.py \
		tests/test_integration_dp_accounting.py tests/test_testing_peers.py
	$(SAMPLER_PEERS_VENV)/bin/python -m pytest -q tests/test_peers_*.py

clean:
	rm -rf $(VENV) $(TF_VENV) $(TFP_VENV) $(BENCH_VENV) $(INTEGRATIONS_VENV) $(SAMPLER_PEERS_VENV) .pytest_cache .hypothesis .ruff_cache *.egg-info
