"""Every lesson runs top to bottom (fast mode), in order: lesson 8 reads the run lesson 7 trains; lesson 9 runs a
miniature ablate of its own, lesson 10 a miniature video run."""
import glob
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LESSONS = sorted(glob.glob(os.path.join(ROOT, "lessons", "[0-9][0-9]_*.py")))


def test_there_are_ten_lessons():
    assert len(LESSONS) == 10


@pytest.mark.parametrize("path", LESSONS, ids=[os.path.basename(p) for p in LESSONS])
def test_lesson_runs(path):
    env = dict(os.environ, LESSONS_FAST="1", MPLBACKEND="Agg")
    r = subprocess.run([sys.executable, path], capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    assert "figures in" in r.stdout
