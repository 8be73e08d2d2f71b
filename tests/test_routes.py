"""Binding's routes (flamingo_min/lab/routes.py): a closed layer is the layer with its gates at zero, everywhere or in
one part of the prompt, the hooks leave with the block, the readings are booked to the layers that were open, and a
hand-built attention pattern reads as the heads' scores it should."""
from collections import Counter
from dataclasses import replace

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from conftest import TINY
from flamingo_min.errors import EvalError
from flamingo_min.evaluate import episodes_for
from flamingo_min.lab import plots, routes
from flamingo_min.lab.repeats import binding_episodes
from flamingo_min.masking import cross_attention_mask
from flamingo_min.runs import load_run
from strategies import BOS, IMG, batch
from test_model import images_for, model_for
from toy_data import EVAL_NONCE, TOKENIZER

THREE = replace(TINY, n_layers=3)


@pytest.mark.parametrize("n, count", [(1, 4), (2, 8), (3, 14), (4, 24)])
def test_every_set_of_open_layers_is_read_once_and_each_layer_in_each_part(n, count):
    found = routes.closings(n)
    assert len(found) == count
    sets = [tuple(layers) for layers, part in found.values() if part == "everywhere"]
    assert len(sets) == len(set(sets))
    assert found["all open"] == ([], "everywhere") and found["none open (the LM)"] == (list(range(n)), "everywhere")
    assert all(found[f"without {j} at the {part}"] == ([j], part) for j in range(n) for part in ("supports", "query"))
    if n == 4:
        assert found["without 1"] == ([1], "everywhere") and found["only 2"] == ([0, 1, 3], "everywhere")
        assert found["only 1+3"] == ([0, 2], "everywhere")


@given(batch(max_images=3), st.booleans(), st.integers(1, 3))
def test_the_query_is_every_position_from_the_last_image_on(ids, only_immediate, latents):
    n = max(1, int((ids == IMG).sum(1).max()))
    mask = cross_attention_mask(ids, IMG, n, latents, only_immediate)
    for row, got in zip(ids.tolist(), routes.at_query(mask).tolist()):
        last = max((t for t, i in enumerate(row) if i == IMG), default=len(row))
        assert got == [t >= last for t in range(len(row))]


@given(batch(max_images=3), st.sets(st.integers(0, 2)))
def test_a_closed_layer_is_the_layer_with_its_gates_at_zero(ids, shut):
    model = model_for(THREE)
    images = images_for(ids)
    with torch.no_grad():
        before = model(ids, images)
        with routes.closed(model, sorted(shut)):
            knocked = model(ids, images)
        assert torch.equal(model(ids, images), before)          # the hooks leave with the block
        for j in shut:
            model.xattn[j].alpha_xattn.zero_(), model.xattn[j].alpha_dense.zero_()
        assert torch.equal(knocked, model(ids, images))


@given(batch(max_images=3), st.integers(0, 2), st.sampled_from(["supports", "query"]))
def test_a_layer_closed_in_one_part_is_open_in_the_other(ids, j, part):
    """Closed at the query, a layer gives its own output at the supports and its input at the query; at the supports,
    the other way round."""
    model = model_for(THREE)
    images = images_for(ids)
    seen = {}

    def record(name):
        return lambda layer, args, out: seen.__setitem__(name, (args[0], out, routes.at_query(args[2])))
    with torch.no_grad():
        handle = model.xattn[j].register_forward_hook(record("open"))
        model(ids, images)
        handle.remove()
        with routes.closed(model, [j], part):
            handle = model.xattn[j].register_forward_hook(record("closed"))   # runs after closed's hook: its output
            model(ids, images)
            handle.remove()
    x, out, query = seen["open"]
    _, knocked, _ = seen["closed"]
    keep = query if part == "query" else ~query
    assert torch.equal(knocked[keep], x[keep]) and torch.equal(knocked[~keep], out[~keep])


def test_closing_any_open_gate_changes_the_logits():
    model = model_for(THREE)
    ids = torch.tensor([[BOS, 5, IMG, 7, 8, 9]])
    images = images_for(ids)
    with torch.no_grad():
        everything = model(ids, images)
        for j in range(3):
            with routes.closed(model, [j]):
                knocked = model(ids, images)
            assert not torch.allclose(knocked, everything)


def layer_is_open(model, j):
    """Whether layer j gives its own output at a support's position: of two positions, the one that sees the first of
    two images (the other, seeing the second, is the query)."""
    x, media = torch.zeros(1, 2, model.cfg.d_model), torch.zeros(1, 2, model.cfg.d_model)
    out = model.xattn[j](x, media, torch.tensor([[[True, False], [False, True]]]))
    return not torch.equal(out[:, 0], x[:, 0])


