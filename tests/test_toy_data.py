"""The toy world: determinism, document structure, held-out splits, pixels that mean what they say."""

import dataclasses
import random

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from toy_data import (EVAL_NONCE, HELD_OUT, TOKENIZER, TRAIN_NONCE, DataConfig, DocumentStream, PairStream,
                      TextCorpus, Tokenizer, build_prompt, make_episode, render)
from toy_data.documents import MAX_LEN, TEXT_KINDS, VALUES, concept_words
from toy_data.formats import FORMATS
from toy_data.shapes import BACKGROUND, COLOURS, RGB, SHAPES, Obj, Scene, describe
from toy_data.tasks import TASKS, baseline_answers, token_f1

CFG = DataConfig()
STREAMS = {"text": TextCorpus, "pair": PairStream, "document": DocumentStream}
N_CHECK = 400  # sampled indices per stream for the "never" properties


def test_render_is_seeded_and_batched():
    scenes = [Scene((Obj(0, 1, 2, 4),)), Scene((Obj(3, 2, 0, 0), Obj(3, 2, 1, 8)))]
    a = render(scenes, 32, torch.Generator().manual_seed(1))
    b = render(scenes, 32, torch.Generator().manual_seed(1))
    c = render(scenes, 32, torch.Generator().manual_seed(2))
    assert a.shape == (2, 3, 32, 32) and a.dtype == torch.float32
    assert 0 <= a.min() and a.max() <= 1
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert render(scenes, 20).shape == (2, 3, 20, 20)
    with pytest.raises(ValueError, match="too small"):
        render(scenes, 8)


@pytest.mark.parametrize("name", list(STREAMS))
def test_streams_are_pure_functions_of_seed_and_index(name):
    s1, s2, other = STREAMS[name](CFG, 7), STREAMS[name](CFG, 7), STREAMS[name](CFG, 8)
    for i in (0, 5, 123):
        a, b = s1[i], s2[i]
        assert torch.equal(a.tokens, b.tokens) and torch.equal(a.images, b.images)
        assert torch.equal(a.loss_mask, b.loss_mask)
    differs = [not torch.equal(s1[i].tokens, other[i].tokens) or not torch.equal(s1[i].images, other[i].images)
               for i in range(10)]
    assert any(differs)
    assert torch.equal(STREAMS[name](CFG, 7)[50].tokens, s1[50].tokens)   # order of access does not matter


@pytest.mark.parametrize("name", list(STREAMS))
def test_tokenizer_round_trip_on_every_stream(name):
    stream = STREAMS[name](CFG, 0)
    for i in range(50):
        ids = stream[i].tokens.tolist()
        assert TOKENIZER.encode(TOKENIZER.decode(ids)) == ids


def test_unknown_word_is_named():
    with pytest.raises(ValueError, match="unknown word 'zebra'"):
        TOKENIZER.encode("a big zebra")
    with pytest.raises(ValueError, match="twice"):
        Tokenizer(("a", "a"))


def test_documents_hold_one_image_token_per_image_and_fit():
    docs, pairs = DocumentStream(CFG, 0), PairStream(CFG, 0)
    tasks, leads = set(), 0
    for i in range(N_CHECK):
        for s in (docs[i], pairs[i]):
            assert int((s.tokens == TOKENIZER.image_id).sum()) == len(s.images) == len(s.scenes)
            most = CFG.bind_max_images if s.task == "bind" else CFG.max_images
            assert 1 <= len(s.images) <= most and len(s.tokens) <= MAX_LEN
            assert not s.loss_mask[s.tokens == TOKENIZER.image_id].any()   # <image> is never a target
            first = int((s.tokens == TOKENIZER.image_id).nonzero()[0])
            assert not s.loss_mask[: first + 1].any()                     # nothing before the first image
            assert int((s.tokens[first:] == TOKENIZER.eoc_id).sum()) == len(s.images)
            if first > 1:                       # two answers without pictures open some task-inference documents
                assert s.task == "infer" and TOKENIZER.decode(s.tokens[:first]).split()[2::2] == ["<EOC>"] * 2
                leads += 1
            tasks.add(s.task)
    assert tasks == {"caption", "question", "count", "infer", "bind", "pair"}
    assert leads > 10
    text = TextCorpus(CFG, 0)[0]
    assert len(text.tokens) == CFG.text_len and len(text.images) == 0


