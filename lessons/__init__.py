"""Ten step-through lessons (lessons/README.md), and two helpers they share: `claim`, which stops a lesson whose own
numbers contradict what it says, and `wrap_up`, which prints its summary and questions (answers: lessons/ANSWERS.md).

Importing this package checks that flamingo_min and toy_data come from the same checkout as it: lessons, exercises and
the checker must never mix one copy's code with another's (a student's solutions in one clone, graded or run with
another clone's)."""
import importlib.util
import os
import sys
import textwrap

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _same_checkout():
    for name in ("flamingo_min", "toy_data"):
        module = sys.modules.get(name)
        origin = module.__file__ if module else getattr(importlib.util.find_spec(name), "origin", None)
        where = os.path.dirname(os.path.dirname(os.path.abspath(origin))) if origin else ROOT
        if os.path.realpath(where) != os.path.realpath(ROOT):
            raise ImportError(f"this checkout's lessons ({ROOT}) would run another copy's {name} ({where}): an "
                              "environment with another checkout installed, or PYTHONPATH. Run lessons and main.py "
                              "from their checkout (`python lessons/NN_name.py`, `python main.py ...`), or install "
                              "this checkout into the environment (pip install --no-deps -e .)")


_same_checkout()


def claim(holds, statement, numbers):
    """Stop with a message when the numbers this run printed contradict the lesson's `statement`."""
    if not holds:
        raise AssertionError(f"this run contradicts the lesson: it says {statement}, but it measured {numbers}. If it "
                             "read a run of yours from runs/, LESSONS_SHIPPED=1 runs it on the models kept in the "
                             "repository (lessons/trained.py)")
    print(f"  (checked: {statement})")


def wrap_up(lesson, summary, questions):
    """Print the lesson's summary (bullets) and its questions, numbered."""
    fill = dict(width=118, subsequent_indent="   ")
    print("\nSummary")
    for line in summary:
        print(textwrap.fill(f" - {line}", **fill))
    print("Questions (answers: lessons/ANSWERS.md, lesson " + str(lesson) + ")")
    for i, q in enumerate(questions, 1):
        print(textwrap.fill(f"{i:>2}. {q}", **fill))
