"""Every lesson runs top to bottom (fast mode), in order, on the models kept in the repository (lessons/trained.py),
never on a run of yours in runs/: lesson 7 trains a miniature run of its own, lessons 8-10 read the shipped models.
Lessons 8, 9 and 10 show what they teach there, read off what they printed: binding above chance and coming with the
examples, the all-images gap growing with shots, the order of a clip's frames mattering. The shipped weights file is
checked like any checkpoint, and `make lesson-weights`' path (build, export, unpack) is run at miniature size."""
import atexit
import functools
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile

import pytest
import torch

from conftest import TINY_RUN
from flamingo_min.config import make_config
from flamingo_min.errors import CheckpointError
from flamingo_min.checkpoints import load_checkpoint
from flamingo_min import runs
from lessons import trained

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LESSONS = sorted(glob.glob(os.path.join(ROOT, "lessons", "[0-9][0-9]_*.py")))
OUT = tempfile.mkdtemp(prefix="lessons-out-")    # the lessons' figures, while the tests run
atexit.register(shutil.rmtree, OUT, True)


@functools.lru_cache(maxsize=None)
def run_lesson(name):
    """A lesson's run, once per test session however many tests read it."""
    # Figures and lesson 7's run go to a folder of the tests' own: a student's lessons/out stays as their runs left it
    env = dict(os.environ, LESSONS_FAST="1", MPLBACKEND="Agg", LESSONS_OUT=OUT, **{trained.SHIPPED: "1"})
    return subprocess.run([sys.executable, os.path.join(ROOT, "lessons", name)], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=600)


def printed(name):
    r = run_lesson(name)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    return r.stdout


def line(text, start):
    """The printed line that starts with `start` (after its indentation)."""
    found = [x for x in text.splitlines() if x.strip().startswith(start)]
    assert found, f"no line starting {start!r} in:\n{text[-3000:]}"
    return found[0]


def test_there_are_ten_lessons():
    assert len(LESSONS) == 10


@pytest.mark.parametrize("path", LESSONS, ids=[os.path.basename(p) for p in LESSONS])
def test_lesson_runs_and_prints_its_summary_and_questions(path):
    out = printed(os.path.basename(path))
    assert "figures in" in out
    assert "\nSummary\n" in out and "\nQuestions (answers: lessons/ANSWERS.md" in out
    assert " 1. " in out.split("\nQuestions")[1], "no numbered question printed"


def test_lesson_8_binding_is_above_chance_and_comes_with_the_examples():
    bind = line(printed("08_few_shot.py"), "bind ")
    acc = {s: float(v) for s, v in re.findall(r"(\w+): (\d\.\d\d)", bind.split("(chance")[0])}
    chance = float(re.search(r"chance (\d\.\d\d)", bind).group(1))
    assert acc["none"] <= chance + 0.1 and acc["0"] <= chance + 0.1, bind
    assert acc["4"] >= chance + 0.2 and acc["8"] >= chance + 0.2, bind
    assert min(acc["2"], acc["4"], acc["8"]) > max(acc["none"], acc["0"]) + 0.2, bind


def test_lesson_8_explains_its_episodes_states_its_noise_and_sets_rices_beside_random():
    out = printed("08_few_shot.py")
    assert out.count("    QUERY: ") == 2 and len(re.findall(r"the model says '[\w-]+': (?:right|wrong): ", out)) == 2
    assert "<- the QUERY" in out
    assert "200 held-out episodes per point (standard error at most 0.035)" in out
    assert len(re.findall(r"^(?:infer|question|bind|match) +none: \d\.\d\d", out, re.M)) == 4
    both = [re.findall(r"\d\.\d\d", x) for x in out.split("random   RICES")[1].splitlines()[1:7]]
    assert all(len(pair) == 2 for pair in both), both   # both sides of every row: the model, and `last`


