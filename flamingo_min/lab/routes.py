"""Which gated layers carry binding, where in the prompt, and which of the LM's heads read it. `python main.py routes`.

A gated layer with tanh(alpha) = 0 is the identity (paper section 2.2): the LM block after it reads the stream as if
the layer were not there. Closing a trained layer's gate so asks what the model loses without it. This closes a set
of layers (forward hooks that hand each layer's input on unchanged: no weight is touched, and the ungated and vanilla
layers of the ablations are removed alike) and reads close-ended binding on the evaluation's episodes with the rest
open: every layer open, each layer closed alone, each layer and each pair left open alone, and none open, where the
model is its frozen LM with the images' tags and no pictures, near chance.

A layer may also be closed in one part of the prompt only: at the query (the positions that see the prompt's last
image, where the answer is read) or at the supports (every position before them, where the labels are written).
Binding is a lookup: the LM's heads match what the query's position holds against what each support's label
position holds. A layer the lookup needs at the supports writes the pictures the labels are found by; one it needs at
the query writes the picture they are matched against. Which heads do the matching is read as lab/probes.py reads
them in text: each head's attention from the answer's position to the labels of the supports that carry the answer,
and to the other labels, here with the pictures.

Each set is read on every episode and apart on those whose prompt shows the answer's label once, the hardest part
(lab/repeats.py). Where a pair open alone binds nearly as well as every layer, and closing either of the two costs
most of it, binding runs through those two layers together.

Shapes: B batch, T text length, M visual tokens (N images x R latents), D width; L gated layers (or LM layers), H
heads.
"""
from collections import Counter
from contextlib import contextmanager
from itertools import combinations

import torch

from toy_data import TOKENIZER
from toy_data.tasks import shot_count

from ..evaluate import batch_prompts, left_pad, mean
from .probes import attention, mass_on, strongest_heads
from .repeats import binding_episodes, closed_at

SHOTS = ("4",)
MOST_PAIRS = 8   # layers up to which every pair is read alone (8 layers: 28 pairs)
PARTS = ("everywhere", "supports", "query")


def at_query(mask):
    """(B, T, M) cross-attention mask -> (B, T): the positions that see the row's last image, which is the query's.
    A position sees its image's visual tokens (and, without only_immediate, every earlier image's too), so these are
    the positions from the last `<image>` on; a row that shows no image has none."""
    B, T, M = mask.shape
    last = torch.where(mask.any(1), torch.arange(M, device=mask.device), -1).max(1).values   # (B,): last token seen
    return mask.gather(2, last.clamp(min=0)[:, None, None].expand(B, T, 1))[..., 0] & (last >= 0)[:, None]


def hand_on(part):
    """A forward hook that hands the layer's input on unchanged in `part` of the prompt, its output elsewhere."""
    def hook(layer, args, out):
        if part == "everywhere":
            return args[0]
        x, _, mask = args                                                       # (B, T, D), (B, M, D), (B, T, M)
        query = at_query(mask)[..., None]                                       # (B, T, 1)
        return torch.where(query if part == "query" else ~query, x, out)
    return hook


@contextmanager
def closed(model, layers, part="everywhere"):
    """Within the block, the gated layers `layers` (indices into model.xattn) pass their input on unchanged in `part`
    of the prompt: everywhere, at the supports or at the query."""
    if part not in PARTS:
        raise ValueError(f"part {part!r}: choose from {', '.join(PARTS)}")
    handles = [model.xattn[j].register_forward_hook(hand_on(part)) for j in layers]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def closings(n):
    """{name: (the layers closed, where)}, each set of open layers once: every layer open, each layer closed alone,
    everywhere and then in each part of the prompt, each layer and each pair left open alone, none open."""
    every = tuple(range(n))
    shut = {(): "all open"}
    for j in every:
        shut.setdefault((j,), f"without {j}")
    for size in (1, 2) if n <= MOST_PAIRS else (1,):
        for kept in combinations(every, size):
            shut.setdefault(tuple(i for i in every if i not in kept), "only " + "+".join(map(str, kept)))
    shut.pop(every, None)               # one layer: "without 0" is the LM itself
    shut[every] = "none open (the LM)"
    found = {name: (list(layers), "everywhere") for layers, name in shut.items()}
    for part in PARTS[1:]:
        found |= {f"without {j} at the {part}": ([j], part) for j in every}
    return found


