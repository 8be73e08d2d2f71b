"""The probes: attention weights read through hooks, the induction and label scores on hand-built attention, the
copying onset, and probes watching the LM's stage and the bridge's without changing what they train."""
import json
import os
import shutil

import pytest
import torch
from hypothesis import given, strategies as st

from conftest import TINY, TINY_RUN
from flamingo_min import runs
from flamingo_min.config import make_config
from flamingo_min.evaluate import episodes_for, prompt_for
from flamingo_min.lab import incontext, probes, repeats
from flamingo_min.lm import LM
from flamingo_min.masking import document_starts
from flamingo_min.train import run_stage
from toy_data import TOKENIZER


def small_lm(seed=0):
    torch.manual_seed(seed)
    return LM(len(TOKENIZER), TINY.d_model, TINY.n_layers, TINY.n_heads, TINY.context).eval()


@given(st.integers(0, 50), st.integers(0, 6))
def test_hooked_weights_are_the_attention_the_forward_computes(seed, pad):
    """Weights times values must give the fused kernel's output, for every layer, with left padding (a document of
    its own): the hooks read the attention the model really uses."""
    lm, g = small_lm(seed), torch.Generator().manual_seed(seed)
    ids = torch.randint(5, len(TOKENIZER), (2, 12), generator=g)
    ids[:, 0] = TOKENIZER.bos_id
    ids = torch.cat([torch.full((2, pad), TOKENIZER.pad_id), ids], 1)
    starts = document_starts(ids, TOKENIZER.bos_id, TOKENIZER.pad_id)
    weights = probes.attention(lm, ids, starts)
    assert len(weights) == len(lm.blocks)
    outputs = []
    for block in lm.blocks:   # the attention layers' own outputs, caught as the forward runs
        block.attn.register_forward_hook(lambda m, args, out: outputs.append((args, out)))
    lm(ids, starts)
    for i, (w, (args, out)) in enumerate(zip(weights, outputs)):
        assert torch.allclose(w.sum(-1), torch.ones(()), atol=1e-5)                   # each row a distribution
        assert (w.triu(1) == 0).all()                                                 # causal
        attn = lm.blocks[i].attn
        _, _, v = attn.project(*args[:3])
        mixed = torch.einsum("bhts,bhsd->bthd", w, v).flatten(2)                      # (B, T, D)
        assert torch.allclose(attn.out(mixed), out, atol=1e-5)
        if pad:   # the padding and the document never see each other
            assert (w[:, :, pad:, :pad] == 0).all()


def test_induction_score_of_hand_built_patterns():
    N, T = 5, 11                       # <bos> r1..r5 r1..r5
    exact = torch.zeros(1, 1, 2, T, T)
    exact[..., 0, 0] = 1
    for t in range(1, T):
        exact[0, 0, 0, t, t - N + 1 if t > N else 0] = 1   # head 0: from each repeated token to the one after its twin
        exact[0, 0, 1, t, t] = 1                            # head 1: each token to itself
    score = probes.induction_score(exact, N)
    assert score[0, 0] == pytest.approx(1.0) and score[0, 1] == pytest.approx(0.0)
    causal = torch.ones(T, T).tril()
    uniform = (causal / causal.sum(-1, keepdim=True)).expand(1, 1, 1, T, T)
    want = sum(1 / (t + 1) for t in range(N + 1, 2 * N + 1)) / N   # 1 / (positions a row can see)
    assert probes.induction_score(uniform, N)[0, 0] == pytest.approx(want)


def test_label_mass_splits_a_hand_built_answer_position():
    last = torch.zeros(1, 2, 1, 6)                                   # (L, B, H, T): one head, two episodes
    last[0, 0, 0, 1], last[0, 0, 0, 3], last[0, 0, 0, 5] = 0.6, 0.3, 0.1
    last[0, 1, 0, 2] = 1.0
    match = torch.tensor([[0, 1, 0, 0, 0, 0], [0, 0, 1, 0, 0, 0]], dtype=torch.bool)
    other = torch.tensor([[0, 0, 0, 1, 0, 0], [1, 0, 0, 0, 0, 0]], dtype=torch.bool)
    assert probes.mass_on(last, match).item() == pytest.approx((0.6 + 1.0) / 2)
    assert probes.mass_on(last, other).item() == pytest.approx(0.3 / 2)