def test_readings_are_booked_to_the_layers_left_open(tiny_run, monkeypatch):
    """A reader that binds only while layer 0 is open at the supports: every set that closes it there reads 0."""
    def reader(model, eps, shot, media, pooled):
        return [ep.query.answer if layer_is_open(model, 0) else next(c for c in ep.candidates if c != ep.query.answer)
                for ep in eps]
    monkeypatch.setattr(routes, "closed_at", reader)
    model, cfg = load_run(tiny_run)
    result = routes.read(model, cfg.data, shots=("2", "4"), episodes=20, seed=3)
    eps = episodes_for("bind", 20, cfg.data, 3, 32)
    assert result["layers"] == [0, 1] and result["chance"] == pytest.approx(1 / cfg.data.ways)
    for shot, rows in result["shots"].items():
        once = sum(Counter(e.answer for e in ep.support(int(shot)))[ep.query.answer] == 1 for ep in eps)
        assert [r["name"] for r in rows][:4] == ["all open", "without 0", "without 1", "none open (the LM)"]
        for r in rows:
            shut = 0 in r["closed"] and r["part"] != "query"      # the reader's layer 0 runs at the supports
            assert r["accuracy"] == (0.0 if shut else 1.0) and r["episodes once"] == once
            assert r["once"] == (None if not once else r["accuracy"])
    for heads in result["heads"].values():                          # the real heads, read through hooks
        m, o = torch.tensor(heads["match"]), torch.tensor(heads["other"])
        assert m.shape == (len(model.lm.blocks), cfg.model.n_heads) and (m >= 0).all() and (o >= 0).all()
        assert (m + o <= 1 + 1e-5).all()
    assert all(layer_is_open(model, j) for j in range(2))           # every hook is gone
    assert "without 1" in routes.table(result) and plots.routes(result).startswith(b"\x89PNG")


def test_a_hand_built_attention_pattern_gives_its_label_scores(tiny_run, monkeypatch):
    """Head 0 of every layer spreads the answer's attention evenly over the prompt's labels, head 1 keeps it on the
    answer's own position: head 0 then reads, per episode, the share of supports that carry the answer's label."""
    labels = torch.tensor([TOKENIZER.ids[w] for w in EVAL_NONCE])

    def pattern(lm, ids, starts=None, forward=None):
        forward()                                                 # the model still runs, pictures and all
        B, T = ids.shape
        weights = torch.zeros(B, 2, T, T)
        on_labels = torch.isin(ids, labels).float()               # (B, T)
        weights[:, 0, -1] = on_labels / on_labels.sum(1, keepdim=True)
        weights[:, 1, -1, -1] = 1
        return [weights] * len(lm.blocks)

    monkeypatch.setattr(routes, "attention", pattern)
    model, cfg = load_run(tiny_run)
    _, eps, media, pooled = binding_episodes(model, cfg.data, "bind", ("4",), 30, 2)
    match, other = routes.label_heads(model, eps, "4", media, pooled, batch_size=7)
    share = sum(Counter(e.answer for e in ep.support(4))[ep.query.answer] / 4 for ep in eps) / len(eps)
    assert match.shape == other.shape == (len(model.lm.blocks), 2)
    assert torch.allclose(match[:, 0], torch.tensor(share)) and torch.allclose(other[:, 0], torch.tensor(1 - share))
    assert match[:, 1].eq(0).all() and other[:, 1].eq(0).all()


@pytest.mark.parametrize("n", [1, 2, 4])
def test_the_picture_draws_any_number_of_gated_layers(n):
    rows = [{"name": name, "closed": layers, "part": part, "accuracy": 0.5, "once": None, "episodes once": 0}
            for name, (layers, part) in routes.closings(n).items()]
    heads = {"match": [[0.5, 0.1]] * 3, "other": [[0.2, 0.3]] * 3}
    result = {"task": "bind", "episodes": 5, "seed": 0, "chance": 1 / 3, "layers": list(range(n)),
              "shots": {"4": rows, "16": rows}, "heads": {"4": heads, "16": heads}}
    assert plots.routes(result).startswith(b"\x89PNG")
    assert "none open (the LM)" in routes.table(result)


@pytest.mark.parametrize("task, shots, says", [("question", ("4",), "no label to bind"),
                                               ("bind", ("0", "4"), "shows no label")])
def test_bad_requests_say_what_to_give(tiny_run, task, shots, says):
    model, cfg = load_run(tiny_run)
    with pytest.raises(EvalError, match=says):
        routes.read(model, cfg.data, task, shots, episodes=2)
