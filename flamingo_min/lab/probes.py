"""Probes of in-context binding: does the LM bind in text, before it ever sees an image, and how? When does its
bridge start to bind with pictures?

- `lm_concept_accuracy` reads the LM's answer to a text-only concept-binding episode (`red circle tiv . blue square
  vop . red ring` -> `tiv`) in any binding format of toy_data/formats.py, with or without lures; `lure_split`
  reads the plain episodes apart by whether they hold a lure by chance, `repeats_split` by how often their supports
  show the answer's label, `attribute_split` by whether their labels name a colour or a shape.
- `copying` is that accuracy as a probe of a training run (train.run_stage's `probe`): logged every 100 LM steps, it
  shows when in-context copying appears, and `onset` reads the step from the log. `binding` is its counterpart for
  the bridge's stage: close-ended binding with pictures, which shows when the bridge finds its way to the LM's lookup.
- `attention` recomputes every head's attention weights, which the fused kernel never shows, from forward hooks on
  the LM's attention layers; `label_attention` splits the attention of the answer's position (the query's last token)
  into the labels of the supports that match the query's concept, the labels of the others, and everything else;
  `induction_scores` is Olsson et al.'s (2022) induction score of each head on a repeated random sequence. Together:
  which heads bind, and where their attention goes when a prompt's form is new to them.

Shapes: B episodes, T tokens, L layers, H heads.
"""
import dataclasses
import random

import torch

from toy_data import EVAL_NONCE, TOKENIZER
from toy_data.documents import ATTRIBUTES, VALUES, concept_words
from toy_data.vocab import WORDS
from toy_data.formats import BY_NAME
from toy_data.shapes import COLOURS, COUNTS, POSITIONS, SHAPES, SIZES

from ..evaluate import episode_media, episodes_for, left_pad
from ..masking import document_starts
from . import repeats


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


def _lm_correct(lm, rows, truths):
    """(B,) bool: whether the LM's argmax after each row is its truth."""
    device = next(lm.parameters()).device
    ids = left_pad(rows).to(device)
    guess = lm(ids, document_starts(ids, TOKENIZER.bos_id, TOKENIZER.pad_id))[:, -1].argmax(-1)
    return guess == torch.tensor(truths, device=device)


def _lm_accuracy(lm, rows, truths):
    return _lm_correct(lm, rows, truths).float().mean().item()


def natural_lure(text, answer, bound):
    """Whether a plain episode's text (`<bos> red circle tiv . blue ring vop . red ring`) holds a lure by chance: a
    support of another label that shares the query's other word (here `ring`, when colour is bound)."""
    *supports, query = [s.split() for s in text.removeprefix("<bos> ").split(" . ")]
    return any(s[2] != answer and s[1 - bound] == query[1 - bound] for s in supports)


@torch.no_grad()
def plain_split(lm, part_of, shots=4, episodes=200, seed=0):
    """The plain probe's own episodes (lm_concept_accuracy's, the same seed), read apart: {part: accuracy}, where
    part_of(text, answer, bound) names each episode's part; in the parts' sorted order, a part with no episode left
    out."""
    texts, answers, bounds = concept_episodes(shots, 3, episodes, seed)
    right = _lm_correct(lm, [TOKENIZER.encode(t) for t in texts], [TOKENIZER.ids[a] for a in answers]).tolist()
    parts = {}
    for r, episode in zip(right, zip(texts, answers, bounds)):
        parts.setdefault(part_of(*episode), []).append(r)
    return {name: sum(parts[name]) / len(parts[name]) for name in sorted(parts)}


def lure_split(lm, shots=4, episodes=200, seed=0):
    """{"lure": accuracy on the plain episodes that hold a natural_lure, "no lure": on the rest}. Random episodes
    hold lures often (about a quarter at 4 shots, three quarters at 16), so this says how much of the plain probe's
    error is the LM reading a support by the wrong word."""
    return plain_split(lm, lambda *e: "lure" if natural_lure(*e) else "no lure", shots, episodes, seed)


def attribute_split(lm, shots=4, episodes=200, seed=0):
    """{"colour": accuracy on the plain episodes whose labels name a colour, "shape": on those that name a shape}. In
    plain text the shape is the word right before the label and the colour the word before that: a lookup head in the
    first layer can match the one word (lm.py's smeared key), and only a later head the other."""
    return plain_split(lm, lambda text, answer, bound: ATTRIBUTES[bound], shots, episodes, seed)


def repeats_split(lm, shots=4, episodes=200, seed=0):
    """{"1" | "2" | "3+": accuracy on the plain episodes whose supports show the answer's label that often}: the
    text's side of lab/repeats.py, which reads a bridge's binding so."""
    return plain_split(lm, lambda text, answer, bound: repeats.part(text.split().count(answer)), shots, episodes, seed)


# --- watching copying appear during the LM's training ----------------------------------------------------------------
ONSET = 2 / 3   # a 3-way episode's accuracy half-way from chance (1/3) to perfect: "the LM copies"