def test_label_attention_finds_the_matching_labels():
    """On real episodes: the positions it calls matching hold the answer's word, and the split sums to at most 1."""
    found = probes.label_attention(small_lm(), "after", shots=4, episodes=12)
    assert found["match"].shape == found["other"].shape == (TINY.n_layers, TINY.n_heads)
    assert ((found["match"] + found["other"]) <= 1 + 1e-5).all() and (found["match"] >= 0).all()
    assert 0.0 <= found["accuracy"] <= 1.0


def test_onset_is_the_first_step_at_the_level():
    log = [{"stage": "lm", "step": s, "copy": c} for s, c in ((0, 0.3), (100, 0.5), (200, 0.7), (300, 0.9))]
    assert probes.onset(log) == 200
    assert probes.onset(log[:2]) is None
    assert probes.onset([{"stage": "vision", "step": 0, "copy": 1.0}] + log) == 200   # the LM's log only
    bridge = [{"stage": "flamingo", "step": 0, "loss": 1.0},
              {"stage": "flamingo", "step": 50, "loss": 0.9, "bind": 0.8}]
    assert probes.watched(log + bridge) == {"onset": 200, "curve": [[s, c] for s, c in
                                                                   ((0, 0.3), (100, 0.5), (200, 0.7), (300, 0.9))]}
    assert probes.watched(log + bridge, "flamingo", "bind") == {"onset": 50, "curve": [[50, 0.8]]}
    assert probes.watched(log[:2]) == {"onset": None, "curve": [[0, 0.3], [100, 0.5]]}
    assert probes.watched(bridge) is None                                          # no LM probe logged
    apart = [{**m, "copy shape": m["copy"] + 0.2, "copy colour": m["copy"] - 0.2} for m in log]
    parts = probes.watched(apart)["parts"]
    assert (parts["shape"]["onset"], parts["colour"]["onset"]) == (100, 300)
    assert parts["colour"]["curve"] == [[s, pytest.approx(c)] for s, c in ((0, .1), (100, .3), (200, .5), (300, .7))]


def test_a_probed_stage_trains_the_same_numbers_and_logs_the_probe(tmp_path):
    cfg = make_config("quick", ["train.lm_steps=12", "train.log_every=2", "train.ckpt_every=100",
                                "model.d_model=32", "model.n_layers=2", "model.n_heads=2"])
    seen = []

    def probe(model):
        seen.append(model.training)
        return probes.copying(model, episodes=4)

    for name, p in (("plain", None), ("probed", probe)):
        runs.start_run(str(tmp_path / name), cfg)
        run_stage(str(tmp_path / name), "lm", cfg, progress=False, probe=p, probe_every=4)
    plain, probed = (runs.read_metrics(str(tmp_path / n)) for n in ("plain", "probed"))
    assert [m["loss"] for m in plain] == [m["loss"] for m in probed]          # the probe changes nothing it trains
    assert [m["step"] for m in probed if "copy" in m] == [0, 4, 8, 11]       # every 4th logged step, and the last
    assert seen and all(seen)                                                 # and hands the model back training


def test_a_probed_bridge_trains_the_same_numbers_and_logs_its_binding(tmp_path, tiny_run):
    """Over the tiny run's LM and encoder: the same bridge steps with the binding probe as without it."""
    cfg = make_config("quick", TINY_RUN)
    probe = probes.binding(cfg.data, episodes=6)
    for name, p in (("plain", None), ("probed", probe)):
        run = str(tmp_path / name)
        os.makedirs(run)
        for stage in ("lm", "vision"):
            shutil.copy(runs.ckpt_path(tiny_run, stage), run)
        runs.start_run(run, cfg)
        run_stage(run, "flamingo", cfg, progress=False, probe=p, probe_every=4)
    plain, probed = (runs.read_metrics(str(tmp_path / n)) for n in ("plain", "probed"))
    assert [m["loss"] for m in plain] == [m["loss"] for m in probed]
    watched = [m for m in probed if "bind" in m]
    assert [m["step"] for m in watched] == [0, 4, 8, 11]
    assert all(m["bind"] in {i / 6 for i in range(7)} for m in watched)     # a share of its six episodes
    assert probes.onset(probed, 0.0, "flamingo", "bind") == 0 and probes.onset(probed, 1.01, "flamingo", "bind") is None


def test_the_bridge_probe_never_reads_an_evaluations_episodes():
    """Its episodes' seeds (as random.Random reads them: a negative seed is its absolute value) are none of an
    evaluation's `bind` episodes, for the first evaluation seeds."""
    cfg = make_config("default").data
    mine = {abs(e.seed) for e in episodes_for("bind", 128, cfg, probes.BRIDGE_PROBE_SEED)}
    for seed in range(10):
        assert not mine & {abs(e.seed) for e in episodes_for("bind", 200, cfg, seed)}


