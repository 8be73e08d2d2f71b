"""The paper's scale claim at toy scale (Sec. 3.1, Figure 2: larger Flamingo models make better use of more shots).
`python main.py scale` trains the reference recipe at three sizes, several seeds each, and reads concept binding,
plain and in every held-out form, against the number of shots.

A size grows the LM and, with it, the bridge (the resampler and the gated layers share the LM's width); the vision
encoder stays as it is. So do the paper's models: Flamingo-3B, 9B and 80B share one NFNet-F6 and differ in their LM
(Chinchilla 1.4B, 7B, 70B) and the layers around it. Every size keeps heads 32 wide and the recipe's steps, batches
and data unchanged (our choice: the size is the one thing that moves, so a size that needed a longer schedule shows
it here rather than being given one).

    runs/scale/SIZE/seedS/      an ordinary run folder (`train --out` finishes it, `eval --run` reads it)
    runs/scale/scale.json, scale.png

scale.json: {"episodes": n, "tasks": [...], "held_out": [...], "ideal": {SHOT: p}, "sizes": {SIZE: {"overrides":
[...], "params": {"lm": n, "bridge": n}, "seeds": {S: {"onset": step or null, "seconds": {STAGE: s},
"scores": {"TASK/MODE": {SHOT: score}}}}}}}.
"""
import json
import os

import torch

from toy_data.tasks import RICH_TASKS

from .. import runs
from ..checkpoints import atomic_write, check_writable
from ..config import make_config
from ..errors import EvalError
from ..evaluate import evaluate
from ..train import run_stage
from . import plots, probes, report

# d_model / n_heads = 32 at every size. LM parameters: 0.12M, 0.83M, 2.7M.
SIZES = {"small": ("model.d_model=64", "model.n_layers=2", "model.n_heads=2"),
         "default": (),
         "big": ("model.d_model=192", "model.n_layers=6", "model.n_heads=6")}
TASKS = ("bind",) + RICH_TASKS
SHOTS = ("1", "2", "4", "8", "16")


def evaluated(folder, data_cfg, seed, episodes, device, progress=None):
    """The run's eval.json when it holds every binding cell this study reads (a `train` run's does), else a fresh
    evaluation of the binding tasks alone, written as the run's eval.json where it has none (one of other settings
    stays as it is)."""
    try:
        result = report.read_result(folder)
        if result["episodes"] == episodes and result["seed"] == seed and all(
                set(SHOTS) <= set(result["tasks"].get(f"{t}/{m}", {}).get("shots", ())) for t in TASKS
                for m in ("open", "closed")):
            return result
    except EvalError:       # no eval.json yet
        pass
    model, _ = runs.load_run(folder, device)
    result = evaluate(model, data_cfg, SHOTS, episodes, seed, list(TASKS), progress=progress)
    if not os.path.exists(os.path.join(folder, "eval.json")):
        report.write_report([result], folder)
    return result


def run(out, sizes=tuple(SIZES), seeds=(0, 1, 2), episodes=200, device=torch.device("cpu"), preset="default",
        overrides=(), progress=True, say=print):
    """Train (or reuse) every size and seed, evaluate binding, write scale.json and scale.png; returns the result."""
    for name in ("scale.json", "scale.png"):
        check_writable(os.path.join(out, name))
    result = {"episodes": episodes, "tasks": list(TASKS), "sizes": {}}
    for size in sizes:
        size_overrides = [*overrides, *SIZES[size]]
        cfg = make_config(preset, size_overrides)
        record = {"overrides": size_overrides, "seeds": {}}
        for seed in seeds:
            folder = os.path.join(out, size, f"seed{seed}")
            os.makedirs(folder, exist_ok=True)
            runs.start_run(folder, cfg)
            for stage in runs.stages(cfg):
                if not runs.stage_done(folder, stage):
                    say(f"{size} seed {seed}: training {stage}")
                run_stage(folder, stage, cfg, seed, device, progress=progress,
                          probe=probes.copying if stage == "lm" else None)
            scores = evaluated(folder, cfg.data, seed, episodes, device,
                               progress=lambda m: say(f"{size} seed {seed}: eval {m}"))
            metrics = runs.read_metrics(folder)
            record["seeds"][str(seed)] = {
                "onset": probes.onset([m for m in metrics if "copy" in m]),
                "seconds": {s: max((m["time"] for m in metrics if m["stage"] == s), default=None)
                            for s in runs.stages(cfg)},
                "scores": {k: {s: scores["tasks"][k]["shots"][s] for s in SHOTS}
                           for t in TASKS for k in (f"{t}/open", f"{t}/closed")}}
            result.setdefault("held_out", scores["held_out"])
            result.setdefault("ideal", {s: scores["tasks"]["bind/closed"]["ideal"][s] for s in SHOTS})
        model, _ = runs.load_run(folder, torch.device("cpu"))
        record["params"] = {"lm": sum(p.numel() for p in model.lm.parameters()),
                            "bridge": sum(p.numel() for _, p in model.trainable_parameters())}
        result["sizes"][size] = record
    atomic_write(os.path.join(out, "scale.png"), plots.scale(result))
    atomic_write(os.path.join(out, "scale.json"), json.dumps(result, indent=1).encode())
    return result


def stats(values):
    """Mean and spread (max - min) of a list."""
    return sum(values) / len(values), max(values) - min(values)


def held_out_mean(scores, held_out, shot, mode="closed"):
    """One seed's score averaged over the held-out binding forms."""
    return sum(scores[f"{t}/{mode}"][shot] for t in held_out) / len(held_out)


def table(result):
    """A row per size: its parameters, each seed's copying onset, bind/closed per shot count and the held-out forms'
    mean at 4 and 16 shots (close- and open-ended), each a mean over seeds with its spread in brackets."""
    held = result["held_out"]
    cols = [("bind " + s, lambda sc, s=s: sc["bind/closed"][s]) for s in SHOTS[1:]]
    cols += [(f"held-out {s}", lambda sc, s=s: held_out_mean(sc, held, s)) for s in ("4", "16")]
    cols += [(f"h-o open {s}", lambda sc, s=s: held_out_mean(sc, held, s, "open")) for s in ("4", "16")]
    lines = [f"{'size':<8}{'LM':>7}{'bridge':>8}  {'onsets':<16}" + "".join(f"{c:>13}" for c, _ in cols)]
    for size, r in result["sizes"].items():
        seeds = r["seeds"].values()
        onsets = ",".join("never" if s["onset"] is None else str(s["onset"]) for s in seeds)
        cells = "".join(f"{'%.2f (%.2f)' % stats([get(s['scores']) for s in seeds]):>13}" for _, get in cols)
        lines.append(f"{size:<8}{r['params']['lm'] / 1e6:>6.2f}M{r['params']['bridge'] / 1e6:>7.2f}M  {onsets:<16}"
                     + cells)
    lines.append(f"{'ideal':<41}" + "".join(f"{result['ideal'][s]:>13.2f}" for s in SHOTS[1:]))
    seeds = ", ".join(next(iter(result["sizes"].values()))["seeds"])
    lines.append(f"(close-ended accuracy unless marked open, {result['episodes']} episodes per cell, mean (max - min) "
                 f"over seeds {seeds}; held-out: the mean over {', '.join(held)}; onsets: the LM step at which each "
                 "seed's copying appeared)")
    return "\n".join(lines)