def _labels(sample):
    """The label of each chunk of a binding document, read by the format it is in (toy_data/formats.py)."""
    pieces = TOKENIZER.decode(sample.tokens).replace("<bos>", "").split("<EOC>")[:-1]
    reads = [[f.read(p.replace("<image>", "").strip()) for f in FORMATS if f.name in CFG.bind_formats] for p in pieces]
    assert all(any(r) for r in reads) and all(p.split()[0] == "<image>" for p in pieces)
    return [next(r for r in rs if r)[0] for rs in reads]


def test_binding_documents_are_consistent_and_bursty():
    docs = DocumentStream(CFG, 3)
    seen = 0
    for i in range(N_CHECK):
        s = docs[i]
        if s.task != "bind":
            continue
        seen += 1
        labels = _labels(s)
        assert all(lb in TRAIN_NONCE for lb in labels)
        assert labels[-1] in labels[:-1]                       # the query repeats a value seen before
        assert len(set(labels)) <= CFG.ways
        # Some bound attribute maps its values one-to-one onto the labels.
        ok = False
        for attr in CFG.bind_attributes:
            values = [describe(sc)[attr] for sc in s.scenes]
            pairs = set(zip(values, labels))
            if len(pairs) == len(set(values)) == len(set(labels)):
                ok = True
        assert ok, TOKENIZER.decode(s.tokens)
        # Scored labels are exactly the repeated ones.
        words = TOKENIZER.decode(s.tokens).split()
        scored = [words[t] for t in range(len(words)) if s.loss_mask[t] and words[t] in TRAIN_NONCE]
        repeats = [lb for k, lb in enumerate(labels) if lb in labels[:k]]
        assert scored == repeats
    assert seen > 50


def test_the_binding_curriculum_starts_on_one_look_per_label_and_ends_on_the_plain_stream():
    only_bind = DataConfig(w_caption=0, w_question=0, w_count=0, w_infer=0)
    plain = DocumentStream(only_bind, 5)
    early = DocumentStream(only_bind, 5, ramp=10 ** 9)   # documents 0-29: a redraw chance below 1e-7
    for i in range(30):
        d, p = early.draft(i), plain.draft(i)
        assert torch.equal(d.tokens, p.tokens)            # the curriculum changes pictures, never text
        looks = {}
        for scene, label in zip(d.scenes, _labels(d)):
            assert looks.setdefault(label, scene) == scene, i   # every picture of a label is its one look
    # The plain stream redraws: the same check fails on its documents.
    assert any(len({sc for sc in p.scenes}) > len(set(_labels(p))) for p in map(plain.draft, range(30)))
    done = DocumentStream(only_bind, 5, ramp=40)
    for i in range(40, 70):                               # past the ramp: exactly the plain stream
        d, p = done.draft(i), plain.draft(i)
        assert torch.equal(d.tokens, p.tokens) and d.scenes == p.scenes and d.image_seed == p.image_seed


def test_held_out_combinations_never_reach_a_training_stream():
    assert len(HELD_OUT) == 12
    for cls in (PairStream, DocumentStream):
        stream = cls(CFG, 0)
        for i in range(N_CHECK):
            for scene in stream[i].scenes:
                assert all((o.colour, o.shape) not in HELD_OUT for o in scene.objects)
    text = TextCorpus(CFG, 0)
    held = {f"{COLOURS[c]} {SHAPES[s]}" for c, s in HELD_OUT} | {
        f"{COLOURS[c]} {VALUES['shape'][s]}s" for c, s in HELD_OUT} | {
        f"{COLOURS[c]} crosses" for c, s in HELD_OUT if SHAPES[s] == "cross"}
    for i in range(100):
        words = TOKENIZER.decode(text[i].tokens).split()
        bigrams = {" ".join(words[k:k + 2]) for k in range(len(words) - 1)}
        assert not bigrams & held


def test_evaluation_nonce_words_only_in_text():
    eval_ids = set(TOKENIZER.encode(" ".join(EVAL_NONCE)))
    for cls in (PairStream, DocumentStream):
        stream = cls(CFG, 0)
        for i in range(N_CHECK):
            assert not set(stream[i].tokens.tolist()) & eval_ids
    text = TextCorpus(CFG, 0)
    in_text = set().union(*(set(text[i].tokens.tolist()) for i in range(200)))
    assert eval_ids <= in_text                                      # the LM can read every evaluation word


