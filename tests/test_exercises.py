"""The classroom exercises: every check passes on the reference solution, names every known mistake
(lessons/exercises/mistakes.py) when a submission behaves like it, fails the wrong versions held back from it
(exercise_mutants.py) with a message that describes the difference, reports an untouched stub as "not started"; hints
come one at a time; and the checker grades any file or a whole class, with a time limit per exercise, writing CSV and
JSON from one grading.

None of these tests reads lessons/exercises/student.py: it is the student's, in whatever state they left it, and
`make test` must pass for every such state. The pristine stubs are generated here, from the solutions' signatures."""
import csv
import inspect
import io
import json
import os
import subprocess
import sys
import types

import pytest
import torch
import torch.nn.functional as F

from exercise_mutants import HELD_BACK
from lessons.exercises import EXERCISES, checks, grade, load, out_of_time, solutions, status
from lessons.exercises.hints import HINTS, hint
from lessons.exercises.mistakes import MISTAKES, named

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


def test_every_exercise_has_known_mistakes_and_held_back_ones():
    assert set(MISTAKES) == set(EXERCISES) == set(HELD_BACK)
    assert all(len(m) >= 3 for m in MISTAKES.values()), {n: len(m) for n, m in MISTAKES.items()}
    assert all(HELD_BACK.values())
    known = {m.__name__ for ms in MISTAKES.values() for m in ms}
    assert not known & {m.__name__ for ms in HELD_BACK.values() for m, _ in ms}


@pytest.mark.parametrize("name, mistake", [(n, m) for n, ms in MISTAKES.items() for m in ms],
                         ids=[m.__name__ for ms in MISTAKES.values() for m in ms])
def test_every_known_mistake_is_named(name, mistake):
    """The message starts with this mistake, not another that comes earlier in the list: each is told apart."""
    state, message = status(name, as_module("alice.py", **{name: mistake}))
    assert state == "failing", f"{mistake.__name__} passed the check of {name}"
    assert message.startswith(f"known mistake: {named(mistake)}\n  The check found: "), message


@pytest.mark.parametrize("name, mutant, fragment", [(n, m, f) for n, ms in HELD_BACK.items() for m, f in ms],
                         ids=[m.__name__ for ms in HELD_BACK.values() for m, _ in ms])
def test_a_mistake_the_checker_does_not_know_still_fails_and_says_so(name, mutant, fragment):
    state, message = status(name, as_module("alice.py", **{name: mutant}))
    assert state == "failing", f"{mutant.__name__} passed the check of {name}"
    assert fragment in message and "known mistake:" not in message, message
    assert message.endswith("(no known mistake behaves like this)")


def test_a_mistake_is_recognised_by_what_it_does_not_how_it_is_written():
    """phi counted from 0, written unlike mistakes.py's version, and a mask whose image indices are
    0-based (text sees the next image): each named as that mistake, not by its first wrong cell."""
    def my_phi(ids, image_token_id):
        return torch.cumsum((ids == image_token_id).to(torch.long), dim=1) - torch.ones_like(ids)

    def my_mask(ids, image_token_id, num_images, tokens_per_image, only_immediate=True):
        p = solutions.phi(ids, image_token_id).unsqueeze(-1)
        which = torch.arange(num_images).repeat_interleave(tokens_per_image)
        return which == p if only_immediate else which <= p
    _, message = status("phi", as_module("a.py", phi=my_phi))
    assert message.startswith("known mistake: phi counts images from 0."), message
    _, message = status("cross_attention_mask", as_module("a.py", cross_attention_mask=my_mask))
    assert message.startswith("known mistake: The visual tokens' image indices start at 0"), message
    assert message.count("only_immediate=True") == 1, message


