"""Training (issue 4) and evaluation plumbing (issue 5) at a tiny scale: determinism, freezing, resume after SIGKILL,
clear failures, eval.json's schema and the command line's errors."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

import flamingo_min.train as train
from flamingo_min.config import make_config
from flamingo_min.evaluate import evaluate, rank_candidates, rices
from toy_data import TOKENIZER

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["model.d_model=32", "model.n_layers=2", "model.n_heads=2", "model.vision_width=16", "model.embed_dim=16",
        "model.latents=3", "model.resampler_layers=1", "model.context=160", "data.text_len=64",
        "train.lm_steps=12", "train.vision_steps=8", "train.flamingo_steps=12", "train.lm_batch=4",
        "train.vision_batch=16", "train.doc_batch=4", "train.pair_batch=4", "train.ckpt_every=4",
        "train.log_every=1", "train.warmup=4", "train.eval_episodes=3"]
CFG = make_config("quick", TINY)


def train_all(run, seed=0):
    os.makedirs(run, exist_ok=True)
    return [train.run_stage(run, s, CFG, seed, progress=False) for s in train.STAGES]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    run = str(tmp_path_factory.mktemp("run"))
    train_all(run)
    return run


def test_same_seed_same_numbers_and_frozen_parts_untouched(tiny_run, tmp_path):
    train_all(str(tmp_path))
    a, b = train.read_metrics(tiny_run), train.read_metrics(str(tmp_path))
    strip = lambda ms: [{k: v for k, v in m.items() if k != "time"} for m in ms]
    assert strip(a) == strip(b) and len(a) == 12 + 8 + 12
    lm, vision, fl = (train.load_checkpoint(train.ckpt_path(tiny_run, s))["model"] for s in train.STAGES)
    for k, v in lm.items():
        assert torch.equal(fl["lm." + k], v), k                  # bit-identical after stage flamingo
    for k, v in vision.items():
        if k.startswith("vision."):
            assert torch.equal(fl[k], v), k
    first = [m for m in a if m["stage"] == "flamingo"]
    assert first[-1]["loss"] < first[0]["loss"]                  # the bridge learns something


def _cli(out, steps, extra=()):
    sets = [s for s in TINY if not s.startswith("train.lm_steps")] + [f"train.lm_steps={steps}", "train.ckpt_every=10"]
    cmd = [sys.executable, os.path.join(ROOT, "main.py"), "train", "--preset", "quick", "--out", out, "--stage", "lm",
           "--device", "cpu"] + [a for s in sets for a in ("--set", s)] + list(extra)
    return cmd


def test_resume_after_sigkill_matches_an_uninterrupted_run(tmp_path):
    whole, killed = str(tmp_path / "whole"), str(tmp_path / "killed")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    subprocess.run(_cli(whole, 120), check=True, capture_output=True, env=env)
    proc = subprocess.Popen(_cli(killed, 120), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    ckpt = os.path.join(killed, "lm.pt")
    deadline = time.time() + 120
    while not os.path.exists(ckpt) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    saved = train.load_checkpoint(ckpt)
    assert not saved["done"] and 0 < saved["step"] < 120
    subprocess.run(_cli(killed, 120), check=True, capture_output=True, env=env)   # the same command resumes
    a = train.load_checkpoint(os.path.join(whole, "lm.pt"))
    b = train.load_checkpoint(ckpt)
    assert b["done"] and b["step"] == 120
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    strip = lambda run: [{k: v for k, v in m.items() if k != "time"} for m in train.read_metrics(run)]
    assert strip(whole) == strip(killed)


def test_flamingo_stage_resumes_exactly(tiny_run, tmp_path):
    run = str(tmp_path)
    for s in ("lm", "vision"):   # reuse the finished pretraining stages
        os.link(train.ckpt_path(tiny_run, s), train.ckpt_path(run, s))
    train.run_stage(run, "flamingo", CFG, progress=False, stop_after=6)
    assert train.load_checkpoint(train.ckpt_path(run, "flamingo"))["step"] == 6
    train.run_stage(run, "flamingo", CFG, progress=False)
    a = train.load_checkpoint(train.ckpt_path(tiny_run, "flamingo"))["model"]
    b = train.load_checkpoint(train.ckpt_path(run, "flamingo"))["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_clear_failures_leave_the_last_checkpoint_intact(tiny_run, tmp_path, monkeypatch):
    run = str(tmp_path)
    with pytest.raises(SystemExit, match="needs a finished 'lm' stage"):
        train.run_stage(run, "flamingo", CFG, progress=False)
    other = make_config("quick", TINY + ["train.lm_lr=0.01"])
    os.link(train.ckpt_path(tiny_run, "lm"), train.ckpt_path(run, "lm"))
    with pytest.raises(SystemExit, match=r"train.lm_lr: 0.003 in the checkpoint, 0.01 now"):
        train.run_stage(run, "lm", other, progress=False)
    fresh = str(tmp_path / "nan")
    os.makedirs(fresh)
    train.run_stage(fresh, "lm", CFG, progress=False, stop_after=4)
    before = open(train.ckpt_path(fresh, "lm"), "rb").read()
    monkeypatch.setattr(train, "next_token_loss", lambda *a: torch.tensor(float("nan"), requires_grad=True))
    with pytest.raises(SystemExit, match="loss became nan at step 4.*is intact"):
        train.run_stage(fresh, "lm", CFG, progress=False)
    assert open(train.ckpt_path(fresh, "lm"), "rb").read() == before
    assert not [f for f in os.listdir(fresh) if f.endswith(".tmp")]


def test_eval_writes_the_schema(tiny_run):
    model, cfg = train.load_run(tiny_run)
    result = evaluate(model, cfg.data, shots=(0, 1, 2), episodes=3, seed=1, beams=2)
    assert set(result) == {"tasks", "episodes", "seed"} and result["episodes"] == 3 and result["seed"] == 1
    assert set(result["tasks"]) == {f"{t}/{m}" for t in ("infer", "bind", "question", "caption", "count")
                                    for m in ("open", "closed")}
    for r in result["tasks"].values():
        assert set(r) == {"chance", "baselines", "shots"} and set(r["shots"]) == {"0", "1", "2"}
        assert set(r["baselines"]) == {"majority", "last"}
        assert all(0 <= v <= 1 for v in [r["chance"], *r["baselines"].values(), *r["shots"].values()])
    assert result["tasks"]["bind/closed"]["chance"] == pytest.approx(1 / 3)
    json.dumps(result)


def test_rank_candidates_generic_path_equals_one_forward(tiny_run):
    model, cfg = train.load_run(tiny_run)
    prompt = TOKENIZER.encode("<bos> <image> a big red circle at top <EOC> <image>")
    media = model.perceive(model.encode(torch.rand(1, 2, 3, 32, 32)))
    cands = ["a small blue ring at left", "two red circles"]
    got = rank_candidates(model, [prompt], media, [cands])[0]
    for c, s in zip(cands, got):
        ids = torch.tensor([prompt + TOKENIZER.encode(c)])
        with torch.no_grad():
            logp = torch.log_softmax(model(ids, media=media), -1)[0]
        want = sum(logp[t - 1, ids[0, t]].item() for t in range(len(prompt), ids.shape[1]))
        assert s == pytest.approx(want, abs=1e-4)


def test_rices_picks_the_most_similar_last():
    pool = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.7, 0.7], [0.9, 0.1], [-1.0, 0.0]])
    assert rices(torch.tensor([1.0, 0.0]), pool, 3) == [2, 3, 0]
    assert rices(torch.tensor([1.0, 0.0]), pool, 0) == []


def test_command_line_errors(tiny_run, tmp_path):
    def run(*args):
        return subprocess.run([sys.executable, os.path.join(ROOT, "main.py"), *args], capture_output=True, text=True)
    r = run("eval", "--run", str(tmp_path / "nothing"))
    assert r.returncode != 0 and "no run folder" in r.stderr
    r = run("eval", "--run", str(tmp_path))
    assert r.returncode != 0 and "no finished flamingo checkpoint" in r.stderr
    r = run("eval", "--run", tiny_run, "--tasks", "dance")
    assert r.returncode != 0 and "unknown task 'dance'" in r.stderr
    r = run("eval", "--run", tiny_run, "--shots", "40")
    assert r.returncode != 0 and "use at most" in r.stderr
    r = run("train", "--set", "train.nothing=1")
    assert r.returncode != 0 and "unknown setting 'train.nothing'" in r.stderr
    top = run("--help")
    assert top.returncode == 0 and all(c in top.stdout for c in ("train", "eval", "sample", "data", "check", "bench"))
    assert "--preset" in run("train", "--help").stdout
