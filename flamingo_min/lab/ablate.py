"""Ablations: the paper's Table 3 at toy scale, behind `python main.py ablate`.

The paper removes one design choice at a time from Flamingo-3B and reports one overall score (baseline 70.7). Here
each variant is a configuration switch that `train` takes too (`--set model.resampler=mlp`); `ablate` pretrains the LM
and the vision encoder once, then trains one bridge per variant and seed on those same frozen parts, and evaluates
every bridge on the same held-out episodes.

Layout of the output folder (default runs/ablate):
    pretrained/            the `lm` and `vision` stages, shared by every variant (seed 0)
    pretrained-easy/       the `vision` stage without hard pairs, for the variant `vision-easy` only
    VARIANT/seedS/         a complete run folder (lm.pt and vision.pt are links to the shared ones), so `eval`,
                           `sample` and `train` work on it; result.json once it is evaluated
    ablations.json, ablations.md, ablations.png
Resuming: a variant with a result.json is done; one without resumes its flamingo stage from its last checkpoint.

Our choices where the paper is silent or far away: fewer bridge steps than `train` (the baseline row is reported at the
same budget); greedy decoding; the score of a task is its close-ended accuracy (captions: open-ended token F1) at 4, 8
and 16 shots; the overall score is their plain mean over tasks and shots (the paper's is a mean of scores normalised by
the state of the art, which a toy world does not have).
"""
import json
import os
import shutil
import time
from dataclasses import dataclass

import torch

from toy_data.tasks import TASKS

from .. import evaluate
from . import plots
from ..config import make_config, to_dict
from ..errors import ConfigError
from ..checkpoints import atomic_write, check_writable, write_text
from ..runs import ckpt_path, load_run, stages, start_run
from ..train import flamingo_parameters, run_stage
from . import probes

SHOTS = ("4", "8", "16")
HEADLINE = {"bind": "closed", "match": "closed", "infer": "closed", "question": "closed", "caption": "open",
            "count": "closed"}
PAPER_BASELINE = 70.7
# Per preset: the `train` preset it starts from, what ablate changes in it, and how many bridge seeds by default.
PRESETS = {"quick": ("quick", ["train.flamingo_steps=50", "train.eval_episodes=24"], 1),
           "default": ("default", ["train.flamingo_steps=300", "train.eval_episodes=100"], 2)}


@dataclass(frozen=True)
class Variant:
    name: str
    what: str               # the change, in words
    paper: str              # the paper's row (Table 3, Flamingo-3B, overall score), or "" where it has none
    paper_score: float      # nan where it has none
    settings: tuple = ()    # --set values; a callable of the base Config where they depend on its sizes


def _middle(cfg):
    n = cfg.model.n_layers
    return (f"model.xattn_every={n}", f"model.xattn_offset={n // 2}")


NAN = float("nan")
VARIANTS = [
    Variant("baseline", "the recipe: resampler, tanh-gated layers before every block, frozen LM and encoder",
            "Flamingo-3B", PAPER_BASELINE),
    Variant("ungated", "no tanh gates: each layer added as a plain residual", "w/o tanh gating", 66.5,
            ("model.xattn_block=ungated",)),
    Variant("vanilla-xattn", "ungated cross-attention alone, no feed-forward of its own", "vanilla xattn", 66.9,
            ("model.xattn_block=vanilla",)),
    Variant("all-images", "text attends to every previous image, not only the last", "all previous images (T10)",
            63.5, ("model.only_immediate=false",)),
    Variant("xattn-every-2", "a gated layer before every 2nd block", "xattn every 2nd", 68.2,
            ("model.xattn_every=2",)),
    Variant("xattn-middle", "one gated layer, before the middle block", "one xattn in the middle", 59.8, _middle),
    Variant("mlp", "a residual MLP on every feature instead of the resampler", "MLP", 66.6, ("model.resampler=mlp",)),
    Variant("transformer", "a plain transformer over the features instead of the resampler", "Transformer", 66.7,
            ("model.resampler=transformer",)),
    Variant("mean-pool", "the features' mean, one token per image", "", NAN, ("model.resampler=mean",)),
    Variant("lm-finetuned", "the pretrained LM trained with the bridge", "LM fine-tuned", 62.7,
            ("train.lm_mode=finetune",)),
    Variant("lm-scratch", "an LM from scratch, trained with the bridge", "LM from scratch", 57.8,
            ("train.lm_mode=scratch",)),
    Variant("no-interleaved", "image-caption pairs only", "w/o M3W", 53.4, ("train.doc_weight=0",)),
    Variant("no-pairs", "interleaved documents only", "w/o image-text pairs", 60.9, ("train.pair_weight=0",)),
    Variant("round-robin", "one dataset per update, in turn", "round-robin", 62.9, ("train.mixing=round_robin",)),
    Variant("vision-random", "the encoder frozen at random initialisation", "weaker encoder (NFNet-F0)", 62.7,
            ("train.vision_mode=random",)),
    Variant("vision-easy", "the encoder pretrained on random pairs only (no twins, no colourless)",
            "weaker encoder (NFNet-F0)", 62.7, ("train.vision_hard_pairs=false",)),
]
NAMES = [v.name for v in VARIANTS]


