# Development tasks. `make test` and `make quick` create .venv and install what they need.
VENV ?= .venv
PY := $(VENV)/bin/python
# The CPU build of PyTorch; GPU users install the torch build of their choice instead.
TORCH_SPEC ?= torch==2.13.0

.PHONY: install lint test quick forecast clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[test]"
	touch $@

install: $(VENV)/.installed

lint: install
	$(VENV)/bin/ruff check src tests

test: install
	$(PY) -m pytest

quick: install
	$(VENV)/bin/matap train --config quick --out runs/quick --overwrite
	$(VENV)/bin/matap evaluate runs/quick --protocol predict
	$(VENV)/bin/matap predict runs/quick --out runs/quick/prediction.gif --png runs/quick/prediction.png

# One hour of training, then 10 -> 10 on 1,000 held-out classic-motion sequences in mnist_test_seq.npy's layout.
forecast: install
	$(VENV)/bin/matap data --config forecast --split test data.val_size=1000 --save runs/heldout/mnist_test_seq_classic.npy --save-layout TN
	$(VENV)/bin/matap train --config forecast --out runs/forecast --overwrite
	$(VENV)/bin/matap evaluate runs/forecast --data runs/heldout/mnist_test_seq_classic.npy --json runs/forecast/test.json
	$(VENV)/bin/matap predict runs/forecast --data runs/heldout/mnist_test_seq_classic.npy --num 3 \
		--out runs/forecast/prediction.gif --png runs/forecast/prediction.png

clean:
	rm -rf $(VENV) runs .pytest_cache
