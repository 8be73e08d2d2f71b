"""The classroom exercises: every check passes on the reference solution and rejects the untouched stub."""
import os
import subprocess
import sys

import pytest

from lessons import exercises
from lessons.exercises import EXERCISES, checks, solutions, student

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("name", EXERCISES)
def test_solution_passes(name):
    getattr(checks, name)(getattr(solutions, name))


@pytest.mark.parametrize("name", EXERCISES)
def test_untouched_stub_is_rejected(name):
    with pytest.raises(NotImplementedError, match=f"exercise {name}"):
        getattr(checks, name)(getattr(student, name))
    assert exercises.status(name)[0] == "not started"


def test_a_wrong_answer_is_failing_with_a_message():
    wrong = lambda ids, image_id: (ids == image_id).long()   # forgets the running count
    with pytest.raises(AssertionError, match="expected"):
        checks.phi(wrong)


def test_checker_command(tmp_path):
    r = subprocess.run([sys.executable, "main.py", "check", "--hint", "phi"], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 1 and "hint for phi" in r.stdout and "not started" in r.stdout
    r = subprocess.run([sys.executable, "main.py", "check"], capture_output=True, text=True, cwd=ROOT)
    assert "0/7 done" in r.stdout
    r = subprocess.run([sys.executable, "main.py", "check", "nope"], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode != 0 and "unknown exercise" in r.stderr
