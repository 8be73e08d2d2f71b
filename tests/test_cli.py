"""The command line as a user meets it: every bad input is refused with one `error:` line and a non-zero status,
never a traceback, and a failed command leaves every file of the run folder byte-identical.

The property tests drive `main.main` in-process (fast: no interpreter start per example); a few subprocess tests
check the same of the real program. Bad `--set` values are generated from each field's declared range
(toy_data/settings.py), so a new setting is covered the day it is added.
"""
import contextlib
import io
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import main
from conftest import TINY_RUN as TINY_SETS
from flamingo_min.config import settable
from flamingo_min.errors import FlamingoError
from flamingo_min.lab import plots
from flamingo_min.checkpoints import fingerprint
from flamingo_min.train import ckpt_path

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def snapshot(folder):
    return {os.path.relpath(os.path.join(d, f), folder): pathlib.Path(d, f).read_bytes()
            for d, _, files in os.walk(folder) for f in files}


def run_main(*argv):
    """(status, stdout, stderr) of main.main(argv), in this process."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = main.main(list(argv))
        except SystemExit as e:   # argparse refuses bad flags this way
            status = e.code
    return status, out.getvalue(), err.getvalue()


def refused(status, err):
    lines = [line for line in err.splitlines() if "error:" in line]
    return status not in (0, None) and len(lines) == 1 and "Traceback" not in err


@pytest.fixture(scope="module")
def run_copy(tiny_run, tmp_path_factory):
    """A copy of the tiny run with its evaluation written, for commands that must not change it."""
    folder = str(tmp_path_factory.mktemp("copy") / "run")
    shutil.copytree(tiny_run, folder)
    status, _, err = run_main("eval", "--run", folder, "--episodes", "1", "--shots", "none,1", "--beams", "1")
    assert status == 0, err
    return folder


# --- bad values, generated from each setting's declared range -----------------------------------------------------
def bad_values(f):
    kind = type(f.default)
    lo, hi = f.metadata.get("lo"), f.metadata.get("hi")
    if kind is bool:
        return st.sampled_from(["maybe", "2", "", "yes"])
    if kind is tuple:
        return st.sampled_from(["", ",", " , ", "smell", "dance,,x"])
    if kind is str:  # near misses of the allowed names too
        names = f.metadata["choices"]
        return st.sampled_from(["", "x", *(n.upper() for n in names), *(n + "s" for n in names)])
    junk = st.sampled_from(["", "x", "nan", "inf", "-inf", "1e999", "1..2"])
    options = [junk]
    if kind is int:
        options.append(st.sampled_from(["2.5", "1e3", "0x10"]))
        if lo is not None:
            options.append(st.integers(lo - 10**6, lo - 1).map(str))
        if hi is not None:
            options.append(st.integers(hi + 1, hi + 10**6).map(str))
    else:
        if lo is not None:
            options.append(st.floats(lo - 1e6, lo, exclude_max=True).map(repr))
        if hi is not None:
            options.append(st.floats(hi, hi + 1e6, exclude_min=True).map(repr))
    return st.one_of(options)


SETTINGS = st.sampled_from(settable()).flatmap(
    lambda pf: st.tuples(st.just(f"{pf[0]}.{pf[1].name}"), bad_values(pf[1])))


@settings(max_examples=60)
@given(SETTINGS)
def test_every_setting_refuses_bad_values(run_copy, setting):
    key, value = setting
    before = snapshot(run_copy)
    status, _, err = run_main("train", "--out", run_copy, "--preset", "quick", "--set", f"{key}={value}")
    assert refused(status, err), (key, value, status, err)
    assert key in err
    assert snapshot(run_copy) == before


FLAGS = [("eval", "--episodes", 1), ("eval", "--beams", 1), ("eval", "--seed", 0), ("sample", "--shots", 0),
         ("sample", "--n", 1), ("sample", "--seed", 0), ("train", "--seed", 0), ("data", "--seed", 0),
         ("bench", "--repeats", 1), ("repeats", "--episodes", 1), ("repeats", "--seed", 0),
         ("routes", "--episodes", 1)]


@settings(max_examples=40)
@given(st.sampled_from(FLAGS), st.one_of(st.integers(-10**6, -1), st.sampled_from(["x", "", "2.5", "1e3"])))
def test_every_numeric_flag_refuses_bad_values(run_copy, flag, value):
    command, name, lo = flag
    if isinstance(value, int):
        value = lo + value    # always below the lowest allowed
    args = {"eval": ["--run", run_copy], "sample": ["--run", run_copy], "repeats": ["--run", run_copy],
            "routes": ["--run", run_copy], "train": ["--out", run_copy],
            "data": ["--out", os.path.join(run_copy, "world.png")], "bench": ["--out", run_copy]}[command]
    before = snapshot(run_copy)
    status, _, err = run_main(command, *args, name, str(value))
    assert refused(status, err) and status == 2, (flag, value, err)
    assert name in err
    assert snapshot(run_copy) == before


def corrupt_bytes(real):
    return st.one_of(
        st.just(b""),                                                              # empty
        st.integers(1, len(real) - 1).map(lambda n: real[:n]),                     # truncated
        st.binary(min_size=1, max_size=2000),                                      # noise
        st.integers(0, len(real) - 1).map(lambda i: real[:i] + bytes([real[i] ^ 0xFF]) + real[i + 1:]),  # one byte
        st.sampled_from(["tensor", "dict", "old"]).map(_foreign))                  # valid torch files, not ours


def _foreign(kind):
    buf = io.BytesIO()
    obj = {"tensor": torch.zeros(3), "dict": {"weights": torch.ones(2)},
           "old": {"stage": "lm", "step": 3, "done": True}}[kind]   # an older version's checkpoint: no format stamp
    torch.save(obj, buf)
    return buf.getvalue()


@settings(max_examples=30)
@given(st.data(), st.sampled_from(["lm", "vision", "flamingo"]), st.sampled_from(["eval", "train", "sample"]))
def test_a_damaged_checkpoint_is_named_with_the_fix(run_copy, data, stage, command):
    assume(command == "train" or stage == "flamingo")    # eval and sample read flamingo.pt alone
    path = ckpt_path(run_copy, stage)
    real = pathlib.Path(path).read_bytes()
    damaged = data.draw(corrupt_bytes(real))
    try:
        with open(path, "wb") as f:
            f.write(damaged)
        before = snapshot(run_copy)
        args = {"eval": ["eval", "--run", run_copy, "--episodes", "1"], "sample": ["sample", "--run", run_copy],
                "train": ["train", "--out", run_copy, "--preset", "quick", "--no-eval"] + [
                    a for s in TINY_SETS for a in ("--set", s)]}[command]
        status, _, err = run_main(*args)
        if same_contents(damaged, real):
            return  # a flipped byte in the zip's padding or a device tag changes nothing loaded: nothing to refuse
        assert refused(status, err), (stage, command, err)
        assert os.path.basename(path) in err and ("retrain" in err or "delete" in err)
        assert snapshot(run_copy) == before
    finally:
        with open(path, "wb") as f:
            f.write(real)


def same_contents(damaged, real):
    """Do both load to the same objects, read as the program reads them? (Mapped to the CPU: a flipped byte in a
    storage's device tag then changes nothing that is loaded.)"""
    load = lambda b: torch.load(io.BytesIO(b), map_location="cpu", weights_only=True)  # noqa: E731
    try:
        return fingerprint(load(damaged)) == fingerprint(load(real))
    except Exception:
        return False


# --- nothing half-written --------------------------------------------------------------------------------------------
def test_a_failure_inside_the_work_changes_no_file(run_copy, monkeypatch):
    before = snapshot(run_copy)

    def broken(*a, **k):
        raise FlamingoError("the picture could not be drawn")

    monkeypatch.setattr(plots, "fewshot", broken)   # fails after the evaluation, before any write
    status, _, err = run_main("eval", "--run", run_copy, "--episodes", "1", "--shots", "none,1", "--beams", "1")
    assert refused(status, err) and "could not be drawn" in err
    assert snapshot(run_copy) == before
    status, _, err = run_main("eval", "--run", run_copy, "--tasks", ",", "--episodes", "1")
    assert refused(status, err) and "no task" in err              # a typo used to empty eval.json
    assert snapshot(run_copy) == before


def test_outputs_that_cannot_be_written_are_refused_before_the_work(run_copy, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    for argv in (["data", "--out", str(blocker / "x.png")], ["sample", "--run", run_copy, "--out",
                                                              str(blocker / "s.png")]):
        status, _, err = run_main(*argv)
        assert refused(status, err) and str(blocker) in err, err
    assert not list(tmp_path.glob("**/*.tmp"))


# --- the real program ------------------------------------------------------------------------------------------------
def program(*args):
    return subprocess.run([sys.executable, os.path.join(ROOT, "main.py"), *args], capture_output=True, text=True)


def test_the_real_program_answers_in_one_line(run_copy, tmp_path):
    cases = [
        (["eval", "--run", str(tmp_path / "nothing")], "no run folder"),
        (["eval", "--run", str(tmp_path)], "no finished flamingo checkpoint"),
        (["eval", "--run", run_copy, "--tasks", "dance"], "unknown task 'dance'"),
        (["eval", "--run", run_copy, "--shots", "40"], "use at most"),
        (["eval", "--run", run_copy, "--episodes", "0"], "--episodes"),
        (["train", "--set", "train.nothing=1"], "no such setting"),
        (["train", "--set", "model.n_heads=3", "--out", str(tmp_path / "r")], "model.n_heads=3"),
        (["data", "--out", "/dev/null/x.png"], "/dev/null/x.png"),
        (["check", "--file", str(tmp_path / "missing.py")], "no exercise file"),
    ]
    for args, words in cases:
        r = program(*args)
        assert refused(r.returncode, r.stderr) and words in r.stderr, (args, r.stderr)
    assert not os.path.exists(tmp_path / "r")
    top = program("--help")
    assert top.returncode == 0 and all(c in top.stdout for c in ("train", "eval", "report", "sample", "data", "check",
                                                                   "bench"))
    train_help = " ".join(program("train", "--help").stdout.split())   # undo argparse's line wrapping
    assert "--preset" in train_help
    assert all(f" {part}.{f.name} {main.shown(f.default)} " in train_help for part, f in settable()), \
        "train --help lists every --set key with its default"


@pytest.mark.parametrize("command, shows", [("repeats", "label shown 1x"), ("routes", "without 1")])
def test_binding_readings_write_their_record_and_refuse_a_task_without_labels(tiny_run, tmp_path, command, shows):
    run = str(tmp_path / "run")
    shutil.copytree(tiny_run, run)
    before = snapshot(run)
    for argv, says in ((["--task", "question"], "no label to bind"), (["--shots", "0,2"], "without supports")):
        status, _, err = run_main(command, "--run", run, "--episodes", "2", *argv)
        assert refused(status, err) and says in err, err
    assert snapshot(run) == before
    status, out, err = run_main(command, "--run", run, "--episodes", "4", "--shots", "2,4")
    assert status == 0, err
    saved = json.load(open(os.path.join(run, f"{command}_bind.json")))
    assert list(saved["shots"]) == ["2", "4"] and saved["episodes"] == 4
    assert os.path.getsize(os.path.join(run, f"{command}_bind.png")) > 0 and shows in out


def test_training_the_bridge_watches_its_binding(tiny_run, tmp_path):
    """The summary says where the bridge's watched binding stood, and binding.png draws it."""
    out = str(tmp_path / "run")
    os.makedirs(out)
    for stage in ("lm", "vision"):
        shutil.copy(ckpt_path(tiny_run, stage), out)
    status, stdout, err = run_main("train", "--out", out, "--preset", "quick", "--stage", "flamingo", "--no-eval",
                                   *[a for s in TINY_SETS for a in ("--set", s)])
    assert status in (0, None), err
    logged = [json.loads(line) for line in open(os.path.join(out, "metrics.jsonl"))]
    watched = [m["bind"] for m in logged if "bind" in m]
    assert len(watched) == 2 and all(0 <= b <= 1 for b in watched)   # step 0 and the last of 12
    line = next(line for line in stdout.splitlines() if "the bridge's binding" in line)
    assert ("never reached" in line) == (max(watched) < 2 / 3)
    assert os.path.getsize(os.path.join(out, "binding.png")) > 0


def test_checkpoints_brought_into_a_new_folder_report_their_own_final_loss(tiny_run, tmp_path):
    """A run folder whose stages all come from another folder's checkpoints has no log of them; the summary reads each
    stage's final loss from its checkpoint, the same number the other folder logged at its last step."""
    out = str(tmp_path / "run")
    os.makedirs(out)
    for stage in ("lm", "vision", "flamingo"):
        shutil.copy(ckpt_path(tiny_run, stage), out)
    status, stdout, err = run_main("train", "--out", out, "--preset", "quick", "--no-eval",
                                   *[a for s in TINY_SETS for a in ("--set", s)])
    assert status in (0, None), err
    logged = [json.loads(line) for line in open(os.path.join(tiny_run, "metrics.jsonl"))]
    for stage in ("lm", "vision", "flamingo"):
        last = [m["loss"] for m in logged if m["stage"] == stage][-1]
        said = re.search(rf"^  {stage} +[\d.]+ s   final loss (\S+)$", stdout, re.M)
        assert said and said[1] == f"{last:.3f}", (stage, said and said[1], last)


def test_training_the_lm_names_its_heads_by_the_attribute_the_labels_name(tmp_path):
    """The LM stage's summary reads its binding heads apart by the bound attribute, and heads.png draws both halves."""
    out = str(tmp_path / "run")
    status, stdout, err = run_main("train", "--out", out, "--preset", "quick", "--stage", "lm",
                                   *[a for s in TINY_SETS + ["train.lm_steps=4"] for a in ("--set", s)])
    assert status in (0, None), err
    line = next(line for line in stdout.splitlines() if "binding heads" in line)
    said = re.search(r"by the attribute the labels name: colour (\d+)%, (.*); shape (\d+)%, (.*); highest", line)
    assert said and all(0 <= int(said[i]) <= 100 for i in (1, 3))
    assert all(s.startswith(("through layer", "no head prefers its labels")) for s in (said[2], said[4]))
    assert os.path.getsize(os.path.join(out, "heads.png")) > 0
    assert re.search(r"where the labels name the colour: (at step \d+|never)", stdout)


def test_report_summarises_seeds(tiny_run, tmp_path):
    runs = [str(tmp_path / f"seed{s}") for s in (0, 1)]
    for seed, run in enumerate(runs):
        shutil.copytree(tiny_run, run)
        status, _, err = run_main("eval", "--run", run, "--episodes", "1", "--shots", "none,1", "--beams", "1",
                                  "--seed", str(seed), "--tasks", "bind,count")
        assert status == 0, err
    status, out, err = run_main("report", *runs, "--out", str(tmp_path))
    assert status == 0, err
    assert "over seeds 0, 1" in out and os.path.exists(tmp_path / "report.json")
    assert os.path.exists(tmp_path / "fewshot.png")
    status, _, err = run_main("report", runs[0], str(tmp_path / "nothing"))
    assert refused(status, err) and "eval.json" in err


@pytest.mark.parametrize("folder, first, sets", [(".", "main", True), ("tests", "conftest", True),
                                                 ("lessons", "own_checkout", True), (".", "flamingo_min", False),
                                                 (".", "toy_data", False)])
def test_every_entry_point_lets_idle_threads_sleep_soon(folder, first, sets):
    """Two torch processes on a 2-core machine whose idle OpenMP threads spin long run several times slower each
    (`python main.py bench`: contention). Importing an entry point (the command line, the tests' conftest, the module
    every lesson imports first) sets GOMP_SPINCOUNT=1000 before torch loads OpenMP, unless the environment already
    chose how threads wait: then that choice stands. The library itself leaves the environment alone: the setting is
    made once, where a program starts. (The child forgets what the environment set, so that only the import is
    tested.)"""
    for given, expected in ((None, "1000" if sets else None), ("PASSIVE", None), ("ACTIVE", None)):
        forget = "[os.environ.pop(k, None) for k in ('OMP_WAIT_POLICY', 'GOMP_SPINCOUNT')]; "
        choose = f"os.environ['OMP_WAIT_POLICY'] = {given!r}; " if given else ""
        show = (f"import os, sys; sys.path.insert(0, {os.path.join(ROOT, folder)!r}); {forget}{choose}"
                f"import {first}, torch; print(os.environ.get('GOMP_SPINCOUNT'))")
        out = subprocess.run([sys.executable, "-c", show], cwd=ROOT, capture_output=True, text=True)
        assert out.returncode == 0 and out.stdout.split() == [str(expected)], out.stderr


def test_scale_passes_its_settings_on_and_refuses_a_bad_one_before_any_work(tmp_path, monkeypatch):
    from flamingo_min.lab import scale
    out = tmp_path / "scale"
    status, _, err = run_main("scale", "--out", str(out), "--seeds", "1", "--set", "train.lm_stepz=1500")
    assert refused(status, err) and "train.lm_stepz" in err and "train.lm_steps" in err, err
    assert not out.exists() or not any(out.rglob("*"))
    seen = {}
    monkeypatch.setattr(scale, "run", lambda *a, **k: seen.update(k) or {"sizes": {}})
    monkeypatch.setattr(scale, "table", lambda result: "")
    status, _, err = run_main("scale", "--out", str(out), "--set", "train.lm_steps=1500", "--set", "data.infer_text=0")
    assert status in (0, None), err
    assert seen["overrides"] == ["train.lm_steps=1500", "data.infer_text=0"]