@given(st.integers(0, 5), st.integers(0, 5), st.integers(0, 2), st.integers(0, 8))
def test_colour_is_recoverable_from_pixels(colour, shape, size, cell):
    img = render([Scene((Obj(shape, colour, size, cell),))], 32, noise=0.0, colour_jitter=0.0, jitter=0.0)[0]
    diff = (img - BACKGROUND).abs().amax(0)                         # (H, W)
    inside = diff > 0.9 * diff.max()                                # fully covered pixels, not the anti-aliased rim
    mean = img[:, inside].mean(1)                                   # (3,)
    assert int((RGB - mean).norm(dim=1).argmin()) == colour


@given(st.integers(0, 5), st.integers(0, 5), st.integers(0, 8))
def test_area_grows_with_size(colour, shape, cell):
    scenes = [Scene((Obj(shape, colour, size, cell),)) for size in range(3)]
    img = render(scenes, 32, noise=0.0, colour_jitter=0.0, jitter=0.0)
    area = ((img - BACKGROUND).abs().amax(1) > 0.05).float().sum((1, 2))
    assert area[0] < area[1] < area[2]


def test_impossible_configs_say_which_setting_to_change():
    with pytest.raises(ValueError, match="data.ways=5 but attribute 'count' has only 4 values"):
        DataConfig(ways=5, bind_attributes=("count",))
    with pytest.raises(ValueError, match=r"data.max_images=10 needs up to 81 tokens .* give at most 5"):
        DataConfig(max_images=10)
    with pytest.raises(ValueError, match=r"data.bind_max_images=12 needs up to 49 tokens .* give at most 11"):
        DataConfig(bind_max_images=12)
    with pytest.raises(ValueError, match="bind_attributes"):
        DataConfig(bind_attributes=("smell",))


@pytest.mark.parametrize("task", TASKS)
def test_episodes_prompts_and_held_out(task):
    for seed in range(6):
        ep = make_episode(task, seed)
        assert ep.query.answer in ep.candidates
        for k in (0, 1, 2, 4, 8, 16):
            idx = ep.support_indices(k)
            assert len(idx) == len(set(idx)) == k                          # k distinct pool examples
            support = ep.support(k)
            text, scenes = build_prompt(support, ep.query, ep.text_examples)
            assert text.split().count("<image>") == k + 1 == len(scenes)
            assert text.split()[-1] != "<EOC>"
            if k == 0:
                assert text.split().count("<EOC>") == 2                    # two text-only examples
            if task in ("bind", "match") and k:
                assert ep.query.answer in [e.answer for e in support]      # the query's label is in the prompt
        alone, _ = build_prompt([], ep.query)                              # the "none" column: the query alone
        assert alone.split().count("<image>") == 1 and "<EOC>" not in alone.split()
        for e in ep.pool + [ep.query]:
            for o in e.scene.objects:
                assert (o.colour, o.shape) in HELD_OUT
        if task in ("bind", "match"):
            assert set(ep.candidates) <= set(EVAL_NONCE)


@given(st.integers(0, 10_000), st.sampled_from([("colour", "shape"), ("colour",), ("shape",), ("size",)]))
def test_concept_binding_shares_exactly_the_bound_attribute(seed, attributes):
    """bind: a label's images share the bound attribute's value and nothing else is fixed; match: one look each."""
    cfg = DataConfig(bind_attributes=attributes)
    ep = make_episode("bind", seed, cfg)
    examples = ep.pool + [ep.query]
    by_label = {}
    for e in examples:
        by_label.setdefault(e.answer, []).append(describe(e.scene))
    bound = {lb: {d[ep.attribute] for d in ds} for lb, ds in by_label.items()}
    assert all(len(v) == 1 for v in bound.values())                       # one value per label ...
    assert len(set.union(*bound.values())) == len(by_label) == cfg.ways   # ... a different one for each label
    for other in ("colour", "shape", "size", "position"):
        if other != ep.attribute:                                          # every other attribute varies in a label
            assert any(len({d[other] for d in ds}) > 1 for ds in by_label.values()), other
    twin = make_episode("match", seed, cfg)
    looks = {}
    for e in twin.pool + [twin.query]:
        d = describe(e.scene)
        looks.setdefault(e.answer, set()).add((d["colour"], d["shape"], d["size"], d["position"]))
    assert all(len(v) == 1 for v in looks.values())                        # match: the very same object each time


