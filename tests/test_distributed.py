"""Data parallelism with torchrun (flamingo_min/distributed.py): two CPU processes (gloo) train the same model as one
process at the same global batch, rank 0 alone writes, and a killed two-process run resumes on one process."""
import os
import subprocess
import sys

import pytest

from flamingo_min import checkpoints, runs
from conftest import TINY_RUN, kill_when_written

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SETS = [s for s in TINY_RUN if not s.startswith(("train.lm_steps", "train.ckpt_every"))] + [
    "train.lm_steps=24", "train.ckpt_every=8"]
ENV = dict(os.environ, OMP_NUM_THREADS="1")


def command(out, processes=1, extra=()):
    launch = [sys.executable] if processes == 1 else [
        sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
    return launch + [os.path.join(ROOT, "main.py"), "train", "--preset", "quick", "--out", out, "--no-eval",
                     "--device", "cpu"] + [a for s in SETS for a in ("--set", s)] + list(extra)


def run(out, processes=1, extra=()):
    done = subprocess.run(command(out, processes, extra), capture_output=True, text=True, env=ENV)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def same_numbers(a, b, rtol=2e-4):
    """Every logged number but the time, equal within float tolerance, line by line."""
    assert [(m["stage"], m["step"]) for m in a] == [(m["stage"], m["step"]) for m in b]
    for x, y in zip(a, b):
        for k, v in x.items():
            if k != "time" and isinstance(v, float):
                assert v == pytest.approx(y[k], rel=rtol, abs=1e-5), (x["stage"], x["step"], k)


@pytest.fixture(scope="module")
def one_process(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("one"))
    run(out)
    return out


def test_two_processes_train_as_one_at_the_same_global_batch(one_process, tmp_path):
    out = str(tmp_path)
    done = run(out, processes=2)
    a, b = runs.read_metrics(one_process), runs.read_metrics(out)
    assert {m["stage"] for m in b} == set(runs.STAGES)
    same_numbers(a, b)                                            # lines written once: rank 0 alone logs
    assert done.stdout.count("summary") == 1                      # rank 0 alone reports
    assert sorted(os.listdir(out)) == sorted(os.listdir(one_process))
    assert checkpoints.load_checkpoint(runs.ckpt_path(out, "flamingo"))["done"]


def test_a_killed_two_process_run_resumes_on_one_process(one_process, tmp_path):
    out = str(tmp_path)
    ckpt = runs.ckpt_path(out, "lm")
    kill_when_written(command(out, processes=2), ckpt, ENV, timeout=120)
    saved = checkpoints.load_checkpoint(ckpt)
    assert not saved["done"] and 0 < saved["step"] < 24
    run(out, processes=1)                                         # the same run, on another world size
    same_numbers(runs.read_metrics(one_process), runs.read_metrics(out))


def test_a_batch_that_does_not_split_over_the_processes_is_refused(tmp_path):
    cmd = command(str(tmp_path), processes=2, extra=["--set", "train.doc_batch=5"])
    done = subprocess.run(cmd, capture_output=True, text=True, env=ENV)
    assert done.returncode != 0
    assert "train.doc_batch=5 does not split over 2 processes" in done.stderr
    assert not os.path.exists(runs.ckpt_path(str(tmp_path), "lm"))


def test_only_train_runs_under_torchrun(tmp_path):
    env = dict(ENV, RANK="0", WORLD_SIZE="2")    # what torchrun sets in each process
    done = subprocess.run([sys.executable, os.path.join(ROOT, "main.py"), "data", "--out", str(tmp_path / "w.png")],
                          capture_output=True, text=True, env=env)
    assert done.returncode == 1 and "only `train` runs under torchrun" in done.stderr
    assert not os.listdir(tmp_path)
