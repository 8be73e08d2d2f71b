"""Binding formats (toy_data/formats.py): the rich-format episodes carry exactly the declared extra text, the label
stays the only thing bound, training documents and text use the formats their settings list, and the original recipe
is one setting away."""
import random

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from flamingo_min import evaluate
from flamingo_min.config import PROMPT_CHUNK, from_dict, make_config, to_dict
from flamingo_min.errors import ConfigError
from flamingo_min.lm import LM
from flamingo_min.lab import probes
from toy_data import TOKENIZER
from toy_data.documents import ATTRIBUTES, MAX_LEN, VALUES, DataConfig, DocumentStream, TextCorpus, concept_words
from toy_data.formats import ASIDES, BY_NAME, FORMATS, REMARKS, TRAINED
from toy_data.shapes import COLOURS, SHAPES, TRAIN_COMBOS, Obj, Scene, describe
from toy_data.tasks import RICH_TASKS, build_prompt, ideal_binding, make_episode
from toy_data.vocab import NONCE

BOUND_WORDS = {a: set(VALUES[a]) for a in ATTRIBUTES}


def chunks(text):
    """The words of each chunk of a prompt or document, between `<image>` (or the start) and `<EOC>`."""
    body = text.replace("<bos>", "").split("<EOC>")
    return [c.replace("<image>", "").strip() for c in body]


def remark_facts(remark):
    """`where ? top` -> ("position", "top"); `what shape ? ring` -> ("shape", "ring")."""
    for kind, pattern in {**REMARKS, **ASIDES}.items():
        head = pattern.split("{}")[0]
        if remark.startswith(head):
            return kind, remark[len(head):]
    raise AssertionError(f"{remark!r} is no declared remark")


@given(st.integers(0, 10_000), st.sampled_from(RICH_TASKS),
       st.sampled_from([("colour", "shape"), ("colour",), ("shape",), ("size",), ("position",), ("count",)]))
def test_rich_episodes_carry_exactly_the_declared_text(seed, task, attributes):
    cfg = DataConfig(bind_attributes=attributes)
    ep, plain = make_episode(task, seed, cfg), make_episode("bind", seed, cfg)
    fmt = BY_NAME[task.removeprefix("bind-")]
    # The same pictures, labels and candidates as the clean episode: only the words around the label differ.
    pictures_and_labels = [[(e.scene, e.answer) for e in x.pool + [x.query]] for x in (ep, plain)]
    assert pictures_and_labels[0] == pictures_and_labels[1]
    assert ep.candidates == plain.candidates and ep.support_indices(4) == plain.support_indices(4)
    for k in (1, 4, 16):
        text, scenes = build_prompt(ep.support(k), ep.query)
        *supports, query = chunks(text)
        assert len(supports) == k and len(scenes) == k + 1
        for words, e in zip(supports, ep.support(k)):
            label, remarks = fmt.read(words)                            # exactly the format's words ...
            assert label == e.answer
            for r in remarks:                                           # ... and remarks true of the picture,
                kind, value = remark_facts(r)
                assert kind != ep.attribute and describe(e.scene)[kind] == value   # never the bound attribute
            assert not set(words.split()) & (BOUND_WORDS[ep.attribute] | set(NONCE) - {label})
        q = ep.query                                                    # the query stops where its label starts
        assert query == q.prefix and fmt.read(" ".join(w for w in (q.prefix, q.answer, q.tail) if w))[0] == q.answer
        assert not set(query.split()) & (BOUND_WORDS[ep.attribute] | set(NONCE))


def test_open_answers_stop_where_the_format_goes_on():
    assert evaluate.until("tiv . where ?", ". where ? top") == "tiv"
    assert evaluate.until("tiv", ". where ? top") == "tiv"
    assert evaluate.until("tiv vop", "") == "tiv vop"


