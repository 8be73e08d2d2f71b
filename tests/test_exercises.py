"""The classroom exercises: every check passes on the reference solution, catches every wrong version listed in
exercise_mutants.py with its own message, reports an untouched stub as "not started", and the checker grades any file
or a whole class, with a time limit per exercise.

None of these tests reads lessons/exercises/student.py: it is the student's, in whatever state they left it, and
`make test` must pass for every such state. The pristine stubs are generated here, from the solutions' signatures."""
import inspect
import json
import os
import subprocess
import sys
import types

import pytest
import torch.nn.functional as F

from exercise_mutants import MUTANTS
from lessons.exercises import EXERCISES, checks, grade, load, out_of_time, solutions, status

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEADER = "\n".join(["import torch", "import torch.nn.functional as F", "from einops import rearrange", "",
                    "from toy_data import TOKENIZER", ""])


def stub(name):
    return (f"def {name}{inspect.signature(getattr(solutions, name))}:\n"
            f"    raise NotImplementedError('exercise {name}: implement it in lessons/exercises/student.py')\n")


def write_exercises(path, solved=(), wrong=(), looping=()):
    """A student file: the solved exercises copied from the solutions, `wrong` ones returning nonsense, `looping`
    ones never returning, stubs else."""
    parts = [HEADER]
    for name in EXERCISES:
        head = f"def {name}{inspect.signature(getattr(solutions, name))}:\n"
        if name in solved:
            parts.append(inspect.getsource(getattr(solutions, name)))
        elif name in wrong:
            parts.append(head + "    return None\n")
        elif name in looping:
            parts.append(head + "    while True:\n        pass\n")
        else:
            parts.append(stub(name))
    path.write_text("\n\n".join(parts))
    return str(path)


def as_module(path, **functions):
    """A graded module holding just these functions, as if loaded from `path`."""
    module = types.ModuleType("graded")
    module.__file__ = path
    module.__dict__.update(functions)
    return module


@pytest.mark.parametrize("name", EXERCISES)
def test_solution_passes(name):
    getattr(checks, name)(getattr(solutions, name))


def test_every_exercise_has_three_mutants_or_more():
    assert set(MUTANTS) == set(EXERCISES)
    assert all(len(m) >= 3 for m in MUTANTS.values()), {n: len(m) for n, m in MUTANTS.items()}


@pytest.mark.parametrize("name, mutant, fragment", [(n, m, f) for n, ms in MUTANTS.items() for m, f in ms],
                         ids=[m.__name__ for ms in MUTANTS.values() for m, _ in ms])
def test_every_mutant_is_caught_with_its_message(name, mutant, fragment):
    state, message = status(name, as_module("alice.py", **{name: mutant}))
    assert state == "failing", f"{mutant.__name__} passed the check of {name}"
    assert fragment in message, message


@pytest.mark.parametrize("empty_rows", ["zero", "nan"])
def test_the_gated_layer_check_does_not_depend_on_the_attention_kernel(empty_rows, monkeypatch):
    """Fused kernels differ on a row that may attend nothing (some return 0, the math says NaN): whichever this
    machine's does, a layer with no rule for such rows fails, and the reference passes."""
    fused = F.scaled_dot_product_attention

    def kernel(q, k, v, attn_mask=None, **kw):
        y = fused(q, k, v, attn_mask=attn_mask, **kw)
        empty = ~attn_mask.any(-1, keepdim=True)
        return y.masked_fill(empty, 0.0 if empty_rows == "zero" else float("nan"))
    monkeypatch.setattr(F, "scaled_dot_product_attention", kernel)
    assert status("gated_xattn_forward", as_module("a.py", gated_xattn_forward=solutions.gated_xattn_forward))[0] == \
        "done"
    state, message = status("gated_xattn_forward", as_module(
        "a.py", gated_xattn_forward=MUTANTS["gated_xattn_forward"][0][0]))
    assert state == "failing" and "softmax over nothing is NaN" in message
    assert F.scaled_dot_product_attention is kernel   # the check put back the kernel it found


def test_a_wrong_phi_does_not_fail_the_mask(tmp_path):
    """The mask's check runs the student's mask with the reference phi: one bug is reported once, where it is."""
    path = tmp_path / "wrong_phi.py"
    path.write_text(HEADER + "\n\ndef phi(input_ids, image_token_id):\n    return (input_ids == image_token_id).long()"
                    "\n\n\n" + inspect.getsource(solutions.cross_attention_mask))
    graded = load(str(path))
    assert status("cross_attention_mask", graded)[0] == "done"
    state, message = status("phi", graded)
    assert state == "failing" and "phi is [1, 0, 0, 0, 0, 0]" in message


def test_stubs_wrong_answers_and_solutions_are_told_apart(tmp_path):
    solved, wrong = EXERCISES[:3], EXERCISES[3:6]
    path = write_exercises(tmp_path / "mine.py", solved, wrong)
    module = load(path)
    for name in EXERCISES:
        state, message = status(name, module)
        want = "done" if name in solved else "failing" if name in wrong else "not started"
        assert state == want, (name, state, message)
        if want == "not started":   # it names the file graded, not lessons/exercises/student.py
            assert message == f"exercise {name}: implement it in {path}"


