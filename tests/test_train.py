"""Training and evaluation at a tiny scale: determinism, freezing, resume after SIGKILL, clear failures, eval.json's
schema, baselines and the summary over seeds. (The command line's errors: test_cli.py.)"""
import json
import os
import pathlib
import subprocess
import sys

import pytest
import torch

import flamingo_min.train as train
from conftest import TINY_RUN, kill_when_written, train_all
from flamingo_min.config import make_config
from flamingo_min.errors import CheckpointError, EvalError, TrainingError
from flamingo_min import checkpoints, runs
from flamingo_min.evaluate import (baseline_scores, episode_images, episodes_for, evaluate, prompt_for,
                                   rank_candidates, rices)
from flamingo_min.lab.report import summarise, table
from toy_data import TOKENIZER, DocumentStream
from toy_data.documents import collate
from toy_data.tasks import RICH_TASKS, TASKS, token_f1

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = TINY_RUN
CFG = make_config("quick", TINY)


def test_same_seed_same_numbers_and_frozen_parts_untouched(tiny_run, tmp_path):
    train_all(str(tmp_path))
    a, b = runs.read_metrics(tiny_run), runs.read_metrics(str(tmp_path))
    strip = lambda ms: [{k: v for k, v in m.items() if k != "time"} for m in ms]
    assert strip(a) == strip(b) and len(a) == 12 + 8 + 12
    lm, vision, fl = (checkpoints.load_checkpoint(runs.ckpt_path(tiny_run, s))["model"] for s in runs.STAGES)
    for k, v in lm.items():
        assert torch.equal(fl["lm." + k], v), k                  # bit-identical after stage flamingo
    for k, v in vision.items():
        if k.startswith("vision."):
            assert torch.equal(fl[k], v), k
    ids, mask, images, counts = collate([DocumentStream(CFG.data, 99)[i] for i in range(64)])   # held-out docs
    trained, fresh = runs.load_run(tiny_run)[0], runs.build_flamingo(tiny_run, CFG, torch.device("cpu")).eval()
    with torch.no_grad():
        loss = {name: train.next_token_loss(m(ids, images=images), ids, mask).item()
                for name, m in (("fresh", fresh), ("trained", trained))}
    assert loss["trained"] < loss["fresh"] - 0.05                 # the bridge learns something (4.83 -> 4.59)


def _cli(out, steps, extra=()):
    sets = [s for s in TINY if not s.startswith("train.lm_steps")] + [f"train.lm_steps={steps}", "train.ckpt_every=10"]
    cmd = [sys.executable, os.path.join(ROOT, "main.py"), "train", "--preset", "quick", "--out", out, "--stage", "lm",
           "--device", "cpu"] + [a for s in sets for a in ("--set", s)] + list(extra)
    return cmd


def test_resume_after_sigkill_matches_an_uninterrupted_run(tmp_path):
    whole, killed = str(tmp_path / "whole"), str(tmp_path / "killed")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    subprocess.run(_cli(whole, 120), check=True, capture_output=True, env=env)
    ckpt = os.path.join(killed, "lm.pt")
    kill_when_written(_cli(killed, 120), ckpt, env, timeout=120)
    saved = checkpoints.load_checkpoint(ckpt)
    assert not saved["done"] and 0 < saved["step"] < 120
    subprocess.run(_cli(killed, 120), check=True, capture_output=True, env=env)   # the same command resumes
    a = checkpoints.load_checkpoint(os.path.join(whole, "lm.pt"))
    b = checkpoints.load_checkpoint(ckpt)
    assert b["done"] and b["step"] == 120
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    strip = lambda run: [{k: v for k, v in m.items() if k != "time"} for m in runs.read_metrics(run)]
    assert strip(whole) == strip(killed)