@torch.no_grad()
def label_heads(model, eps, shot, media, pooled, batch_size=100):
    """Each LM head's mean attention from the answer's position (the prompt's last) to the labels of the supports that
    carry the answer (`match`) and to the other candidates' labels (`other`), every gate open: two (L, H) tensors."""
    match, other = 0, 0
    for lo in range(0, len(eps), batch_size):
        chunk = list(range(lo, min(len(eps), lo + batch_size)))
        prompts, m, _ = batch_prompts(eps, chunk, shot, media, pooled, "random")
        ids = left_pad(prompts).to(media.device)                                          # (B, T)
        last = torch.stack(attention(model.lm, ids, forward=lambda: model(ids, media=m)))[:, :, :, -1]   # (L,B,H,T)
        truth = torch.tensor([TOKENIZER.ids[eps[e].query.answer] for e in chunk], device=ids.device)       # (B,)
        cands = torch.tensor([[TOKENIZER.ids[c] for c in eps[e].candidates] for e in chunk], device=ids.device)
        labels = (ids[:, :, None] == cands[:, None, :]).any(-1)                           # (B, T)
        right = labels & (ids == truth[:, None])
        match = match + mass_on(last, right) * len(chunk)
        other = other + mass_on(last, labels & ~right) * len(chunk)
    return match / len(eps), other / len(eps)


def read(model, data_cfg, task="bind", shots=SHOTS, episodes=300, seed=0, progress=None):
    """{"task", "episodes", "seed", "chance", "layers": the LM block before which each gated layer sits, "shots": {K:
    [{"name", "closed": [layer, ...], "part": where they are closed, "accuracy", "once": accuracy where the prompt
    shows the answer's label once, "episodes once"}, ...]}, "heads": {K: {"match", "other": (L, H) nested lists}}},
    on the evaluation's episodes (the same seed gives the same episodes). progress: a callable(str) or None."""
    shots, eps, media, pooled = binding_episodes(model, data_cfg, task, shots, episodes, seed)   # (E, P+1, R, D)
    result = {"task": task, "episodes": episodes, "seed": seed,
              "chance": mean([1 / len(ep.candidates) for ep in eps]),
              "layers": [block for block, _ in sorted(model.xattn_at.items(), key=lambda kv: kv[1])], "shots": {},
              "heads": {}}
    for shot in shots:
        once = [Counter(e.answer for e in ep.support(shot_count(shot)))[ep.query.answer] == 1 for ep in eps]
        rows = []
        for name, (layers, part) in closings(len(model.xattn)).items():
            with closed(model, layers, part):
                right = [said == ep.query.answer for ep, said in zip(eps, closed_at(model, eps, shot, media, pooled))]
            alone = [r for r, o in zip(right, once) if o]
            rows.append({"name": name, "closed": layers, "part": part, "accuracy": mean(right),
                         "once": mean(alone) if alone else None, "episodes once": len(alone)})
            if progress:
                progress(f"{task} {shot}-shot, {name}: {rows[-1]['accuracy']:.2f}")
        result["shots"][shot] = rows
        match, other = label_heads(model, eps, shot, media, pooled)
        result["heads"][shot] = {"match": match.tolist(), "other": other.tolist()}
    return result


def table(result):
    """A row per set of closed layers, a column per shot count: accuracy on every episode (on those whose prompt
    shows the answer's label once); then the heads that read it."""
    shots = list(result["shots"])
    blocks = ", ".join(f"{j} before block {b}" for j, b in enumerate(result["layers"]))
    lines = [f"{result['task']}/closed with gated layers closed, {result['episodes']} episodes (seed "
             f"{result['seed']}), chance {result['chance']:.2f}; layers: {blocks}",
             f"{'gated layers':<28}" + "".join(f"  {s + ' shots':>12}" for s in shots)]
    for i, row in enumerate(result["shots"][shots[0]]):
        cells = []
        for s in shots:
            r = result["shots"][s][i]
            cells.append(f"{r['accuracy']:.2f} ({'-' if r['once'] is None else format(r['once'], '.2f')})")
        lines.append(f"{row['name']:<28}" + "".join(f"  {c:>12}" for c in cells))
    lines.append("(accuracy on every episode (on those whose prompt shows the answer's label once); a closed layer "
                 "passes its input on, as at initialisation)")
    for s in shots:
        heads = strongest_heads(*(torch.tensor(result["heads"][s][k]) for k in ("match", "other")))
        lines.append(f"the LM's heads that read it, {s} shots, every layer open (the answer's attention on the "
                     f"matching labels vs the other labels): {heads}")
    return "\n".join(lines)
