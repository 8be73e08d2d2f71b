# Two commands do everything on a fresh machine: `make train` and `make test`. Each creates .venv when it is missing.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python

.PHONY: train quick seeds ablate video forms copying scale large gpu-check test lessons lesson-weights bench clean

# The pinned requirements, then this project itself in editable mode (no dependencies of its own to fetch), so that
# lessons and scripts import flamingo_min, toy_data and lessons from anywhere.
$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

train: $(VENV)/.installed      ## the reference run: three stages, then the few-shot evaluation (~15 min on 2 cores)
	$(PY) main.py train

quick: $(VENV)/.installed      ## everything at toy speed (~2 min)
	$(PY) main.py train --preset quick

seeds: $(VENV)/.installed      ## the reference run for seeds 0, 1 and 2, then their means and spreads (~40 min)
	for s in 0 1 2; do $(PY) main.py train --seed $$s --out runs/seed$$s || exit 1; done
	$(PY) main.py report runs/seed0 runs/seed1 runs/seed2 --out runs

ablate: $(VENV)/.installed     ## the paper's Table 3 at toy scale: 16 variants x 3 seeds (~64 min on 2 cores)
	$(PY) main.py ablate --seeds 3

video: $(VENV)/.installed      ## the reference run plus clips of moving shapes and the video tasks (~18 min on 2 cores)
	$(PY) main.py train --preset video

forms: $(VENV)/.installed      ## the reference run with binding in four forms, either word order, 2500 LM steps (~15 min on 2 cores)
	$(PY) main.py train --preset forms --out runs/forms

copying: $(VENV)/.installed    ## the LM alone, seeds 0-4: when its copying appears, and in which forms (~18 min on 2 cores)
	$(PY) main.py copying --seeds 5

scale: $(VENV)/.installed      ## binding against shots for three model sizes, seeds 0-2 each (~110 min on 2 cores)
	$(PY) main.py scale --seeds 3

lesson-weights: $(VENV)/.installed  ## lessons/trained.pt, which lessons 8-10 read (~21 min on 2 cores)
	$(PY) -m lessons.trained

large: $(VENV)/.installed      ## one GPU: wider, deeper, longer (4.6 min of training on an H200: docs/performance.md)
	$(PY) main.py train --preset large

# One GPU measured, each part under its own time cap: where a step goes (bench --profile), the default run, the large
# preset, each with its evaluation (docs/performance.md). A python3 that already holds torch and the rest (a cloud
# image, a lab cluster) is used as it is: nothing is installed, nothing fetched.
gpu-check:                     ## one GPU measured: bench --profile, make train, make large (~9 min on an H200)
	@if $(PYTHON) -c "import torch, einops, tqdm, matplotlib" 2>/dev/null; then py=$(PYTHON); \
	else $(MAKE) --no-print-directory $(VENV)/.installed && py=$(PY); fi; \
	set -x; export PYTHONUNBUFFERED=1; rc=0; \
	timeout 120 $$py main.py bench --profile --no-contention --device cuda --out runs/gpu-check || rc=1; \
	timeout 150 $$py main.py train --device cuda --out runs/gpu-check/default || rc=1; \
	timeout 420 $$py main.py train --preset large --device cuda --out runs/gpu-check/large || rc=1; \
	exit $$rc

test: $(VENV)/.installed       ## the whole test suite, as CI runs it
	$(PY) -m pytest -q

lessons: $(VENV)/.installed    ## every lesson, top to bottom
	for f in lessons/[0-9][0-9]_*.py; do echo "=== $$f"; $(PY) $$f || exit 1; done

bench: $(VENV)/.installed      ## speed, memory, scaling; flamingo-pytorch beside ours if installed: docs/performance.md
	$(PY) main.py bench

clean:
	rm -rf runs lessons/out .pytest_cache .hypothesis
