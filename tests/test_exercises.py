"""The classroom exercises: every check passes on the reference solution, reports an untouched stub as "not
started" and a wrong answer as "failing", and the checker grades any file.

None of these tests reads lessons/exercises/student.py: it is the student's, in whatever state they left it, and
`make test` must pass for every such state. The pristine stubs are generated here, from the solutions' signatures."""
import inspect
import os
import subprocess
import sys

import pytest

from lessons.exercises import EXERCISES, checks, load, solutions, status

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEADER = "\n".join(["import torch", "import torch.nn.functional as F", "from einops import rearrange", "",
                    "from toy_data import TOKENIZER", ""])


def stub(name):
    return (f"def {name}{inspect.signature(getattr(solutions, name))}:\n"
            f"    raise NotImplementedError('exercise {name}: implement it in lessons/exercises/student.py')\n")


def write_exercises(path, solved=(), wrong=()):
    """A student file: the solved exercises copied from the solutions, `wrong` ones returning nonsense, stubs else."""
    parts = [HEADER]
    for name in EXERCISES:
        if name in solved:
            parts.append(inspect.getsource(getattr(solutions, name)))
        elif name in wrong:
            parts.append(f"def {name}{inspect.signature(getattr(solutions, name))}:\n    return None\n")
        else:
            parts.append(stub(name))
    path.write_text("\n\n".join(parts))
    return str(path)


@pytest.mark.parametrize("name", EXERCISES)
def test_solution_passes(name):
    getattr(checks, name)(getattr(solutions, name))


def test_stubs_wrong_answers_and_solutions_are_told_apart(tmp_path):
    solved, wrong = EXERCISES[:3], EXERCISES[3:5]
    module = load(write_exercises(tmp_path / "mine.py", solved, wrong))
    for name in EXERCISES:
        state, message = status(name, module)
        want = "done" if name in solved else "failing" if name in wrong else "not started"
        assert state == want, (name, state, message)
        if want == "not started":
            assert f"exercise {name}" in message


def test_a_wrong_answer_is_failing_with_a_message():
    wrong = lambda ids, image_id: (ids == image_id).long()   # forgets the running count
    with pytest.raises(AssertionError, match="expected"):
        checks.phi(wrong)


def test_checker_command(tmp_path):
    def check(*args):
        return subprocess.run([sys.executable, "main.py", "check", *args], capture_output=True, text=True, cwd=ROOT)
    untouched = write_exercises(tmp_path / "untouched.py")
    r = check("--hint", "phi", "--file", untouched)
    assert r.returncode == 1 and "hint for phi" in r.stdout and "not started" in r.stdout
    r = check("--file", untouched)
    assert r.returncode == 1 and "0/7 done" in r.stdout
    r = check("--file", write_exercises(tmp_path / "three.py", solved=EXERCISES[:3]))
    assert r.returncode == 1 and "3/7 done" in r.stdout
    r = check("--file", write_exercises(tmp_path / "all.py", solved=EXERCISES))
    assert r.returncode == 0 and "7/7 done" in r.stdout
    broken = tmp_path / "broken.py"
    broken.write_text("def phi(:\n")
    r = check("--file", str(broken))
    assert r.returncode == 1 and "does not run" in r.stderr and "Traceback" not in r.stderr
    r = check("nope")
    assert r.returncode == 2 and "invalid choice" in r.stderr
    r = check()                                           # the student's own file, in whatever state: it runs
    assert r.returncode in (0, 1) and "/7 done" in r.stdout