def test_flamingo_stage_resumes_exactly(tiny_run, tmp_path):
    run = str(tmp_path)
    for s in ("lm", "vision"):   # reuse the finished pretraining stages
        os.link(runs.ckpt_path(tiny_run, s), runs.ckpt_path(run, s))
    train.run_stage(run, "flamingo", CFG, progress=False, stop_after=6)
    assert checkpoints.load_checkpoint(runs.ckpt_path(run, "flamingo"))["step"] == 6
    train.run_stage(run, "flamingo", CFG, progress=False)
    a = checkpoints.load_checkpoint(runs.ckpt_path(tiny_run, "flamingo"))["model"]
    b = checkpoints.load_checkpoint(runs.ckpt_path(run, "flamingo"))["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_compiled_blocks_train_the_same_numbers_and_resume_eager(tiny_run, tmp_path):
    """train.compile changes the speed, never the numbers (float tolerance), and is no part of a run's identity: a
    compiled run resumes eager."""
    logs = {}
    for mode in ("off", "default"):
        run = str(tmp_path / mode)
        os.makedirs(run)
        for s in ("lm", "vision"):
            os.link(runs.ckpt_path(tiny_run, s), runs.ckpt_path(run, s))
        train.run_stage(run, "flamingo", make_config("quick", TINY + [f"train.compile={mode}"]), progress=False,
                        stop_after=4)
        logs[mode] = runs.read_metrics(run)
    assert len(logs["off"]) == len(logs["default"]) == 4
    for a, b in zip(logs["off"], logs["default"]):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5) and a["xattn0"] == pytest.approx(b["xattn0"], rel=1e-4)
    train.run_stage(str(tmp_path / "default"), "flamingo", CFG, progress=False)     # eager, from the compiled run
    assert checkpoints.load_checkpoint(runs.ckpt_path(str(tmp_path / "default"), "flamingo"))["done"]


def test_clear_failures_leave_the_last_checkpoint_intact(tiny_run, tmp_path, monkeypatch):
    run = str(tmp_path)
    with pytest.raises(CheckpointError, match="no finished 'lm' stage"):
        train.run_stage(run, "flamingo", CFG, progress=False)
    other = make_config("quick", TINY + ["train.lm_lr=0.01"])
    os.link(runs.ckpt_path(tiny_run, "lm"), runs.ckpt_path(run, "lm"))
    with pytest.raises(CheckpointError, match=r"train.lm_lr: 0.003 in the checkpoint, 0.01 now"):
        train.run_stage(run, "lm", other, progress=False)
    fresh = str(tmp_path / "nan")
    os.makedirs(fresh)
    train.run_stage(fresh, "lm", CFG, progress=False, stop_after=4)
    before = pathlib.Path(runs.ckpt_path(fresh, "lm")).read_bytes()
    monkeypatch.setattr(train, "next_token_loss", lambda *a: torch.tensor(float("nan"), requires_grad=True))
    with pytest.raises(TrainingError, match="loss became nan at step 4.*is intact"):
        train.run_stage(fresh, "lm", CFG, progress=False)
    assert pathlib.Path(runs.ckpt_path(fresh, "lm")).read_bytes() == before
    assert not [f for f in os.listdir(fresh) if f.endswith(".tmp")]


def test_the_first_non_finite_step_is_named_with_what_went_wrong():
    losses, norms = torch.ones(10), torch.ones(10)
    assert train.first_non_finite(losses, norms, 0, 10) is None
    losses[7], norms[5] = float("inf"), float("nan")
    assert train.first_non_finite(losses, norms, 0, 10) == "the gradient became nan (its loss was 1) at step 5"
    assert train.first_non_finite(losses, norms, 0, 5) is None                        # [start, upto): 5 not yet
    assert train.first_non_finite(losses, norms, 6, 10) == "the loss became inf at step 7"
    losses[5] = float("nan")                                  # both at one step: its loss is named, not its norm
    assert train.first_non_finite(losses, norms, 2, 10) == "the loss became nan at step 5"


def test_the_binding_curriculum_spans_its_fraction_of_the_bridge_steps():
    cfg = make_config("default", ["train.flamingo_steps=300", "train.redraw_ramp=0.25", "train.doc_batch=8"])
    assert train.datasets(cfg, 0)["doc"][0].ramp == 75 * 8           # documents of the bridge's first 75 steps
    assert train.datasets(make_config("default", ["train.redraw_ramp=0"]), 0)["doc"][0].ramp == 0


def test_a_checkpoint_with_a_setting_this_code_lacks_is_a_different_configuration():
    saved = train.to_dict(CFG)
    saved["data"]["retired_knob"] = 0.5        # written by an older version of the code
    with pytest.raises(CheckpointError, match=r"data.retired_knob: 0.5 in the checkpoint, None now"):
        runs.check_config(saved, CFG, "lm.pt")
    runs.check_config(train.to_dict(CFG), CFG, "lm.pt")   # and the same configuration passes