@torch.no_grad()
def copying(lm, shots=4, episodes=64):
    """The probe run_stage logs during the LM's stage: 4-shot concept binding in the plain format, on a fixed set of
    episodes (seed 0: the same at every step), as `copy`, and apart by the attribute the labels name (`copy colour`,
    `copy shape`, about half the episodes each): the first-layer head that binds the shape and the later one that binds
    the colour may appear thousands of steps apart (docs/incontext.md). A few milliseconds on a GPU, about 0.1 s on 2
    CPU cores."""
    was = lm.training
    texts, answers, bounds = concept_episodes(shots, 3, episodes, seed=0)   # lm_concept_accuracy's episodes
    right = _lm_correct(lm.eval(), [TOKENIZER.encode(t) for t in texts], [TOKENIZER.ids[a] for a in answers]).float()
    lm.train(was)
    bound = torch.tensor(bounds, device=right.device)
    return {"copy": right.mean().item(),
            **{f"copy {ATTRIBUTES[b]}": right[bound == b].mean().item() for b in (0, 1) if (bound == b).any()}}


def onset(metrics, level=ONSET, stage="lm", key="copy"):
    """The first logged step of `stage` whose probe `key` reads at least `level` (None: it never did)."""
    return next((m["step"] for m in metrics if m["stage"] == stage and m.get(key, 0.0) >= level), None)


def watched(metrics, stage="lm", key="copy"):
    """A stage's watched probe as plots.copying draws it: {"onset": step or None, "curve": [[step, value], ...]},
    and under "parts" the same record of each attribute the probe also logged apart (`copy colour`, `copy shape`);
    None if the stage logged no such probe."""
    def record(k):
        curve = [[m["step"], m[k]] for m in metrics if m["stage"] == stage and k in m]
        return {"onset": onset(metrics, ONSET, stage, k), "curve": curve} if curve else None

    whole = record(key)
    parts = {a: r for a in ("colour", "shape") if (r := record(f"{key} {a}"))}
    return {**whole, "parts": parts} if whole and parts else whole


# --- watching binding appear during the bridge's training ------------------------------------------------------------
# The bridge's probe episodes: a seed no evaluation uses (the CLI takes seeds >= 0), so that the evaluation reads
# episodes no probe has seen.
BRIDGE_PROBE_SEED = -1


def binding(data_cfg, shots=4, episodes=128):
    """The probe run_stage logs during the bridge's stage: close-ended 4-shot `bind` on a fixed set of episodes. They
    are drawn as the evaluation draws its own (a pool of 32, which sets how often the answer's label is shown), and
    each keeps only the supports its prompt shows, so that a call renders, encodes and resamples 5 pictures an
    episode, not 33: 0.7 s on 2 CPU cores, 9 s of the recipe's 1200 steps. A bridge's binding, like the LM's copying,
    can appear late or not at all while its loss falls (docs/incontext.md); this records when."""
    shot, eps = str(shots), trimmed_episodes(data_cfg, shots, episodes)

    @torch.no_grad()
    def probe(model):
        was = model.training
        model.eval()
        media, pooled = episode_media(model, eps, data_cfg)
        said = repeats.closed_at(model, eps, shot, media, pooled)
        model.train(was)
        return {"bind": sum(s == e.query.answer for s, e in zip(said, eps)) / len(eps)}
    return probe


def trimmed_episodes(data_cfg, shots, episodes, seed=BRIDGE_PROBE_SEED):
    """`bind` episodes as the evaluation draws them, each pool cut to the supports its `shots`-shot prompt shows, in
    order: the same prompt, from fewer pictures."""
    return [dataclasses.replace(ep, pool=ep.support(shots)) for ep in episodes_for("bind", episodes, data_cfg, seed)]


# --- inside the LM: attention weights, label attention, induction heads ----------------------------------------------
@torch.no_grad()
def attention(lm, ids, starts=None, forward=None):
    """Every head's attention weights on ids (B, T): a list over layers of (B, H, T, T) tensors. Each attention layer's
    inputs are caught by a forward pre-hook, and its queries and keys recomputed (SelfAttention.project) as its forward
    computes them; the fused kernel's own weights are never materialised. forward: what runs the LM on ids, when not
    the LM alone (a Flamingo reading the same ids with their pictures); None: lm(ids, starts)."""
    weights, hooks = [], []

    def catch(module, args):
        x, rope, prev_same, mask = args[:4]
        q, k, _ = module.project(x, rope, prev_same)
        scores = (q @ k.transpose(-1, -2)) / q.shape[-1] ** 0.5                       # (B, H, T, T)
        allowed = mask if mask is not None else torch.ones(scores.shape[-2:], dtype=torch.bool,
                                                             device=scores.device).tril()
        weights.append(scores.masked_fill(~allowed, float("-inf")).softmax(-1))

    for block in lm.blocks:
        hooks.append(block.attn.register_forward_pre_hook(catch))
    try:
        forward() if forward else lm(ids, starts)
    finally:
        for h in hooks:
            h.remove()
    return weights


