# Development tasks. `make test` and `make quick` create .venv and install what they need.
VENV ?= .venv
PY := $(VENV)/bin/python
# The CPU build of PyTorch; GPU users install the torch build of their choice instead.
TORCH_SPEC ?= torch==2.13.0

.PHONY: install test quick clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[test]"
	touch $@

install: $(VENV)/.installed

test: install
	$(PY) -m pytest

quick: install
	$(VENV)/bin/matap train --config quick --out runs/quick --overwrite
	$(VENV)/bin/matap evaluate runs/quick --protocol predict
	$(VENV)/bin/matap predict runs/quick --out runs/quick/prediction.gif

clean:
	rm -rf $(VENV) runs .pytest_cache