@pytest.mark.parametrize("formats", [("plain",), TRAINED, ("after", "two")])
def test_documents_use_the_listed_formats_and_score_only_known_labels(formats):
    cfg = DataConfig(bind_formats=formats)
    docs, seen_formats = DocumentStream(cfg, 5), set()
    for i in range(300):
        s = docs.draft(i)
        if s.task != "bind":
            continue
        words = TOKENIZER.decode(s.tokens).split()
        assert len(words) <= MAX_LEN
        pieces = chunks(" ".join(words))[:-1]
        labels = []
        for piece in pieces:
            read = [(f.name, f.read(piece)) for f in FORMATS if f.name in formats and f.read(piece)]
            assert read, piece
            seen_formats.add(read[0][0])
            labels.append(read[0][1][0])
        scored = [words[t] for t in range(len(words)) if s.loss_mask[t]]
        # Scored: a label only where it was seen before; every word after a label, and every <EOC>.
        known = [lb for k, lb in enumerate(labels) if lb in labels[:k]]
        assert [w for w in scored if w in NONCE] == known
        assert scored.count("<EOC>") == len(pieces)
    assert seen_formats == set(formats)


def test_plain_formats_and_no_lures_give_the_original_texts():
    """With data.text_formats=plain and data.text_lures=0, the LM's text is the original recipe's: no `:` and no
    remark anywhere; the other settings change only the concept-binding documents."""
    legacy = DataConfig(text_formats=("plain",), text_lures=0.0, text_mix=("concept",))
    words = " ".join(TOKENIZER.decode(TextCorpus(legacy, 1).draft(i).tokens) for i in range(20)).split()
    assert ":" not in words and "?" not in words
    rich = DataConfig(text_mix=("concept",), text_formats=TRAINED)
    rich_words = " ".join(TOKENIZER.decode(TextCorpus(rich, 1).draft(i).tokens) for i in range(20)).split()
    assert rich_words.count(":") > 20 and rich_words.count("?") > 100
    # Documents other than concept binding do not change.
    for kind in ("caption", "qa", "bind", "infer"):
        a, b = (TextCorpus(DataConfig(text_mix=(kind,), text_formats=f, text_lures=lures), 2).draft(3).tokens
                for f, lures in ((TRAINED, 1.0), (("plain",), 0.0)))
        assert torch.equal(a, b)


@given(st.integers(0, 10_000), st.integers(0, 1), st.integers(0, 5))
def test_concept_words_take_the_offered_other_values_where_a_combination_allows(seed, bound, value):
    others = random.Random(seed).sample(range(6), 2)
    colour, shape = concept_words(random.Random(seed), bound, value, others).split()
    combo = (COLOURS.index(colour), SHAPES.index(shape))
    possible = [cs for cs in TRAIN_COMBOS if cs[bound] == value and cs[1 - bound] in others]
    assert combo[bound] == value and (combo[1 - bound] in others or not possible)


def test_lure_probe_leaves_only_the_bound_word_to_read():
    texts, answers, bounds = probes.concept_episodes(shots=4, episodes=100, seed=3, lures=True)
    shared = 0
    for text, answer, b in zip(texts, answers, bounds):
        *support, query = [s.split() for s in text.removeprefix("<bos> ").split(" . ")]
        assert answer in [s[2] for s in support]
        for s in support:
            if s[2] == answer:      # the query's label: its bound word, never the query's other word
                assert s[b] == query[b] and s[1 - b] != query[1 - b]
            else:                   # another label: the query's other word where a training combination allows
                assert s[b] != query[b]
                value = (COLOURS, SHAPES)[b].index(s[b])
                other = (COLOURS, SHAPES)[1 - b].index(query[1 - b])
                allowed = any(cs[b] == value and cs[1 - b] == other for cs in TRAIN_COMBOS)
                assert (s[1 - b] == query[1 - b]) == allowed
                shared += allowed
    assert shared > 100


def test_a_recorded_configuration_is_read_whole_or_refused_by_name():
    """A checkpoint or config.json records every setting: it reads back as it was, and one written by another version
    of the code (a setting more, or one less) is refused with their names, never filled in with today's defaults."""
    d = to_dict(make_config("video"))
    assert from_dict(d) == make_config("video")
    extra, fewer = to_dict(make_config()), to_dict(make_config())
    extra["data"]["retired_knob"] = 0.5
    del fewer["data"]["infer_text"]
    with pytest.raises(ConfigError, match=r"this code has no data.retired_knob"):
        from_dict(extra)
    with pytest.raises(ConfigError, match=r"it lacks data.infer_text"):
        from_dict(fewer)
    assert make_config().data.bind_formats == make_config().data.text_formats == ("plain",)   # the recipe


