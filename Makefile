# Two commands for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
# CPU build by default (it lies on local disk here). On a GPU machine:
#   make TORCH_SPEC="torch" demo      (or install your own CUDA build into .venv first)
TORCH_SPEC ?= torch==2.13.0
STAMP   = $(VENV)/.installed

.PHONY: demo lint test test-all bench api clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[test]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/tomoconsensus demo ct --out demo_out

lint: $(STAMP)
	$(PY) -m ruff check .

# lint errors fail the tests (CI runs `make test`)
test: lint
	$(PY) -m pytest -q

test-all: $(STAMP)
	$(PY) -m pytest -q -m ""

# the API reference from the docstrings (pdoc, no network): docs/api/index.html
api: $(STAMP)
	$(PY) docs/make_api.py docs/api

bench: $(STAMP)
	$(PY) benchmarks/ct_fbp.py
	$(PY) benchmarks/train_step.py

clean:
	rm -rf $(VENV) demo_out .pytest_cache
