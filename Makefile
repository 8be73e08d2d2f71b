# Two commands do everything on a fresh machine: `make train` and `make test`. Each creates .venv when it is missing.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python

.PHONY: train quick seeds ablate video large test lessons bench clean

# The pinned requirements, then this project itself in editable mode (no dependencies of its own to fetch), so that
# lessons and scripts import flamingo_min, toy_data and lessons from anywhere.
$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

train: $(VENV)/.installed      ## the reference run: three stages, then the few-shot evaluation (~8 min on 2 cores)
	$(PY) main.py train

quick: $(VENV)/.installed      ## everything at toy speed (~1 min)
	$(PY) main.py train --preset quick

seeds: $(VENV)/.installed      ## the reference run for seeds 0, 1 and 2, then their means and spreads (~25 min)
	for s in 0 1 2; do $(PY) main.py train --seed $$s --out runs/seed$$s || exit 1; done
	$(PY) main.py report runs/seed0 runs/seed1 runs/seed2 --out runs

ablate: $(VENV)/.installed     ## the paper's Table 3 at toy scale: 16 variants x 2 seeds (~50 min on 2 cores)
	$(PY) main.py ablate

video: $(VENV)/.installed      ## the reference run plus clips of moving shapes and the video tasks (~10 min on 2 cores)
	$(PY) main.py train --preset video

large: $(VENV)/.installed      ## one GPU: wider, deeper, longer (README: one GPU; not measured end to end yet)
	$(PY) main.py train --preset large

test: $(VENV)/.installed       ## the whole test suite, as CI runs it
	$(PY) -m pytest -q

lessons: $(VENV)/.installed    ## every lesson, top to bottom
	for f in lessons/0*.py; do $(PY) $$f || exit 1; done

bench: $(VENV)/.installed      ## speed, memory and scaling (add flamingo-pytorch for the peer's column: README)
	$(PY) main.py bench

clean:
	rm -rf runs lessons/out .pytest_cache .hypothesis