def test_lessons_4_6_and_10_say_what_they_print():
    out = printed("04_resampler.py")
    assert ("using YOUR implementation" in out) == ("your layer == the real layer: True" in out)
    assert ("using the reference solution" in out) == ("the reference layer runs here" in out)
    assert "phi, word by word: <bos>(0) a(0) <image>(1) dax(1)" in printed("06_masking.py")
    out = printed("10_video.py")
    assert re.search(r"^ +frame 0 frame 1 frame 2 frame 3 latents$", out, re.M)
    assert re.search(r"^  latent 0 +(\d\.\d\d +){4}\d\.\d\d$", out, re.M)


def test_lesson_9_all_images_falls_behind_more_with_more_shots():
    out = printed("09_ablations.py")
    gaps = [float(g) for g in re.findall(r"shots ([-+]\d\.\d\d)", line(out, "the gap, baseline minus all-images"))]
    assert len(gaps) == 4 and gaps[-1] >= 0.1 and gaps[-1] > gaps[0], gaps
    assert re.search(r"^ +gated bridge at initialisation, text only: KL from the LM 0\.0000 ", out, re.M)


def test_lesson_10_the_order_of_frames_matters():
    out = printed("10_video.py")
    acc = {name: float(re.findall(r"(\d\.\d\d)", line(out, name))[0])
           for name in ("in order", "played backwards", "frames shuffled", "temporal embeddings zeroed")}
    assert acc["in order"] >= 0.75 and acc["played backwards"] >= 0.75, acc
    assert max(acc["frames shuffled"], acc["temporal embeddings zeroed"]) <= acc["in order"] - 0.2, acc


# --- the weights file ----------------------------------------------------------------------------------------------
def test_the_shipped_models_are_small_weights_of_the_recipe_that_rebuilds_them():
    assert os.path.getsize(trained.WEIGHTS) < 8e6
    saved = load_checkpoint(trained.WEIGHTS)   # program, format, fingerprint
    assert saved["optim"] == {} and set(saved["config"]) == set(trained.MODELS)
    parts = [saved["model"]["frozen"], *saved["model"]["bridges"].values()]
    assert all(v.dtype == torch.float16 for part in parts for v in part.values() if v.is_floating_point())
    for name in trained.MODELS:   # what `make lesson-weights` would train today
        try:
            runs.check_config(saved["config"][name], trained.config(name), trained.WEIGHTS)
        except CheckpointError as e:
            pytest.fail(f"the shipped {name} model is not what `make lesson-weights` trains now: rebuild it ({e})")


def test_a_damaged_weights_file_is_refused(tmp_path, monkeypatch):
    data = bytearray(open(trained.WEIGHTS, "rb").read())
    data[len(data) // 2] ^= 0xFF
    (tmp_path / "trained.pt").write_bytes(bytes(data))
    monkeypatch.setattr(trained, "WEIGHTS", str(tmp_path / "trained.pt"))
    monkeypatch.setattr(trained, "UNPACKED", str(tmp_path / "lesson"))
    with pytest.raises(CheckpointError):
        trained.run("video")


def test_build_export_and_unpack_give_back_the_trained_models(tmp_path, monkeypatch):
    """`make lesson-weights`' path at miniature size: each unpacked model is its trained run, to float16's rounding,
    and reads as a run folder."""
    monkeypatch.setattr(trained, "config", lambda name: make_config("quick", TINY_RUN + list(trained.MODELS[name])))
    monkeypatch.setattr(trained, "WEIGHTS", str(tmp_path / "trained.pt"))
    monkeypatch.setattr(trained, "UNPACKED", str(tmp_path / "lesson"))
    trained.build(str(tmp_path / "build"), progress=False)
    for name in trained.MODELS:
        model, cfg = runs.load_run(trained.run(name))
        assert cfg == trained.config(name)
        want = load_checkpoint(runs.ckpt_path(str(tmp_path / "build" / name), "flamingo"))["model"]
        for k, v in model.state_dict().items():
            w = want[k].half().float() if want[k].is_floating_point() else want[k]
            assert torch.equal(v, w), k
    shutil.rmtree(tmp_path / "lesson" / "video")   # gone: unpacked again on use
    assert os.path.exists(runs.ckpt_path(trained.run("video"), "flamingo"))
