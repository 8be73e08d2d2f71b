"""Every lesson imports this first, from its own folder: it puts the root of the checkout the lesson is in at the front
of sys.path, so that the lesson runs that checkout's flamingo_min, toy_data and exercises (your student.py) even when
the environment has another copy of the project installed (a shared .venv, a second clone, PYTHONPATH). Without it,
Python would find the lesson's own folder first, then the installed copy, and silently run someone else's code.

A copy that is already imported (a notebook kernel that ran another checkout's lesson first) cannot be swapped out:
then the lesson stops with an error that names both copies.

It also lets idle OpenMP threads sleep soon, before the lesson imports torch, so that a lesson beside a training run
does not take the cores from it (docs/performance.md: two jobs on one machine). A choice in the environment stands."""
import os
import sys

if "OMP_WAIT_POLICY" not in os.environ:
    os.environ.setdefault("GOMP_SPINCOUNT", "1000")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

if sys.path[:1] != [ROOT]:
    sys.path.insert(0, ROOT)
for name in ("lessons", "flamingo_min", "toy_data"):
    module = sys.modules.get(name)
    where = os.path.dirname(os.path.dirname(os.path.abspath(module.__file__))) if module else ROOT
    if os.path.realpath(where) != os.path.realpath(ROOT):
        raise ImportError(f"{name} is already imported from {where}, another copy of this project, but this lesson "
                          f"belongs to {ROOT}: restart Python (or the notebook's kernel) and run the lesson again")
