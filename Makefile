# Two commands do everything on a fresh machine: `make train` and `make test`. Each creates .venv when it is missing.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python

.PHONY: train quick test lessons bench clean

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

train: $(VENV)/.installed      ## the reference run: three stages, then the few-shot evaluation (~10 min on 2 cores)
	$(PY) main.py train

quick: $(VENV)/.installed      ## everything at toy speed (~2 min)
	$(PY) main.py train --preset quick

test: $(VENV)/.installed       ## the whole test suite, as CI runs it
	$(PY) -m pytest -q

clean:
	rm -rf runs lessons/out .pytest_cache .hypothesis