def pick(only):
    """The variants named in `only` (all when empty), in table order; a ConfigError for an unknown name."""
    bad = [n for n in only if n not in NAMES]
    if bad:
        raise ConfigError(f"unknown variant {bad[0]!r}: choose from {', '.join(NAMES)}")
    return [v for v in VARIANTS if not only or v.name in only]


def configs(preset, overrides, variants):
    """The base Config and each variant's, checked before any work."""
    if preset not in PRESETS:
        raise ConfigError(f"unknown ablate preset {preset!r}: choose from {', '.join(PRESETS)}")
    train_preset, budget, _ = PRESETS[preset]
    base = make_config(train_preset, [*budget, *overrides])
    out = {}
    for v in variants:
        extra = v.settings(base) if callable(v.settings) else v.settings
        try:
            out[v.name] = make_config(train_preset, [*budget, *overrides, *extra])
        except ConfigError as e:
            raise ConfigError(f"variant {v.name}: {e}") from None
    return base, out


def _link(src, dst):
    """dst becomes the same file as src (a hard link, or a copy where links are not possible)."""
    if os.path.exists(dst):
        return
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst + ".tmp")
        os.replace(dst + ".tmp", dst)


def pretrain(out, base, variants, device, progress):
    """The shared stages: `lm` and `vision` once in out/pretrained, and the easy encoder if a variant needs it.
    Returns {variant name: folder holding its pretrained stages}."""
    shared = os.path.join(out, "pretrained")
    start_run(shared, base)
    for stage in ("lm", "vision"):
        run_stage(shared, stage, base, seed=0, device=device, progress=progress)
    homes = {}
    for name, cfg in variants.items():
        homes[name] = shared
        if not cfg.train.vision_hard_pairs:
            homes[name] = os.path.join(out, "pretrained-easy")
            start_run(homes[name], cfg)
            run_stage(homes[name], "vision", cfg, seed=0, device=device, progress=progress)
            _link(ckpt_path(shared, "lm"), ckpt_path(homes[name], "lm"))
    return homes


def run_variant(folder, home, cfg, seed, device, progress):
    """Train (or resume) one variant's bridge for one seed in `folder`, evaluate it, write result.json; return it.
    A folder that already has its result.json is not touched again."""
    start_run(folder, cfg)  # a CheckpointError here: this folder was made with other settings (use a new --out)
    done = os.path.join(folder, "result.json")
    if os.path.exists(done):
        with open(done) as f:
            return json.load(f)
    for stage in stages(cfg):
        if stage != "flamingo":
            _link(ckpt_path(home, stage), ckpt_path(folder, stage))
    saved = run_stage(folder, "flamingo", cfg, seed, device, progress=progress)
    model, _ = load_run(folder, device)
    t0 = time.perf_counter()
    result = evaluate.evaluate(model, cfg.data, SHOTS, cfg.train.eval_episodes, seed=0, tasks=TASKS,  # same episodes
                               beams=1)
    record = {"seed": seed, "eval": result, "eval_seconds": round(time.perf_counter() - t0, 1),
              "trainable": sum(p.numel() for _, p in flamingo_parameters(model, cfg)),
              "step_ms": 1000 * saved["elapsed"] / saved["step"],
              "text_binding": probes.lm_binding_accuracy(model.lm, pairs=8),
              "config": to_dict(cfg)}
    write_text(json.dumps(record, indent=1), done)
    return record


def headline(result):
    """{task: {shot: score}} in each task's headline mode, and the overall score (their mean)."""
    scores = {task: result["tasks"][f"{task}/{mode}"]["shots"] for task, mode in HEADLINE.items()
              if f"{task}/{mode}" in result["tasks"]}
    cells = [v for per in scores.values() for v in per.values()]
    return scores, sum(cells) / len(cells)


def summarise(records):
    """Per variant, over its seeds: overall score (mean, min, max), per task and shot the mean, trainable parameters,
    step time, text-only binding."""
    rows = {}
    for name, recs in records.items():
        heads = [headline(r["eval"]) for r in recs]
        overall = [h[1] for h in heads]
        tasks = {t: {s: sum(h[0][t][s] for h in heads) / len(heads) for s in heads[0][0][t]} for t in heads[0][0]}
        rows[name] = {"seeds": [r["seed"] for r in recs], "overall": {"mean": sum(overall) / len(overall),
                      "min": min(overall), "max": max(overall), "values": overall}, "tasks": tasks,
                      "trainable": recs[0]["trainable"], "step_ms": sum(r["step_ms"] for r in recs) / len(recs),
                      "text_binding": sum(r["text_binding"] for r in recs) / len(recs)}
    base = rows.get("baseline")
    for name, row in rows.items():
        row["direction"] = direction(row, base) if base and name != "baseline" else ""
    return rows


