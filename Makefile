# Two commands do everything on a fresh machine with Python 3.11:
#   make demo   set up .venv, install curate with the trainer, run `curate demo`
#   make test   set up .venv, install curate with test extras, run the test suite
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin

.PHONY: demo test setup clean

$(BIN)/curate: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[train,test]"
	touch $(BIN)/curate

setup: $(BIN)/curate

demo: setup
	$(BIN)/curate demo

test: setup
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) demo .cache .pytest_cache