@pytest.mark.parametrize("shots", [1, 4, 16])
def test_a_trimmed_episode_shows_the_evaluations_prompt(shots):
    """Cut to its prompt's supports, an episode gives the evaluation's prompt: the same text, labels and pictures'
    scenes, the query's picture last."""
    cfg = make_config("default").data
    full = episodes_for("bind", 40, cfg, 3)
    for ep, cut in zip(full, probes.trimmed_episodes(cfg, shots, 40, seed=3)):
        ids, rows, answers = prompt_for(ep, str(shots))
        cut_ids, cut_rows, cut_answers = prompt_for(cut, str(shots))
        assert cut_ids == ids and cut_answers == answers and cut_rows == list(range(shots + 1))
        scenes = [x.scene for x in ep.pool] + [ep.query.scene]
        assert [scenes[r] for r in rows] == [x.scene for x in cut.pool] + [cut.query.scene]


def test_copying_command_writes_its_record(tmp_path):
    out = str(tmp_path / "c")
    result = incontext.run(out, "quick", ["train.lm_steps=4", "model.d_model=32", "model.n_layers=2",
                                          "model.n_heads=2"], seeds=(0,), episodes=3, progress=False)
    saved = json.load(open(os.path.join(out, "copying.json")))
    assert saved["seeds"]["0"]["curve"] and set(saved["formats"]) >= {"plain", "late"}
    assert saved["formats"]["plain"] == "trained" and saved["formats"]["late"] == "held out"
    assert os.path.getsize(os.path.join(out, "heads.png")) > 0
    assert "onset step" in incontext.table(result) and "late*/4" in incontext.table(result)
    assert set(saved["seeds"]["0"]["parts"]) == {"colour", "shape"}
    _, _, bounds = probes.concept_episodes(16, 3, 3, seed=0)            # the 3 episodes of the 16-shot split
    assert "colour onset" in incontext.table(result)
    assert all(f"plain {a}/16" in incontext.table(result) for a in {("colour", "shape")[b] for b in bounds})


@pytest.mark.parametrize("text, bound, lured", [
    ("<bos> red circle tiv . blue ring vop . red ring", 0, True),        # vop's `ring` is the query's other word
    ("<bos> red circle tiv . blue square vop . red ring", 0, False),
    ("<bos> red ring tiv . blue square vop . red ring", 0, False),       # a support of the answer's own label
    ("<bos> red circle tiv . blue square vop . blue circle", 1, True),   # shape bound: vop's `blue` lures
    ("<bos> red circle tiv . red square vop . blue circle", 1, False),   # vop shares a word, but not the query's
])
def test_natural_lure_is_another_label_sharing_the_querys_other_word(text, bound, lured):
    assert probes.natural_lure(text, "tiv", bound) is lured


class EitherWord(torch.nn.Module):
    """A reader that answers with the label of the last support sharing either word with the query: right wherever
    no lure is present, and misled by one wherever it comes last."""

    def __init__(self):
        super().__init__()
        self.unused = torch.nn.Parameter(torch.zeros(1))    # so that the probes find a device

    def forward(self, ids, starts):
        logits = torch.zeros(*ids.shape, len(TOKENIZER))
        for b, row in enumerate(ids.tolist()):
            words = [TOKENIZER.words[i] for i in row if i not in (TOKENIZER.pad_id, TOKENIZER.bos_id)]
            *supports, query = [s.split() for s in " ".join(words).split(" . ")]
            label = [s[2] for s in supports if s[0] == query[0] or s[1] == query[1]][-1]
            logits[b, -1, TOKENIZER.ids[label]] = 1.0
        return logits


@pytest.mark.parametrize("shots", [4, 16])
def test_lure_split_reads_the_plain_probe_apart(shots):
    reader, n = EitherWord(), 60
    split = probes.lure_split(reader, shots, episodes=n, seed=2)
    texts, answers, bounds = probes.concept_episodes(shots, 3, n, seed=2)
    lured = sum(probes.natural_lure(*e) for e in zip(texts, answers, bounds))
    assert 0 < lured < n and split["no lure"] == 1.0 and split["lure"] < 1.0
    whole = probes.lm_concept_accuracy(reader, shots, episodes=n, seed=2)
    assert split["lure"] * lured + split["no lure"] * (n - lured) == pytest.approx(whole * n)