def direction(row, base):
    """Against the baseline, read from the seeds' ranges: below (every seed of the variant under every seed of the
    baseline), above, or within noise (the ranges overlap). The paper finds every variant below. With one seed on
    either side there is no range to read: the sign alone, marked as such."""
    o, b = row["overall"], base["overall"]
    if len(o["values"]) < 2 or len(b["values"]) < 2:
        return {-1: "below (1 seed)", 0: "level (1 seed)", 1: "above (1 seed)"}[(o["mean"] > b["mean"]) -
                                                                               (o["mean"] < b["mean"])]
    if o["max"] < b["min"]:
        return "below: as the paper"
    if o["min"] > b["max"]:
        return "above: unlike the paper"
    return "within noise"


def table(rows, steps, episodes):
    """ablations.md: one row per variant, shaped like the paper's Table 3."""
    by = {v.name: v for v in VARIANTS}
    tasks = list(next(iter(rows.values()))["tasks"])
    head = ("| variant | change | paper (3B) | trainable | ms/step | " + " | ".join(f"{t} 4/16" for t in tasks) +
            " | text bind | overall | vs baseline | direction |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    base = rows.get("baseline", {}).get("overall", {}).get("mean")
    for name, r in rows.items():
        v, o = by[name], r["overall"]
        paper = f"{v.paper} {v.paper_score:.1f}" if v.paper else "-"
        cells = " | ".join(f"{r['tasks'][t]['4']:.2f}/{r['tasks'][t]['16']:.2f}" for t in tasks)
        spread = f" ({o['max'] - o['min']:.2f})" if len(r["seeds"]) > 1 else ""
        delta = f"{o['mean'] - base:+.3f}" if base is not None and name != "baseline" else ""
        lines.append(f"| {name} | {v.what} | {paper} | {r['trainable']:,} | {r['step_ms']:.0f} | {cells} | "
                     f"{r['text_binding']:.2f} | {o['mean']:.3f}{spread} | {delta} | {r['direction']} |")
    seeds = sorted({s for r in rows.values() for s in r["seeds"]})
    lines.append(f"\n{steps} bridge steps per variant; bridge seeds {', '.join(map(str, seeds))} on one pretrained LM "
                 f"and encoder; {episodes} episodes per task and shot count, the same for every variant. Task cells: "
                 "4-shot/16-shot mean over seeds (caption: open-ended token F1; the rest: close-ended accuracy). "
                 "Overall: mean over tasks and 4, 8 and 16 shots (max - min over seeds). Text bind: the LM's own "
                 "text-only binding after the stage (8 pairs, 3-way). Direction: from the seeds' ranges.")
    return "\n".join(lines)


def run(out, preset="default", overrides=(), only=(), seeds=None, device=torch.device("cpu"), progress=True,
        say=print):
    """The whole ablation: pretrain once, one bridge per variant and seed, then the table. Returns the summary."""
    variants = pick(only)
    base, cfgs = configs(preset, overrides, variants)
    seeds = PRESETS[preset][2] if seeds is None else seeds
    for name in ("ablations.json", "ablations.md", "ablations.png"):
        check_writable(os.path.join(out, name))
    homes = pretrain(out, base, cfgs, device, progress)
    for v in variants:
        for seed in range(seeds):
            folder = os.path.join(out, v.name, f"seed{seed}")
            r = run_variant(folder, homes[v.name], cfgs[v.name], seed, device, progress)
            score = headline(r["eval"])[1]
            say(f"{v.name:<15} seed {seed}: overall {score:.3f}, {r['step_ms']:.0f} ms/step, "
                f"{r['trainable']:,} trained")
    done = collect(out)  # every variant with results in the folder, earlier --only runs included
    rows = summarise(done)
    t = base.train
    text = table(rows, t.flamingo_steps, t.eval_episodes)
    picture = plots.ablations(rows, PAPER_BASELINE, {v.name: v.paper_score for v in VARIANTS})
    atomic_write(os.path.join(out, "ablations.json"), json.dumps(
        {"variants": rows, "flamingo_steps": t.flamingo_steps, "episodes": t.eval_episodes, "shots": list(SHOTS),
         "headline": HEADLINE}, indent=1).encode())
    write_text(text + "\n", os.path.join(out, "ablations.md"))
    atomic_write(os.path.join(out, "ablations.png"), picture)
    return rows, text


def collect(out):
    """Every finished variant's results in `out`, in table order: {name: [record per seed]}."""
    found = {}
    for name in NAMES:
        folder = os.path.join(out, name)
        seeds = sorted(d for d in os.listdir(folder) if d.startswith("seed")) if os.path.isdir(folder) else []
        recs = []
        for d in seeds:
            path = os.path.join(folder, d, "result.json")
            if os.path.exists(path):
                with open(path) as f:
                    recs.append(json.load(f))
        if recs:
            found[name] = recs
    return found