@torch.no_grad()
def label_attention(lm, fmt="plain", shots=4, episodes=100, seed=0, lures=False, bound=None):
    """Where each head looks from the answer's position in concept-binding episodes: (L, H) tensors of the mean
    attention on the labels of matching supports (`match`: the query's label), on the other supports' labels
    (`other`), and the accuracy. A binding head puts its weight on `match`; a head that copies any recent label spreads
    it over `match` and `other` alike. bound: "colour" or "shape" keeps the episodes whose labels name that attribute
    (about half of them), to tell a head that reads the bound word from one that reads the word before the label."""
    texts, answers, bounds = concept_episodes(shots, 3, episodes, seed, EVAL_NONCE, lures, fmt)
    if bound is not None:
        texts, answers = zip(*((t, a) for t, a, b in zip(texts, answers, bounds) if ATTRIBUTES[b] == bound))
    device = next(lm.parameters()).device
    ids = left_pad([TOKENIZER.encode(t) for t in texts]).to(device)                       # (B, T)
    weights = torch.stack(attention(lm, ids, document_starts(ids, TOKENIZER.bos_id, TOKENIZER.pad_id)))
    last = weights[:, :, :, -1]                                                           # (L, B, H, T)
    truth = torch.tensor([TOKENIZER.ids[a] for a in answers], device=device)              # (B,)
    labels = torch.isin(ids, torch.tensor([TOKENIZER.ids[w] for w in EVAL_NONCE], device=device))
    match = labels & (ids == truth[:, None])                                              # (B, T)
    return {"match": mass_on(last, match), "other": mass_on(last, labels & ~match),
            "accuracy": _lm_accuracy(lm, [TOKENIZER.encode(t) for t in texts], truth.tolist())}


@torch.no_grad()
def induction_scores(lm, length=24, batch=32, seed=0):
    """Olsson et al.'s induction score, per head (L, H): on `<bos> r1 .. rN r1 .. rN` (N random words), the mean
    attention from each token of the repeat to the token that followed its first occurrence. An induction head scores
    near 1: it finds "what came after me last time", the move that in-context copying is made of."""
    rng = random.Random(seed)
    pool = [TOKENIZER.ids[w] for w in WORDS if not w.startswith("<")]
    seqs = [rng.sample(pool, length) for _ in range(batch)]
    device = next(lm.parameters()).device
    ids = torch.tensor([[TOKENIZER.bos_id] + s + s for s in seqs], device=device)         # (B, 1 + 2N)
    return induction_score(torch.stack(attention(lm, ids)), length)


def mass_on(last, where):
    """The mean attention, per layer and head, that one position's weights `last` (L, B, H, T) put on the positions
    `where` (B, T): (L, H)."""
    return (last * where[None, :, None]).sum(-1).mean(1)


def induction_score(weights, length):
    """Attention weights (L, B, H, T, T) on `<bos> r1 .. rN r1 .. rN` (N = length) -> (L, H): the mean weight from
    each token of the repeat to the token after its first occurrence."""
    second = torch.arange(length + 1, 2 * length + 1, device=weights.device)             # the repeat's positions
    target = second - length + 1                                                          # after the first copy
    return weights[:, :, :, second, target].mean((1, 3))


def strongest_heads(match, other, top=3):
    """The `top` heads by how much more of their attention falls on the matching labels than on the other labels,
    match and other (L, H), each with both: "layer 1 head 2 0.89 vs 0.09, ..."."""
    H = match.shape[1]
    best = (match - other).flatten().argsort(descending=True)[:top].tolist()
    return ", ".join(f"layer {i // H} head {i % H} {match.flatten()[i]:.2f} vs {other.flatten()[i]:.2f}" for i in best)


def bound_head(found, margin=0.2):
    """The head that reads one bound attribute (label_attention's result for it): the one that prefers the matching
    labels most, or, where none prefers them by `margin` (a head that reads another word puts about as much on the
    others), the head that puts the most on them."""
    H, match, other = found["match"].shape[1], found["match"].flatten(), found["other"].flatten()
    if (match - other).max() >= margin:
        return f"through {strongest_heads(found['match'], found['other'], 1)}"
    i = int(match.argmax())
    return (f"no head prefers its labels (the most on them: layer {i // H} head {i % H} {match[i]:.2f} vs "
            f"{other[i]:.2f})")


def describe_heads(found, top=3):
    """One line on the heads that bind: the `top` heads by attention on matching labels over other labels
    (label_attention's result under "plain"), the best head and the accuracy for each bound attribute where found
    holds them (under "plain, colour bound" and "plain, shape bound"), and the highest induction score."""
    heads = strongest_heads(found["plain"]["match"], found["plain"]["other"], top)
    per = [f"{a} {r['accuracy']:.0%}, {bound_head(r)}" for a in ("colour", "shape")
           if (r := found.get(f"plain, {a} bound"))]
    return (f"binding heads (the answer's attention on the matching labels vs the other labels, 16 shots): {heads}; " +
            (f"by the attribute the labels name: {'; '.join(per)}; " if per else "") +
            f"highest induction score {found['induction'].max():.2f} (1 = a pure induction head)")
