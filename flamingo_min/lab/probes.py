"""Probes of the LM alone: does it bind in context, in text, before it ever sees an image?

`lm_concept_accuracy` reads the LM's answer to a text-only concept-binding episode (`red circle tiv . blue square
vop . red ring` -> `tiv`) in any binding format of toy_data/formats.py, with or without lures.
"""
import random

import torch

from toy_data import EVAL_NONCE, TOKENIZER
from toy_data.documents import ATTRIBUTES, VALUES, concept_words
from toy_data.formats import BY_NAME
from toy_data.shapes import COLOURS, COUNTS, POSITIONS, SHAPES, SIZES

from ..evaluate import left_pad
from ..masking import document_starts


@torch.no_grad()
def lm_binding_accuracy(lm, pairs=8, ways=3, episodes=200, seed=0, labels=EVAL_NONCE):
    """Text-only binding, the skill stage `lm` must reach before it sees an image: `red tiv . blue vop . red` ->
    `tiv`, with the evaluation nonce words. Accuracy of the argmax over the whole vocabulary (open-ended)."""
    rng = random.Random(seed)
    rows, truths = [], []
    for _ in range(episodes):
        keys = rng.sample(VALUES[rng.choice(ATTRIBUTES[:2])], ways)
        names = rng.sample(labels, ways)
        picks = [rng.randrange(ways) for _ in range(pairs)]
        query = rng.choice(picks)
        text = " ".join(["<bos>"] + [f"{keys[p]} {names[p]} ." for p in picks] + [keys[query]])
        rows.append(TOKENIZER.encode(text))
        truths.append(TOKENIZER.ids[names[query]])
    return _lm_accuracy(lm, rows, truths)


@torch.no_grad()
def lm_concept_accuracy(lm, shots=4, ways=3, episodes=200, seed=0, labels=EVAL_NONCE, lures=False, fmt="plain"):
    """Text-only concept binding on the training combinations: `red circle tiv . blue square vop . red ring` ->
    `tiv` (a label names one attribute's value, colour or shape; the other word varies). Argmax accuracy; the
    episodes are concept_episodes(...)'s."""
    texts, answers, _ = concept_episodes(shots, ways, episodes, seed, labels, lures, fmt)
    return _lm_accuracy(lm, [TOKENIZER.encode(t) for t in texts], [TOKENIZER.ids[a] for a in answers])


def concept_episodes(shots=4, ways=3, episodes=200, seed=0, labels=EVAL_NONCE, lures=False, fmt="plain"):
    """The text-only concept-binding episodes: (prompts, answers, bound attribute of each: 0 colour, 1 shape).

    lures: every support of another label shares the query's other word (`blue ring vop .` before `red ring`) where
    a training combination allows, and no support of the query's label does, so that only the bound word leads to
    the answer. fmt: the supports in that binding format (toy_data/formats.py), e.g. `red circle tiv . where ? top .`;
    the query stops where its label would start."""
    rng, form = random.Random(seed), BY_NAME[fmt]
    texts, answers, bounds = [], [], []
    for _ in range(episodes):
        bound = rng.randrange(2)
        values, names = rng.sample(range(len((COLOURS, SHAPES)[bound])), ways), rng.sample(labels, ways)
        picks = [rng.randrange(ways) for _ in range(shots)]
        query = rng.choice(picks)
        q = concept_words(rng, bound, values[query])
        kinds = (COLOURS, SHAPES)[1 - bound]
        other = kinds.index(q.split()[1 - bound])                            # the query's other attribute, an index

        def example(words, label):   # facts true of the example: its own colour and shape, a size and a position
            colour, shape = words.split()
            facts = {"colour": colour, "shape": shape, "size": rng.choice(SIZES), "position": rng.choice(POSITIONS),
                     "count": COUNTS[0]}
            return form.text(rng, words, label, facts, ATTRIBUTES[bound])

        def near(p):  # the other attribute's values a support may take
            return None if not lures else [other] if p != query else [i for i in range(len(kinds)) if i != other]

        support = " ".join(example(concept_words(rng, bound, values[p], near(p)), names[p]) for p in picks)
        ask = example(q, "{label}").split("{label}")[0]
        texts.append(f"<bos> {support} {ask}".strip())
        answers.append(names[query])
        bounds.append(bound)
    return texts, answers, bounds


def _lm_accuracy(lm, rows, truths):
    device = next(lm.parameters()).device
    ids = left_pad(rows).to(device)
    guess = lm(ids, document_starts(ids, TOKENIZER.bos_id, TOKENIZER.pad_id))[:, -1].argmax(-1)
    return (guess == torch.tensor(truths, device=device)).float().mean().item()
