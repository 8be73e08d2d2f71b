"""The ablations: every variant is a valid switch that changes what it says and nothing else; the bridges,
gates and layer placements behave as the paper's rows describe; the pretrained stages serve every bridge; and
`main.py ablate` runs end to end, resumes after a kill and names every variant in its table."""
import json
import os
import subprocess
import sys
from dataclasses import replace

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import flamingo_min.train as train
from conftest import TINY, TINY_RUN, kill_when_written
from flamingo_min import Flamingo
from flamingo_min.lab import ablate
from flamingo_min.config import ModelConfig, make_config, to_dict
from flamingo_min.errors import CheckpointError, ConfigError
from flamingo_min import checkpoints, runs
from strategies import IMG
from test_cli import refused, run_main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CFG = make_config("quick", TINY_RUN)


def changed(a, b):
    da, db = to_dict(a), to_dict(b)
    return {f"{p}.{k}" for p in da for k in da[p] if da[p][k] != db[p][k]}


@pytest.mark.parametrize("preset", list(ablate.PRESETS))
def test_every_variant_changes_what_it_names_and_nothing_else(preset):
    base, cfgs = ablate.configs(preset, [], ablate.VARIANTS)
    assert list(cfgs) == ablate.NAMES and len(set(ablate.NAMES)) == len(ablate.NAMES) >= 16
    for v in ablate.VARIANTS:
        settings = v.settings(base) if callable(v.settings) else v.settings
        assert changed(base, cfgs[v.name]) == {s.split("=")[0] for s in settings}, v.name
        assert (v.name == "baseline") == (not settings)


def test_unknown_variants_and_presets_are_refused():
    with pytest.raises(ConfigError, match="unknown variant 'gateless'"):
        ablate.pick(["baseline", "gateless"])
    with pytest.raises(ConfigError, match="unknown ablate preset"):
        ablate.configs("large", [], ablate.VARIANTS)
    status, _, err = run_main("ablate", "--only", "baseline,nope", "--out", "/tmp/never-written")
    assert refused(status, err) and "nope" in err and not os.path.exists("/tmp/never-written")