def test_a_crash_like_a_known_mistakes_is_named_and_other_crashes_are_reported():
    def no_images(model, ids, images, max_new_tokens=10):
        return MISTAKES["greedy_decode"][-1](model, ids, images, max_new_tokens)
    assert named(MISTAKES["greedy_decode"][-1]).startswith("The model is called without the images")
    _, message = status("greedy_decode", as_module("a.py", greedy_decode=no_images))
    assert message.startswith("known mistake: The model is called without the images"), message
    _, message = status("phi", as_module("a.py", phi=lambda ids, image_token_id: ids.foo()))
    assert message.startswith("AttributeError: ") and "no known mistake" in message, message


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
        "a.py", gated_xattn_forward=MISTAKES["gated_xattn_forward"][1]))
    assert state == "failing" and "softmax over nothing" in message
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


def main_check(capsys, *args):
    """`python main.py check ARGS` in this process (each file is still graded in a process of its own): the exit
    status, stdout and stderr."""
    import main
    try:
        code = main.main(["check", *args])
    except SystemExit as e:   # argparse refusing a flag
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


def test_hints_come_in_steps_and_the_step_is_kept_beside_the_file(tmp_path, capsys):
    """A nudge, the idea, then code; the last one again once all are seen; --hint N shows hint N and the next --hint
    goes on from there. The count lives beside the file checked, so this test leaves the student's alone."""
    assert set(HINTS) == set(EXERCISES) and all(len(h) == 3 and len(set(h)) == 3 for h in HINTS.values())
    untouched = write_exercises(tmp_path / "untouched.py")
    code, out, _ = main_check(capsys, "phi", "--hint", "--file", untouched)
    assert code == 1 and out.startswith(f"hint 1 of 3 for phi, a nudge: {HINTS['phi'][0]}\n(`python main.py "
                                        "check phi --hint` gives hint 2, the idea)\n")
    assert f"implement it in {untouched}" in out   # and the check itself
    shown = [hint("phi", exercise_file=untouched).splitlines()[0] for _ in range(3)]
    assert shown == [f"hint 2 of 3 for phi, the idea: {HINTS['phi'][1]}", f"hint 3 of 3 for phi, code: "
                     f"{HINTS['phi'][2]}", f"hint 3 of 3 for phi, code: {HINTS['phi'][2]}"]
    assert "that was the last" in hint("phi", exercise_file=untouched)
    assert hint("build_prompt", exercise_file=untouched).startswith("hint 1 of 3 for build_prompt")   # its own count
    assert hint("phi", 1, exercise_file=untouched).startswith("hint 1 of 3 for phi, a nudge")
    assert hint("phi", exercise_file=untouched).startswith("hint 2 of 3 for phi, the idea")
    assert json.loads((tmp_path / "hints_seen.json").read_text()) == {"phi": 2, "build_prompt": 1}
    code, _, err = main_check(capsys, "phi", "--hint", "4", "--file", untouched)
    assert code == 1 and "has hints 1 to 3" in err
    code, _, err = main_check(capsys, "--hint", "phi")                                  # the exercise comes first
    assert code == 2 and "'phi' is not a hint number: `check phi --hint`" in err
    code, _, err = main_check(capsys, "--hint", "--file", untouched)
    assert code == 1 and "--hint is for one exercise" in err