def test_unknown_format_is_named_and_prompts_fit():
    with pytest.raises(ValueError, match="unknown binding format 'poem'.*plain, after"):
        DataConfig(bind_formats=("plain", "poem"))
    assert PROMPT_CHUNK == max(f.longest for f in FORMATS)
    for f in FORMATS:                                                  # the declared length bounds every chunk
        for seed in range(20):
            ep = make_episode(f"bind-{f.name}" if f.name != "plain" else "bind", seed)
            assert all(len(e.chunk().split()) <= f.longest for e in ep.pool)


def test_the_ideal_observer_weighs_every_reading_the_examples_allow():
    ep = make_episode("bind", 0)

    def example(c, s, label):
        return type(ep.query)(Scene((Obj(SHAPES.index(s), COLOURS.index(c), 1, 4),)), ":", label)

    a, b, c = ep.candidates
    ep.task, ep.attribute = "bind", "colour"
    ep.query = example("red", "circle", a)
    ep.pool = [example("red", "square", a), example("blue", "circle", b)] + ep.pool[2:]
    both = ("colour", "shape")
    assert ideal_binding(ep, "2", both) == 0.5          # red -> a, or circle -> b: two readings, one right
    assert ideal_binding(ep, "2", ("colour",)) == 1.0   # one attribute can be bound: no doubt
    ep.pool[2] = example("green", "circle", c)           # circle under two labels: shape cannot be the bound one
    ep.pool[1], ep.pool[2] = ep.pool[2], ep.pool[1]
    assert ideal_binding(ep, "3", both) == 1.0
    assert ideal_binding(ep, "none", both) == ideal_binding(ep, "0", both) == pytest.approx(1 / 3)
    ep.query = example("green", "circle", b)             # green is shown under no label, but the answer's label
    ep.pool[1] = example("blue", "circle", b)            # always is: so colour is not the bound attribute
    assert ideal_binding(ep, "2", both) == 1.0


def test_the_ideal_observer_is_sure_with_one_example_and_never_below_a_coin_flip_between_two_readings():
    for seed in range(40):
        ep = make_episode("bind", seed)
        assert ideal_binding(ep, "1", ("colour", "shape")) == 1.0     # the one example is the answer's
        assert all(ideal_binding(ep, k, ("colour", "shape")) >= 0.5 for k in ("2", "4"))


@pytest.mark.parametrize("fmt", list(BY_NAME))
def test_the_lm_probe_reads_every_format_and_an_aside_names_its_own_examples_other_word(fmt):
    texts, answers, bounds = probes.concept_episodes(shots=4, episodes=30, seed=5, fmt=fmt)
    for text, b in zip(texts, bounds):
        *support, _ = text.removeprefix("<bos> ").split(" . ")
        if fmt == "aside":   # `red circle tiv . what shape ? circle .`: the aside repeats the example's other word
            pairs = list(zip(support[::2], support[1::2]))
            assert pairs and all(ex.split()[1 - b] == aside.split()[-1] for ex, aside in pairs)
    torch.manual_seed(0)   # the probe runs an LM on every format, the asides included
    assert 0.0 <= probes.lm_concept_accuracy(LM(len(TOKENIZER), 16, 1, 2, 256), episodes=10, fmt=fmt) <= 1.0


@pytest.mark.parametrize("swap", [0.5, 1.0])
def test_swapped_concepts_change_the_order_alone(swap):
    """data.text_swap writes some concept-binding examples shape first (`circle red tiv .`): the same labels and words
    as without it, each example's two words in either order, so the label is still bound to one attribute."""
    def examples(cfg, i):   # the row's examples, `red circle tiv`, as word lists (its cut ends left out)
        words = TOKENIZER.decode(TextCorpus(cfg, 4).draft(i).tokens).replace("<eos>", ".").split()
        chunks, start = [], 0
        for j, w in enumerate(words):
            if w == ".":
                chunks.append(words[start:j])
                start = j + 1
        return [c for c in chunks[1:] if len(c) == 3]

    seen = {"colour first": 0, "shape first": 0}
    for i in range(12):
        plain, swapped = (examples(DataConfig(text_mix=("concept",), text_swap=s), i) for s in (0.0, swap))
        assert len(plain) == len(swapped) > 0
        for a, b in zip(plain, swapped):
            assert a[0] in COLOURS and a[1] in SHAPES and b[2] == a[2] and b[:2] in (a[:2], a[1::-1])
            seen["shape first" if b[0] in SHAPES else "colour first"] += 1
    assert seen["shape first"] > 0 and (seen["colour first"] > 0) == (swap < 1)
