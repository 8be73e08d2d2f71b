"""The benchmark runs and reports every section (numbers are printed by `python main.py bench`, never asserted)."""
import importlib.util

import torch

from flamingo_min import bench


def test_bench_reports_every_section():
    r = bench.run(torch.device("cpu"), repeats=1, quick=True, progress=lambda s: None)
    assert set(r) >= {"train_step", "utilisation", "scaling", "inference"}
    assert r["train_step"]["ours"]["tokens_per_s"] > 0
    peer = importlib.util.find_spec("flamingo_pytorch") is not None
    assert ("flamingo-pytorch" in r["train_step"]) == peer
    assert set(r["scaling"]) == {"resolution", "images", "text_length"}
    assert 0 < r["utilisation"]["fraction"]
    assert r["inference"]["kv_cache_s"] > 0 and r["inference"]["recompute_s"] > 0
    assert "training step" in bench.table(r)


def test_saved_bytes_counts_what_autograd_keeps():
    x = torch.randn(100, requires_grad=True)
    with bench.saved_bytes() as saved:
        (x * x).sum()
    assert saved[0] == 2 * 100 * 4   # x * x saves both operands