def test_repeats_split_groups_the_plain_probe_by_how_often_the_answer_is_shown():
    reader, n = EitherWord(), 80
    split = probes.repeats_split(reader, 4, episodes=n, seed=3)
    texts, answers, _ = probes.concept_episodes(4, 3, n, seed=3)
    expected = {}
    for text, answer in zip(texts, answers):
        *supports, query = [s.split() for s in text.removeprefix("<bos> ").split(" . ")]
        said = [s[2] for s in supports if s[0] == query[0] or s[1] == query[1]][-1]
        expected.setdefault(repeats.part(text.split().count(answer)), []).append(said == answer)
    assert set(split) == {"1", "2", "3+"}
    assert split == {p: pytest.approx(sum(v) / len(v)) for p, v in expected.items()}


class WordBeforeLabel(EitherWord):
    """A reader that answers with the label of the last support whose word right before its label (the shape) is the
    query's: what a first-layer lookup head can do through a smeared key, and all it can do."""

    def forward(self, ids, starts):
        logits = torch.zeros(*ids.shape, len(TOKENIZER))
        for b, row in enumerate(ids.tolist()):
            words = [TOKENIZER.words[i] for i in row if i not in (TOKENIZER.pad_id, TOKENIZER.bos_id)]
            *supports, query = [s.split() for s in " ".join(words).split(" . ")]
            label = ([s[2] for s in supports if s[1] == query[1]] or [supports[0][2]])[-1]
            logits[b, -1, TOKENIZER.ids[label]] = 1.0
        return logits


def test_attribute_split_shows_a_reader_of_the_word_before_the_label():
    """Such a reader binds every episode whose labels name the shape, and misses colour-bound ones."""
    reader, n = WordBeforeLabel(), 80
    split = probes.attribute_split(reader, 16, episodes=n, seed=4)
    _, _, bounds = probes.concept_episodes(16, 3, n, seed=4)
    shape = sum(bounds)
    assert set(split) == {"colour", "shape"} and 0 < shape < n
    assert split["shape"] == 1.0 and split["colour"] < 0.8
    whole = probes.lm_concept_accuracy(reader, 16, episodes=n, seed=4)
    assert split["shape"] * shape + split["colour"] * (n - shape) == pytest.approx(whole * n)


def test_the_copying_probe_logs_each_attribute_apart():
    """A reader of the word before the label copies every shape and misses colours: the watched probe says so."""
    reader = WordBeforeLabel()
    logged = probes.copying(reader)
    _, _, bounds = probes.concept_episodes(4, 3, 64, seed=0)
    assert logged["copy"] == pytest.approx(probes.lm_concept_accuracy(reader, 4, episodes=64, seed=0))
    assert logged["copy shape"] == 1.0 and logged["copy colour"] < 0.9
    shape = sum(bounds)
    assert logged["copy shape"] * shape + logged["copy colour"] * (64 - shape) == pytest.approx(64 * logged["copy"])


def test_label_attention_by_bound_attribute_partitions_the_episodes():
    """The colour-bound and shape-bound halves are the episodes attribute_split reads, and together the whole."""
    lm, n = small_lm(), 24
    whole = probes.label_attention(lm, "plain", 4, n, seed=1)
    parts = {a: probes.label_attention(lm, "plain", 4, n, seed=1, bound=a) for a in ("colour", "shape")}
    split = probes.attribute_split(lm, 4, n, seed=1)
    shape = sum(probes.concept_episodes(4, 3, n, seed=1)[2])
    for a in parts:
        assert parts[a]["accuracy"] == pytest.approx(split[a])
    for key in ("match", "other"):
        joined = (parts["colour"][key] * (n - shape) + parts["shape"][key] * shape) / n
        assert torch.allclose(joined, whole[key], atol=1e-5)


def test_bound_head_names_a_head_only_where_one_prefers_the_labels():
    match, other = torch.tensor([[0.44, 0.1], [0.3, 0.0]]), torch.tensor([[0.50, 0.1], [0.2, 0.0]])
    assert probes.bound_head({"match": match, "other": other}).startswith("no head prefers its labels")
    assert "layer 0 head 0 0.44 vs 0.50" in probes.bound_head({"match": match, "other": other})
    match[1, 1] = 0.9
    assert probes.bound_head({"match": match, "other": other}) == "through layer 1 head 1 0.90 vs 0.00"
