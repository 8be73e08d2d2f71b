"""Binding read apart by how often the prompt shows the answer's label: `python main.py repeats --run RUN`.

The ideal observer (toy_data/tasks.py) needs one example of a label to answer it: from 2 shots on it reads
0.98-1.00, however often the answer's label is shown. A model whose binding heads look a label up by its picture gives
each shown label a share of the answer's attention; where the match is soft, a label shown three times draws three
shares whether it matches or not. So this splits a binding task's close-ended episodes by the number of supports that
carry the query's label (1, 2, 3+) and, for each part, reads the model's accuracy, the ideal observer's, and how many
of the model's wrong answers name a label the prompt shows more often than the right one. Random episodes show the
query's label once in nearly every prompt at 2 shots (beside one other label), in about two in three at 4 (often
beside a label shown twice), at 16 almost never: a model pulled by counts falls from 2 to 4 shots and recovers at
16, while the ideal stays level.

The episodes are the evaluation's (evaluate.episodes_for, the same seed gives the same episodes), scored as its
close-ended mode scores them: the candidate of highest likelihood.

Shapes: E episodes, P pool pictures, R latents, D width.
"""
from collections import Counter

import torch

from toy_data.tasks import binding, ideal_binding, shot_count

from ..errors import EvalError
from ..evaluate import batch_prompts, check_request, closed_answers, episode_media, episodes_for, mean

SHOTS = ("2", "4", "8", "16")
PARTS = ("1", "2", "3+")   # supports that carry the answer's label


def part(count):
    return PARTS[min(count, len(PARTS)) - 1]


@torch.no_grad()
def closed_at(model, eps, shot, media, pooled, batch_size=100):
    """The close-ended answer to every episode at one shot key (random supports), as the evaluation ranks them."""
    out = []
    for lo in range(0, len(eps), batch_size):
        chunk = list(range(lo, min(len(eps), lo + batch_size)))
        prompts, m, _ = batch_prompts(eps, chunk, shot, media, pooled, "random")
        out += closed_answers(model, eps, chunk, prompts, m)
    return out


def binding_episodes(model, data_cfg, task, shots, episodes, seed):
    """The request checked (a binding task, shots >= 1), then (shots, the evaluation's episodes, their visual tokens
    (E, P+1, R, D) and pooled features), with the model in eval mode."""
    shots = check_request(model, data_cfg, (task,), shots, episodes, 1, "random", 100)
    if not binding(task):
        raise EvalError(f"task {task!r} has no label to bind: choose a binding task (bind, match, bind-after, ...)")
    if any(shot_count(s) < 1 for s in shots):
        raise EvalError(f"shots {','.join(shots)}: a prompt without supports shows no label; give counts >= 1")
    model.eval()
    eps = episodes_for(task, episodes, data_cfg, seed, max(32, *map(shot_count, shots)))
    return (shots, eps, *episode_media(model, eps, data_cfg))


def read(model, data_cfg, task="bind", shots=SHOTS, episodes=300, seed=0, progress=None):
    """{"task", "episodes", "seed", "shots": {K: {"all": accuracy, "ideal": its ceiling, "parts": {"1" | "2" | "3+":
    {"episodes", "accuracy", "ideal", "pulled", "pulled by chance"}}}}}: pulled is the share of the part's wrong
    answers that name a label shown more often than the right one, and pulled by chance the share a wrong answer drawn
    at random among the other candidates would (None: no wrong answer). progress: a callable(str) or None."""
    shots, eps, media, pooled = binding_episodes(model, data_cfg, task, shots, episodes, seed)
    result = {"task": task, "episodes": episodes, "seed": seed, "shots": {}}
    for shot in shots:
        rows = []                                    # (part, right, ideal, pulled, pulled by chance) per episode
        for ep, said in zip(eps, closed_at(model, eps, shot, media, pooled)):
            shown = Counter(e.answer for e in ep.support(shot_count(shot)))
            truth, others = ep.query.answer, [c for c in ep.candidates if c != ep.query.answer]
            rows.append((part(shown[truth]), said == truth, ideal_binding(ep, shot, data_cfg.bind_attributes),
                         shown[said] > shown[truth], sum(shown[c] > shown[truth] for c in others) / len(others)))
        parts = {}
        for p in PARTS:
            mine = [r for r in rows if r[0] == p]
            wrong = [r for r in mine if not r[1]]
            if mine:
                parts[p] = {"episodes": len(mine), "accuracy": mean([r[1] for r in mine]),
                            "ideal": mean([r[2] for r in mine]),
                            "pulled": mean([r[3] for r in wrong]) if wrong else None,
                            "pulled by chance": mean([r[4] for r in wrong]) if wrong else None}
        result["shots"][shot] = {"all": mean([r[1] for r in rows]), "ideal": mean([r[2] for r in rows]),
                                 "parts": parts}
        if progress:
            progress(f"{task} {shot}-shot: {result['shots'][shot]['all']:.2f} closed")
    return result


def table(result):
    """A row per shot count: every episode, then each part as accuracy / ideal (episodes), and the share of its
    wrong answers pulled to a label shown more often, against a random wrong answer's."""
    lines = [f"{result['task']}/closed, {result['episodes']} episodes (seed {result['seed']}), apart by how many "
             "supports carry the answer's label",
             f"{'shots':>5}  {'all':>11}" + "".join(f"  {'label shown ' + p + 'x':>30}" for p in PARTS)]
    for shot, r in result["shots"].items():
        cells = []
        for p in PARTS:
            c = r["parts"].get(p)
            pulled = "" if c is None or c["pulled"] is None else f" {c['pulled']:.2f}|{c['pulled by chance']:.2f}"
            cells.append("-" if c is None else f"{c['accuracy']:.2f} / {c['ideal']:.2f} ({c['episodes']}){pulled}")
        lines.append(f"{shot:>5}  {r['all']:.2f} / {r['ideal']:.2f}" + "".join(f"  {c:>30}" for c in cells))
    lines.append("(model / ideal observer (episodes), then of the wrong answers the share that name a label the "
                 "prompt shows more often than the right one | the share a random wrong answer would)")
    return "\n".join(lines)
