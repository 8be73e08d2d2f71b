"""Lessons and the checker run the checkout they are started from, even in an environment that points at another copy
of the project: a classroom's shared .venv with one copy installed, a second clone, PYTHONPATH. Two copies in a
temporary folder stand in for them: `other`, which the environment points at (through PYTHONPATH and through a .pth
file in a site folder, as an installed copy is found), with every exercise untouched, and `mine`, with phi and the mask
solved. Only what lesson 6 (the quickest that uses an exercise) and `main.py check` need is copied."""
import os
import shutil
import subprocess
import sys

import pytest

from test_exercises import write_exercises

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PARTS = ("main.py", "flamingo_min", "toy_data", "lessons/__init__.py", "lessons/own_checkout.py", "lessons/exercises",
         "lessons/06_masking.py")
SITE = """import os, site
site.addsitedir(os.path.dirname(__file__))   # reads other.pth, as Python reads an installed package's
if os.environ.get("PRELOAD"):
    import toy_data   # imported before any lesson starts, as some .pth files do
"""


def copy_of(folder, solved):
    for part in PARTS:
        src, dst = os.path.join(ROOT, part), os.path.join(folder, part)
        if os.path.isdir(src):
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__", "hints_seen.json"))
        else:
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            shutil.copy2(src, dst)
    write_exercises(folder / "lessons" / "exercises" / "student.py", solved)
    return folder


@pytest.fixture(scope="module")
def two_copies(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("copies")
    other = copy_of(tmp / "other", solved=())
    mine = copy_of(tmp / "mine", solved=("phi", "cross_attention_mask"))
    site = tmp / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITE)
    (site / "other.pth").write_text(f"{other}\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), str(other)]), MPLBACKEND="Agg",
               LESSONS_OUT=str(tmp / "out"))
    env.pop("PRELOAD", None)
    return mine, other, env


def run(args, env, cwd):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=300)


def test_the_environment_points_at_the_other_copy(two_copies):
    mine, other, env = two_copies
    r = run(["-c", "import toy_data; print(toy_data.__file__)"], env, mine / "lessons")   # a lesson's sys.path[0]
    assert r.stdout.startswith(str(other)), r.stdout + r.stderr   # what a lesson got without lessons/own_checkout.py


def test_a_lesson_runs_its_own_checkouts_code_and_exercises(two_copies):
    mine, other, env = two_copies
    r = run([str(mine / "lessons" / "06_masking.py")], env, mine.parent)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "[phi: using YOUR implementation]" in r.stdout
    assert "[cross_attention_mask: using YOUR implementation]" in r.stdout
    assert str(other) not in r.stdout + r.stderr


def test_the_checker_grades_its_own_checkouts_exercises(two_copies):
    mine, other, env = two_copies
    r = run([str(mine / "main.py"), "check", "phi"], env, mine.parent)
    assert r.returncode == 0 and "phi is done." in r.stdout, r.stdout + r.stderr


def test_a_copy_imported_before_the_lesson_is_named_not_used(two_copies):
    mine, other, env = two_copies
    env = dict(env, PRELOAD="1")
    for args in ([str(mine / "lessons" / "06_masking.py")], [str(mine / "main.py"), "check", "phi"]):
        r = run(args, env, mine.parent)
        assert r.returncode != 0 and "ImportError" in r.stderr, r.stdout + r.stderr
        assert str(other) in r.stderr and str(mine) in r.stderr, r.stderr   # both copies named
        assert "YOUR implementation" not in r.stdout and "done" not in r.stdout
