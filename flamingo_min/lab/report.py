"""Reports of evaluations: several seeds summarised (mean, min, max), the text table, eval.json or report.json with
fewshot.png, and a picture of a model's answers (`python main.py eval`, `report`, `sample`).

Reads what flamingo_min/evaluate.py writes; nothing in the core reads this file.
"""
import json
import os

import torch

from ..checkpoints import atomic_write, check_writable
from ..errors import EvalError
from ..evaluate import answer, check_request, episode_images, episode_media, episodes_for, mean, shot_label
from toy_data.tasks import shot_count
from . import plots


@torch.no_grad()
def sample(model, data_cfg, task, shot, n, seed):
    """The model's open-ended answers (beam 3) on n evaluation episodes: rows of (support images, support texts,
    query image, answer, truth), for a picture."""
    check_request(model, data_cfg, (task,), (shot,), n, 1, "random", 1)
    eps = episodes_for(task, n, data_cfg, seed, max(32, shot_count(shot)))
    media, pooled = episode_media(model, eps, data_cfg)
    opened, _, _ = answer(model, eps, list(range(n)), shot, media, pooled, "random", beams=3)
    rows = []
    for ep, said in zip(eps, opened):
        images, idx = episode_images(ep, data_cfg), ep.support_indices(shot_count(shot))
        texts = [ep.pool[i].chunk().replace("<image> ", "").replace(" <EOC>", "").replace(" at ", "\n") for i in idx]
        rows.append((images[idx], texts, images[-1], said, ep.query.answer))
    return rows


# --- several seeds, and the table ------------------------------------------------------------------------------------
def summarise(results):
    """Several eval.json results (one per training seed) -> per cell mean, min and max, in eval.json's layout with
    each number replaced by {"mean", "min", "max", "spread"}."""
    def stats(values):
        return {"mean": mean(values), "min": min(values), "max": max(values), "spread": max(values) - min(values)}

    first = results[0]["tasks"]
    for r in results[1:]:
        if r["tasks"].keys() != first.keys() or any(r["tasks"][n]["shots"].keys() != first[n]["shots"].keys()
                                                   for n in first):
            raise EvalError("these runs were evaluated on different tasks or shot counts; evaluate them alike "
                            "(python main.py eval --run RUN with the same --tasks and --shots)")
    out = {}
    for name, cell in first.items():
        col = lambda get: stats([get(r["tasks"][name]) for r in results])
        out[name] = {"chance": cell["chance"],
                     "baselines": {b: {s: col(lambda c: c["baselines"][b][s]) for s in per}
                                   for b, per in cell["baselines"].items()},
                     "shots": {s: col(lambda c: c["shots"][s]) for s in cell["shots"]}}
        if "ideal" in cell:
            out[name]["ideal"] = {s: col(lambda c: c["ideal"][s]) for s in cell["ideal"]}
    return {"tasks": out, "held_out": results[0].get("held_out", []), "episodes": results[0]["episodes"],
            "seeds": [r["seed"] for r in results]}


def table(results):
    """One eval.json result, or a list of them (several seeds), as a text table: a row per task/mode with a column per
    shot key, and under it the best context-only baseline at each shot (and for binding, the ideal observer)."""
    results = results if isinstance(results, list) else [results]
    s = summarise(results)
    many = len(results) > 1
    shots = list(next(iter(s["tasks"].values()))["shots"])
    w = 12 if many else 8
    names = {n: n.replace("/", "*/") if n.split("/")[0] in s["held_out"] else n for n in s["tasks"]}
    left = max(16, *(len(v) + 1 for v in names.values()))
    head = f"{'task/mode':<{left}}{'chance':>7}" + "".join(f"{shot_label(k):>{w}}" for k in shots)
    lines = [head, "-" * len(head)]
    cell = (lambda c: f"{c['mean']:.2f} ({c['spread']:.2f})") if many else (lambda c: f"{c['mean']:.2f}")

    def under(label, values):
        return f"{label:<{left + 7}}" + "".join(f"{v:>{w}.2f}" for v in values)

    for name, r in s["tasks"].items():
        cells = "".join(f"{cell(r['shots'][k]):>{w}}" for k in shots)
        lines.append(f"{names[name]:<{left}}{r['chance']:>7.2f}{cells}")
        best = [max(r["baselines"][b][k]["mean"] for b in r["baselines"]) for k in shots]
        lines.append(under("  best baseline", best))
        if "ideal" in r and name.endswith("/closed"):
            lines.append(under("  ideal observer", [r["ideal"][k]["mean"] for k in shots]))
    seeds = ", ".join(map(str, s["seeds"]))
    lines.append(f"({s['episodes']} episodes per cell; " + (f"mean (max - min) over seeds {seeds}" if many else
                 f"seed {seeds}") + "; best baseline: the best of majority, last and uniform, which read only the "
                 "answers in the prompt; ideal observer: perfect perception and reasoning, binding's ceiling; "
                 "caption/open is token F1, everything else accuracy" +
                 ("; *: a binding format no training document used" if s["held_out"] else "") + ")")
    return "\n".join(lines)


def write_report(results, folder):
    """One eval.json result (-> eval.json) or several seeds' (-> report.json, their summary), and fewshot.png. Both
    are rendered first, then written whole: a failure leaves the folder as it was."""
    name = "eval.json" if len(results) == 1 else "report.json"
    check_writable(os.path.join(folder, name))
    summary = summarise(results)
    data = json.dumps(results[0] if len(results) == 1 else summary, indent=1).encode()
    picture = plots.fewshot(summary)
    atomic_write(os.path.join(folder, name), data)
    atomic_write(os.path.join(folder, "fewshot.png"), picture)
    return [os.path.join(folder, name), os.path.join(folder, "fewshot.png")]


def read_result(run):
    """A run's eval.json, checked enough to be summarised; an EvalError that says how to make it otherwise."""
    path = os.path.join(run, "eval.json")
    if not os.path.isfile(path):
        raise EvalError(f"{path} does not exist: evaluate the run first (python main.py eval --run {run})")
    try:
        with open(path) as f:
            result = json.load(f)
    except (OSError, ValueError):
        result = None
    if not isinstance(result, dict) or not {"tasks", "episodes", "seed"} <= set(result) or not result["tasks"]:
        raise EvalError(f"{path} is not an evaluation result: rerun python main.py eval --run {run}")
    return result