def test_eval_writes_the_schema(tiny_run):
    model, cfg = runs.load_run(tiny_run)
    result = evaluate(model, cfg.data, shots=("none", "0", "1", "2"), episodes=3, seed=1, beams=2)
    assert set(result) == {"tasks", "held_out", "episodes", "seed"} and result["episodes"] == 3 and result["seed"] == 1
    assert set(result["tasks"]) == {f"{t}/{m}" for t in TASKS + RICH_TASKS for m in ("open", "closed")}
    assert result["held_out"] == list(RICH_TASKS)       # the recipe's documents bind in the plain form only
    for r in result["tasks"].values():
        assert set(r) - {"ideal"} == {"chance", "baselines", "shots"} and list(r["shots"]) == ["none", "0", "1", "2"]
        assert set(r["baselines"]) == {"majority", "last", "uniform"}
        assert all(list(b) == list(r["shots"]) for b in r["baselines"].values())      # a baseline at every shot
        values = [r["chance"], *r["shots"].values(), *(v for b in r["baselines"].values() for v in b.values())]
        assert all(0 <= v <= 1 for v in values)
        assert all(b["none"] == 0 for b in r["baselines"].values())    # no answer in the prompt, none to copy
    assert {n.split("/")[0] for n, r in result["tasks"].items() if "ideal" in r} == {"bind", "match", *RICH_TASKS}
    ideal = result["tasks"]["bind/closed"]["ideal"]
    assert ideal["none"] == ideal["0"] == pytest.approx(1 / 3) and ideal["1"] == 1.0   # no picture: chance
    assert ideal == result["tasks"]["bind-after/open"]["ideal"]                     # the same episodes
    assert result["tasks"]["bind/closed"]["chance"] == pytest.approx(1 / 3)
    assert result["tasks"]["bind/closed"]["baselines"]["uniform"]["1"] == 1.0  # one shot: its label is the answer
    json.dumps(result)


def test_baselines_are_scored_in_the_unit_of_their_mode():
    truth = "a big red circle at top"
    shown = ["a big red circle at left", "a small blue ring at top"]
    open_ = baseline_scores("caption", "open", shown, truth)
    closed = baseline_scores("caption", "closed", shown, truth)
    assert open_["last"] == pytest.approx(token_f1(shown[-1], truth)) and closed["last"] == 0.0
    assert open_["uniform"] == pytest.approx((token_f1(shown[0], truth) + token_f1(shown[1], truth)) / 2)
    assert baseline_scores("bind", "closed", ["tiv", "vop", "tiv"], "tiv") == {"majority": 1.0, "last": 1.0,
                                                                                "uniform": 0.5}
    assert baseline_scores("bind", "open", [], "tiv") == {"majority": 0.0, "last": 0.0, "uniform": 0.0}


def test_every_support_picture_is_its_own():
    """An identical-look episode repeats equal examples; each support must still bring its own picture."""
    ep = episodes_for("match", 1, make_config("default").data, seed=0)[0]
    for k in (4, 8, 16):
        ids, rows, shown = prompt_for(ep, str(k))
        assert rows[:-1] == ep.support_indices(k) and len(set(rows)) == k + 1 and rows[-1] == len(ep.pool)
        assert shown == [ep.pool[i].answer for i in rows[:-1]]
        assert sum(e == ep.pool[rows[0]] for e in ep.pool) > 1 or k < 16    # equal examples do occur
    images = episode_images(ep, make_config("default").data)
    assert len({tuple(images[i].flatten()[:50].tolist()) for i in range(len(ep.pool))}) == len(ep.pool)


def test_summary_of_seeds_and_the_table(tiny_run):
    model, cfg = runs.load_run(tiny_run)
    a = evaluate(model, cfg.data, shots=("none", "2"), episodes=2, seed=0, tasks=("bind", "count"), beams=1)
    b = evaluate(model, cfg.data, shots=("none", "2"), episodes=2, seed=1, tasks=("bind", "count"), beams=1)
    s = summarise([a, b])
    cell = s["tasks"]["bind/closed"]["shots"]["2"]
    values = [a["tasks"]["bind/closed"]["shots"]["2"], b["tasks"]["bind/closed"]["shots"]["2"]]
    assert cell == {"mean": pytest.approx(sum(values) / 2), "min": min(values), "max": max(values),
                    "spread": pytest.approx(max(values) - min(values))}
    assert s["seeds"] == [0, 1]
    assert "over seeds 0, 1" in table([a, b]) and "best baseline" in table(a)
    rich = evaluate(model, cfg.data, shots=("2",), episodes=2, seed=0, tasks=("bind-after", "bind-two"), beams=1)
    assert rich["held_out"] == ["bind-after", "bind-two"]      # the recipe's documents bind in the plain form only
    assert "bind-two*/closed" in table(rich) and "bind-after*/closed" in table(rich)
    assert "*: a binding format no training document used" in table(rich) and "*" not in table(a)
    with pytest.raises(EvalError, match="different tasks or shot counts"):
        summarise([a, evaluate(model, cfg.data, shots=("4",), episodes=1, seed=0, tasks=("bind", "count"))])


def test_rank_candidates_generic_path_equals_one_forward(tiny_run):
    model, cfg = runs.load_run(tiny_run)
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