def test_checker_command(tmp_path, capsys):
    n = len(EXERCISES)
    untouched = write_exercises(tmp_path / "untouched.py")
    code, out, _ = main_check(capsys, "phi", "--file", untouched)
    assert code == 1 and f"implement it in {untouched}" in out
    assert out.rstrip().endswith(f"0/1 done. Next: phi (not started) in {untouched}; `python main.py check phi "
                                 "--hint` gives a hint.")
    code, out, _ = main_check(capsys, "--file", write_exercises(tmp_path / "solved.py", solved=EXERCISES))
    assert code == 0 and out.rstrip().endswith(f"\nAll {n} exercises are done."), out
    record = {"file": "solved.py", "error": None, "exercises": {"phi": {"status": "done", "message": ""}}}
    assert grade.one_file_table(record, ["phi"]).endswith("\nphi is done.")
    broken = tmp_path / "broken.py"
    broken.write_text("def phi(:\n")
    code, _, err = main_check(capsys, "--file", str(broken))
    assert code == 1 and "does not run" in err and "Traceback" not in err
    code, _, err = main_check(capsys, "nope")
    assert code == 2 and "invalid choice" in err
    r = check()                         # the student's own file, in whatever state: it runs, or says why it cannot
    assert r.returncode in (0, 1) and (f"/{n} done" in r.stdout or "are done" in r.stdout or "does not run" in
                                       r.stderr), r.stdout + r.stderr


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
    (tmp_path / "grades.csv").write_text("an older gradebook")
    r = check("--file", str(tmp_path / "carol.py"), "--file", str(tmp_path / "dan.py"), "--class", str(folder),
              "--csv", str(tmp_path / "grades.csv"), "--json", str(tmp_path / "grades.json"), "--time-limit", "2")
    assert r.returncode == 1, r.stderr
    assert f"written {tmp_path / 'grades.csv'} and {tmp_path / 'grades.json'}" in r.stdout
    assert "1/4 students have every exercise done" in r.stdout   # and the table, for the teacher to read
    records = json.loads((tmp_path / "grades.json").read_text())
    assert grade.to_csv(records, EXERCISES) == (tmp_path / "grades.csv").read_text()
    assert not list(tmp_path.glob("*.tmp"))
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

    rows = list(csv.reader(io.StringIO(grade.to_csv(records, EXERCISES))))
    assert rows[0] == ["student", "file", *EXERCISES, "done", "total", "error", *[f"{e} message" for e in EXERCISES]]
    assert rows[3] == ["alice", alice["file"], *["done"] * n, str(n), str(n), ""] + [""] * n
    assert rows[1][:3] == ["carol", carol["file"], "error"] and "does not run (SyntaxError" in rows[1][n + 4]
    failed = rows[4][n + 5:]   # bob's messages: the failing one's, whole (several lines), and no other
    assert failed[5] == bob["exercises"][EXERCISES[5]]["message"] and "\n" in failed[5]
    assert failed[:5] == [""] * 5 and failed[6:] == [""] * (n - 6)
    assert rows[2][n + 5 + 2] == out_of_time(2)   # dan's loop
    assert grade.finished([alice], EXERCISES) and not grade.finished(records, EXERCISES)
    assert grade.one_file_table(alice, EXERCISES).endswith(f"\nAll {n} exercises are done.")
    assert grade.class_table([alice], EXERCISES).splitlines()[-1] == "1/1 student has every exercise done"


def test_both_gradebooks_from_one_grading_or_none(tmp_path, capsys):
    """--csv alone prints (as before); a FILE that cannot be written stops the command before any grading, and
    leaves the other file unwritten; two prints at once are refused."""
    path = write_exercises(tmp_path / "erin.py", solved=EXERCISES[:1])
    code, out, err = main_check(capsys, "phi", "--file", path, "--csv", "-", "--json", str(tmp_path / "erin.json"))
    assert code == 0 and out.splitlines()[1].startswith("erin,") and "written" in err, out + err
    assert json.loads((tmp_path / "erin.json").read_text())[0]["exercises"]["phi"]["status"] == "done"
    (tmp_path / "locked.csv").mkdir()
    code, out, err = main_check(capsys, "--file", path, "--json", str(tmp_path / "new.json"), "--csv",
                                str(tmp_path / "locked.csv"))
    assert code == 1 and "cannot write" in err and not (tmp_path / "new.json").exists()
    assert not out   # nothing was graded
    code, _, err = main_check(capsys, "--file", path, "--json", "--csv")
    assert code == 1 and "cannot both print" in err
    code, _, err = main_check(capsys, "--file", path, "--json", "phi")
    assert code == 1 and "ending in .json" in err and not (tmp_path / "phi").exists()