def _forward(cfg, seed=0):
    torch.manual_seed(seed)
    model = Flamingo(cfg).eval()
    ids = torch.tensor([[TINY.bos_id, IMG, 7, 8, IMG, 9, 10, 11]])
    images = torch.rand(1, 2, 3, 16, 16, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        media = model.perceive(model.encode(images))
        return model, media, model(ids, media=media), model.lm(ids, embed_weight=model.embed_weight())


@pytest.mark.parametrize("kind,tokens", [("perceiver", TINY.latents), ("mlp", 16), ("transformer", 16), ("mean", 1)])
def test_every_bridge_gives_visual_tokens_the_model_reads(kind, tokens):
    model, media, logits, _ = _forward(replace(TINY, resampler=kind))
    assert media.shape == (1, 2, tokens, TINY.d_model)           # 16x16 images: S = 4 * 4 features
    assert logits.shape[:2] == (1, 8) and torch.isfinite(logits).all()
    media2 = model.perceive(model.encode(torch.rand(1, 2, 3, 16, 16)))
    assert not torch.allclose(media, media2)                     # the tokens depend on the picture


def test_only_the_gated_layer_starts_as_the_lm():
    for kind, same in (("gated", True), ("ungated", False), ("vanilla", False)):
        model, _, logits, lm_only = _forward(replace(TINY, xattn_block=kind))
        assert torch.allclose(logits, lm_only, atol=1e-6) == same, kind
    gated, vanilla = (Flamingo(replace(TINY, xattn_block=k)) for k in ("gated", "vanilla"))
    names = lambda m: {n.split(".", 2)[-1] for n, _ in m.trainable_parameters() if n.startswith("xattn.")}
    assert names(gated) - names(vanilla) == {"alpha_xattn", "alpha_dense", "ln_ff.weight", "ln_ff.bias",
                                             "ff_in.weight", "ff_in.bias", "ff_out.weight", "ff_out.bias"}
    assert Flamingo(replace(TINY, xattn_block="ungated")).gates() == {}


@given(st.integers(1, 6).flatmap(lambda n: st.tuples(st.just(n), st.integers(1, n))).flatmap(
    lambda ne: st.tuples(st.just(ne[0]), st.just(ne[1]), st.integers(0, ne[1] - 1))))
def test_cross_attention_sits_before_the_blocks_the_config_names(layout):
    n, every, offset = layout
    cfg = replace(TINY, n_layers=n, xattn_every=every, xattn_offset=offset)
    blocks = cfg.xattn_blocks()
    assert blocks == list(range(offset, n, every)) and blocks
    model = Flamingo(cfg)
    assert len(model.xattn) == len(blocks) and list(model.xattn_at) == blocks
    seen = []
    for j, layer in enumerate(model.xattn):
        layer.register_forward_hook(lambda mod, args, out, j=j: seen.append(("xattn", j)))
    for i, block in enumerate(model.lm.blocks):
        block.register_forward_hook(lambda mod, args, out, i=i: seen.append(("block", i)))
    model(torch.tensor([[TINY.bos_id, IMG, 7]]), images=torch.rand(1, 1, 3, 16, 16))
    expected = [e for i in range(n) for e in ([("xattn", blocks.index(i))] if i in blocks else []) + [("block", i)]]
    assert seen == expected
    with pytest.raises(ValueError, match="xattn_offset"):
        ModelConfig(n_layers=4, xattn_every=2, xattn_offset=2)


def test_pretrained_stages_serve_every_bridge_but_not_a_changed_encoder(tiny_run):
    lm = checkpoints.load_checkpoint(runs.ckpt_path(tiny_run, "lm"))["config"]
    vision = checkpoints.load_checkpoint(runs.ckpt_path(tiny_run, "vision"))["config"]
    _, cfgs = ablate.configs("quick", TINY_RUN, ablate.VARIANTS)
    for name, cfg in cfgs.items():
        runs.check_config(lm, cfg, "lm.pt", "lm")
        if cfg.train.vision_hard_pairs:
            runs.check_config(vision, cfg, "vision.pt", "vision")
        else:
            with pytest.raises(CheckpointError, match="train.vision_hard_pairs"):
                runs.check_config(vision, cfg, "vision.pt", "vision")
        if name != "baseline":
            with pytest.raises(CheckpointError):
                runs.check_config(lm, cfg, "flamingo.pt", "flamingo")


def _bridge(tiny_run, folder, sets, steps=3):
    cfg = make_config("quick", TINY_RUN + sets)
    for s in runs.stages(cfg):
        if s != "flamingo":
            os.link(runs.ckpt_path(tiny_run, s), runs.ckpt_path(folder, s))
    train.run_stage(folder, "flamingo", cfg, progress=False, stop_after=steps)
    return checkpoints.load_checkpoint(runs.ckpt_path(folder, "flamingo"))["model"], runs.read_metrics(folder)


def test_lm_modes_and_data_switches_train_what_they_say(tiny_run, tmp_path):
    lm = checkpoints.load_checkpoint(runs.ckpt_path(tiny_run, "lm"))["model"]
    for mode, moved in (("frozen", False), ("finetune", True)):
        os.makedirs(tmp_path / mode)
        weights, _ = _bridge(tiny_run, str(tmp_path / mode), [f"train.lm_mode={mode}"])
        assert any(not torch.equal(weights["lm." + k], v) for k, v in lm.items()) == moved, mode
    os.makedirs(tmp_path / "scratch")
    weights, _ = _bridge(tiny_run, str(tmp_path / "scratch"), ["train.lm_mode=scratch", "train.vision_mode=random"])
    assert not os.path.exists(runs.ckpt_path(str(tmp_path / "scratch"), "lm"))   # neither stage was needed
    assert not torch.equal(weights["lm.embed.weight"], lm["embed.weight"])
    os.makedirs(tmp_path / "rr")
    _, metrics = _bridge(tiny_run, str(tmp_path / "rr"), ["train.mixing=round_robin"], steps=4)
    assert [sorted(k for k in m if k.startswith("loss_")) for m in metrics] == [["loss_doc"], ["loss_pair"]] * 2
    os.makedirs(tmp_path / "nodoc")
    _, metrics = _bridge(tiny_run, str(tmp_path / "nodoc"), ["train.doc_weight=0"])
    assert all("loss_doc" not in m and "loss_pair" in m for m in metrics)


def test_a_config_without_an_lm_stage_refuses_to_train_one(tmp_path):
    status, _, err = run_main("train", "--out", str(tmp_path), "--set", "train.lm_mode=scratch", "--stage", "lm")
    assert refused(status, err) and "no lm stage" in err and not os.listdir(tmp_path)


def _ablate(out, only):
    sets = [a for s in TINY_RUN for a in ("--set", s)]
    return [sys.executable, os.path.join(ROOT, "main.py"), "ablate", "--preset", "quick", "--device", "cpu",
            "--out", out, "--only", only, *sets]


def test_ablate_runs_resumes_after_a_kill_and_tables_every_variant(tmp_path):
    out = str(tmp_path / "abl")
    env = dict(os.environ, OMP_NUM_THREADS="1", MPLBACKEND="Agg")
    first = os.path.join(out, "baseline", "seed0", "result.json")
    kill_when_written(_ablate(out, "baseline,mean-pool"), first, env)
    assert not os.path.exists(os.path.join(out, "mean-pool", "seed0", "result.json"))
    before = os.stat(first).st_mtime_ns
    r = subprocess.run(_ablate(out, "baseline,mean-pool"), capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    assert os.stat(first).st_mtime_ns == before                   # a finished variant is not trained again
    r = subprocess.run(_ablate(out, "ungated"), capture_output=True, text=True, env=env)   # --only adds a variant
    assert r.returncode == 0, r.stderr[-3000:]
    table = open(os.path.join(out, "ablations.md")).read()
    rows = [line.split("|")[1].strip() for line in table.splitlines() if line.startswith("| ")][1:]
    assert rows == ["baseline", "ungated", "mean-pool"]
    with open(os.path.join(out, "ablations.json")) as f:
        data = json.load(f)["variants"]
    assert list(data) == rows and data["mean-pool"]["trainable"] < data["baseline"]["trainable"]
    assert all(set(d["tasks"]) == set(ablate.HEADLINE) for d in data.values())
    assert os.path.getsize(os.path.join(out, "ablations.png")) > 10_000
    assert runs.load_run(os.path.join(out, "mean-pool", "seed0"))[1].model.resampler == "mean"   # a real run folder