def test_an_endless_loop_is_a_message_not_a_hang(tmp_path):
    module = load(write_exercises(tmp_path / "loops.py", looping=["phi"]))
    assert status("phi", module, limit=0.5) == ("failing", out_of_time(0.5))


def test_a_loop_the_timer_cannot_stop_is_killed(tmp_path, monkeypatch):
    """A loop that swallows even the timer's interruption: the grading process is killed, the exercise fails."""
    path = tmp_path / "stubborn.py"
    path.write_text("def phi(input_ids, image_token_id):\n    while True:\n        try:\n            while True:\n"
                    "                pass\n        except BaseException:\n            pass\n")
    monkeypatch.setattr(grade, "STARTUP_S", 3)
    record = grade.grade_file(str(path), ["phi", "frame_input"], limit=1)
    assert record["exercises"] == {"phi": {"status": "failing", "message": out_of_time(1)},
                                   "frame_input": {"status": "failing", "message": f"{path} has no function "
                                                   "frame_input"}}   # graded in a fresh process


def check(*args):
    return subprocess.run([sys.executable, "main.py", "check", *args], capture_output=True, text=True, cwd=ROOT)


def test_checker_command(tmp_path):
    n = len(EXERCISES)
    untouched = write_exercises(tmp_path / "untouched.py")
    r = check("--hint", "phi", "--file", untouched)
    assert r.returncode == 1 and "hint for phi" in r.stdout and f"implement it in {untouched}" in r.stdout
    assert "0/1 done" in r.stdout
    broken = tmp_path / "broken.py"
    broken.write_text("def phi(:\n")
    r = check("--file", str(broken))
    assert r.returncode == 1 and "does not run" in r.stderr and "Traceback" not in r.stderr
    r = check("nope")
    assert r.returncode == 2 and "invalid choice" in r.stderr
    r = check()                         # the student's own file, in whatever state: it runs, or says why it cannot
    assert r.returncode in (0, 1) and (f"/{n} done" in r.stdout or "does not run" in r.stderr), r.stdout + r.stderr


def test_grading_a_class(tmp_path):
    """A solved, a half-solved, a broken and a looping copy, two given as files and two in a class folder: one call
    grades them all."""
    folder = tmp_path / "class"
    folder.mkdir()
    write_exercises(folder / "alice.py", solved=EXERCISES)
    write_exercises(folder / "bob.py", solved=EXERCISES[:5], wrong=EXERCISES[5:6])
    (folder / "notes.txt").write_text("not a copy")
    (tmp_path / "carol.py").write_text("def phi(:\n")
    write_exercises(tmp_path / "dan.py", solved=EXERCISES[:2], looping=EXERCISES[2:3])
    r = check("--file", str(tmp_path / "carol.py"), "--file", str(tmp_path / "dan.py"), "--class", str(folder),
              "--json", "--time-limit", "2")
    assert r.returncode == 1, r.stderr
    records = json.loads(r.stdout)
    assert [x["student"] for x in records] == ["carol", "dan", "alice", "bob"]
    carol, dan, alice, bob = records
    n = len(EXERCISES)
    assert grade.done(alice) == n and grade.done(bob) == 5 and grade.done(dan) == 2
    assert bob["exercises"][EXERCISES[5]]["status"] == "failing"
    assert bob["exercises"][EXERCISES[6]] == {"status": "not started",
                                              "message": f"exercise {EXERCISES[6]}: implement it in {bob['file']}"}
    assert "carol.py does not run (SyntaxError" in carol["error"] and not carol["exercises"]
    assert dan["exercises"][EXERCISES[2]] == {"status": "failing", "message": out_of_time(2)}
    assert dan["exercises"][EXERCISES[3]]["status"] == "not started"   # graded after the loop was stopped

    table = grade.class_table(records, EXERCISES)
    assert "1/4 students have every exercise done" in table
    rows = {line.split()[0]: line for line in table.splitlines()[2:6]}
    assert rows["alice"].split()[1:] == ["done"] * n + [f"{n}/{n}"]
    assert rows["bob"].split()[1:] == ["done"] * 5 + ["FAIL"] + ["-"] * (n - 6) + [f"5/{n}"]
    assert "does not run" in rows["carol"]
    assert f"{dan['file']} {EXERCISES[2]}: no answer within 2 s" in table

    lines = grade.to_csv(records, EXERCISES).splitlines()
    assert lines[0] == ",".join(["student", "file", *EXERCISES, "done", "total", "error"])
    assert lines[3] == ",".join(["alice", alice["file"], *["done"] * n, str(n), str(n), ""])
    assert lines[1].startswith(f"carol,{carol['file']},error,")
    assert grade.finished([alice], EXERCISES) and not grade.finished(records, EXERCISES)
    assert f"{n}/{n} done. Edit {alice['file']}" in grade.one_file_table(alice, EXERCISES)