@given(st.integers(0, 10_000), st.integers(0, 1), st.integers(0, 5))
def test_concept_words_keep_the_bound_value_on_training_combinations(seed, bound, value):
    colour, shape = concept_words(random.Random(seed), bound, value).split()
    combo = (COLOURS.index(colour), SHAPES.index(shape))
    assert combo[bound] == value and combo not in HELD_OUT


def test_baselines_on_a_constructed_episode():
    ep = make_episode("infer", 0)
    answers = ["red", "blue", "blue", "red", "green"]
    ep.pool = [type(ep.query)(ep.query.scene, "", a) for a in answers] + ep.pool[5:]
    b = baseline_answers(ep.context_answers("5"))
    assert b == {"majority": "red", "last": "green", "uniform": ["red", "blue", "green"]}  # tie: the latest wins
    assert baseline_answers(ep.context_answers("3"))["majority"] == "blue"
    assert ep.context_answers("0") == [e.answer for e in ep.text_examples]
    assert baseline_answers(ep.context_answers("none")) == {"majority": None, "last": None, "uniform": []}
    assert token_f1("a big red circle", "a big red circle") == 1.0
    assert token_f1("a big blue circle", "a big red circle") == pytest.approx(0.75)
    assert token_f1("", "a") == 0.0


def test_episodes_are_deterministic_and_unknown_task_rejected():
    a, b = make_episode("bind", 11), make_episode("bind", 11)
    assert a.query == b.query and a.pool == b.pool
    with pytest.raises(ValueError, match="unknown task 'dance'"):
        make_episode("dance", 0)


def test_a_batch_draws_the_same_pictures_as_one_sample_at_a_time():
    """Streams render a batch in one call; each sample keeps its own seed, so the pixels cannot depend on batching."""
    docs, pairs = DocumentStream(CFG, 4), PairStream(CFG, 4)
    for stream in (docs, pairs):
        together = stream.batch(range(10))
        for i, s in enumerate(together):
            assert torch.equal(s.images, stream[i].images) and torch.equal(s.tokens, stream[i].tokens)
    drafts = [pairs.draft(i, kind) for kind in ("pair", "twin", "grey") for i in range(4)]
    mixed = pairs.render(drafts)
    single = [pairs[i] for i in range(4)] + [pairs.twin(i) for i in range(4)] + [pairs.grey(i) for i in range(4)]
    assert all(torch.equal(a.images, b.images) for a, b in zip(mixed, single))
    assert [s.task for s in mixed] == ["pair"] * 8 + ["grey"] * 4


def _other_value(f, value):
    """A valid value of knob `f` other than `value`."""
    if isinstance(value, tuple):
        return value + tuple(fmt.name for fmt in FORMATS if fmt.name not in value)[:1]
    if isinstance(value, float):
        return value / 2 + 0.1
    return value - 2 if value - 2 >= f.metadata["lo"] else value + 2


def test_the_pretraining_streams_ignore_every_setting_only_the_bridge_reads():
    """A knob marked stage="flamingo" lets a finished LM or encoder serve a bridge trained with another value of it
    (flamingo_min/runs.py): so the LM's text and the encoder's pairs must not depend on it."""
    rich = DataConfig(text_mix=TEXT_KINDS)      # every kind of text, clips' events included
    bridge_only = [f for f in dataclasses.fields(DataConfig) if f.metadata.get("stage") == "flamingo"]
    assert {"w_bind", "bind_redraw", "max_images", "ways", "clip_frames"} <= {f.name for f in bridge_only}
    for f in bridge_only:
        moved = dataclasses.replace(rich, **{f.name: _other_value(f, getattr(rich, f.name))})
        for i in range(40):
            assert torch.equal(TextCorpus(rich, 3).draft(i).tokens, TextCorpus(moved, 3).draft(i).tokens), f.name
            for kind in ("pair", "twin", "grey"):
                a, b = PairStream(rich, 3).draft(i, kind), PairStream(moved, 3).draft(i, kind)
                assert torch.equal(a.tokens, b.tokens) and (a.scenes, a.image_seed) == (b.scenes, b.image_seed), f.name
    some_documents = [DocumentStream(rich, 3).draft(i).tokens for i in range(20)]
    moved = dataclasses.replace(rich, w_bind=0.0)
    assert any(not torch.equal(a, DocumentStream(moved, 3).draft(i).tokens) for i, a in enumerate(some_documents))
