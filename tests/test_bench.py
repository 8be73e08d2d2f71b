"""What the benchmark must guarantee, checked on a tiny model in seconds (its timings are printed by
`python main.py bench`, never asserted: these machines are shared and noisy)."""
import importlib.util

import pytest
import torch

from conftest import TINY
from flamingo_min import runs
from flamingo_min.lab import bench

# The step split's stages at a tiny width and batch: what is timed, not how fast.
SMALL = ["model.d_model=32", "model.n_layers=2", "model.n_heads=2", "model.vision_width=16", "model.embed_dim=16",
         "model.latents=3", "model.resampler_layers=1", "model.context=240", "data.text_len=64", "train.lm_batch=4",
         "train.vision_batch=16", "train.doc_batch=4", "train.pair_batch=4"]


def test_bench_sections_and_their_guarantees():
    r = bench.run(torch.device("cpu"), repeats=1, quick=True, progress=lambda s: None, cfg=TINY,
                  compile=False, recipe_steps=4, split_overrides=SMALL, contend=False)
    assert set(r) >= {"train_step", "utilisation", "scaling", "inference", "recipe", "split"}
    assert "contention" not in r
    for stage in runs.STAGES:                 # every phase of a real step timed, the data phase split into its parts
        v = r["split"][stage]
        assert set(v) == {"step_s", "data", "forward", "backward", "optimiser", *bench.DATA} | (
            {"ops"} if stage == "flamingo" else set())
        assert v["forward"] > 0 and v["backward"] > 0 and v["data"] > 0
        # the profiler found the loader's labels: their shares make up the whole data phase (0 if none was seen)
        assert sum(v[k] for k in bench.DATA) == pytest.approx(v["data"])
    assert "compiled_step" not in r and set(r["recipe"]) == {"eager"}     # compiled sections: tests/test_train.py
    eager = r["recipe"]["eager"]
    assert eager["total_s"] == sum(eager[s]["projected_s"] for s in runs.STAGES) > 0
    peer = importlib.util.find_spec("flamingo_pytorch") is not None
    assert ("flamingo-pytorch" in r["train_step"]) == peer == ("speedup" in r["train_step"])
    res, txt, img = r["scaling"]["resolution"], r["scaling"]["text_length"], r["scaling"]["images"]
    # The resampler hands the gated layers R tokens per image whatever the resolution: their work cannot grow.
    assert res["16"]["xattn_flops"] == res["32"]["xattn_flops"] > 0
    assert res["16"]["activation_bytes"] < res["32"]["activation_bytes"]      # the encoder's own work does grow
    assert txt["32"]["xattn_flops"] < txt["64"]["xattn_flops"]
    assert txt["32"]["activation_bytes"] < txt["64"]["activation_bytes"]
    assert img["1"]["activation_bytes"] < img["4"]["activation_bytes"]
    assert r["inference"]["same_tokens"]                  # the KV cache changes the speed, never the answer
    u = r["utilisation"]
    assert u["fraction"] == u["model_flops_per_s"] / u["matmul_flops_per_s"] > 0
    text = bench.table(r)
    assert all(w in text for w in ("training step", "utilisation", "scaling with resolution", "inference", "recipe",
                                   "where a real training step goes"))
    assert bench.plot(r)[:8] == b"\x89PNG\r\n\x1a\n"


def test_saved_bytes_counts_what_autograd_keeps():
    x = torch.randn(100, requires_grad=True)
    with bench.saved_bytes() as saved:
        (x * x).sum()
    assert saved[0] == 2 * 100 * 4   # x * x saves both operands
