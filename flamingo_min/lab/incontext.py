"""In-context copying, seed by seed: `python main.py copying` trains the LM stage alone for several seeds, watches
its copying appear (probes.copying every 100 steps), and reads every binding format's probe at the end.

The LM is where Flamingo's in-context learning comes from: the bridge only lets pictures reach a mechanism the LM
already has. That mechanism appears suddenly, after hundreds of steps of next-token training (Olsson et al. 2022's
phase change), and whether and when it appears depends on the seed and on the text (Chan et al. 2022). A lever on the
LM's recipe (`--set train.lm_steps=...`, `data.text_formats=...`, ...) counts when it holds over every seed, so each
one is read here over several:

    runs/copying/NAME/seedS/      a run folder with the `lm` stage alone (resumable, reusable by `train --out`)
    runs/copying/NAME/copying.json, copying.png, heads.png

copying.json: {"overrides": [...], "formats": {name: "trained" | "held out"}, "seeds": {S: {"onset": step or null,
"curve": [[step, accuracy], ...], "probes": {"FORMAT/K": accuracy, "lures/K": accuracy, "plain lure/K": accuracy,
"plain no lure/K": accuracy, "plain colour/K" and "plain shape/K": accuracy where the labels name a colour or a shape,
"plain shown N/4": accuracy where the supports show the answer's label N times}}}}.
"""
import json
import os

import torch

from toy_data.formats import BY_NAME

from .. import runs
from ..checkpoints import atomic_write, check_writable
from ..config import make_config
from ..train import run_stage
from . import plots, probes

SHOTS = (4, 16)


def read_probes(lm, episodes=150, seed=0):
    """Every declared binding format's text probe at 4 and 16 shots, lures (plain) at both, and the plain probe apart
    (probes.lure_split, probes.repeats_split), on episodes of `seed` (choose a recipe on one seed's episodes, report
    another's)."""
    read = lambda k, **kw: probes.lm_concept_accuracy(lm, shots=k, episodes=episodes, seed=seed, **kw)
    out = {f"{name}/{k}": read(k, fmt=name) for name in BY_NAME for k in SHOTS}
    out.update({f"lures/{k}": read(k, lures=True) for k in SHOTS})
    for k in SHOTS:     # plain/K apart: its episodes that hold a lure by chance, and the rest
        out.update({f"plain {part}/{k}": v for part, v in probes.lure_split(lm, k, episodes, seed).items()})
    for k in SHOTS:     # and by the attribute its labels name: a first-layer lookup finds only the shape
        out.update({f"plain {part}/{k}": v for part, v in probes.attribute_split(lm, k, episodes, seed).items()})
    # and by how often the supports show the answer's label, at 4 shots (at 16 nearly every episode shows it 3+ times)
    out.update({f"plain shown {part}/4": v for part, v in probes.repeats_split(lm, 4, episodes, seed).items()})
    return out


def run(out, preset="default", overrides=(), seeds=(0, 1, 2), device=torch.device("cpu"), episodes=150,
        probe_seed=0, progress=True):
    """Train (or reuse) the LM of every seed and measure it; writes copying.json and the figures; returns the result."""
    cfg = make_config(preset, overrides)
    for name in ("copying.json", "copying.png", "heads.png"):
        check_writable(os.path.join(out, name))
    result = {"overrides": list(overrides), "preset": preset, "episodes": episodes, "probe_seed": probe_seed,
              "formats": {f: "trained" if f in cfg.data.text_formats else "held out" for f in BY_NAME}, "seeds": {}}
    heads = None
    for seed in seeds:
        folder = os.path.join(out, f"seed{seed}")
        os.makedirs(folder, exist_ok=True)
        runs.start_run(folder, cfg)
        run_stage(folder, "lm", cfg, seed, device, progress=progress, probe=probes.copying)
        lm = runs.load_lm(folder, cfg).to(device)
        copied = probes.watched(runs.read_metrics(folder)) or {"onset": None, "curve": []}
        result["seeds"][str(seed)] = {**copied, "probes": read_probes(lm, episodes, probe_seed)}
        if heads is None:   # the first seed's heads, in a trained and (if any) a held-out format
            held = [f for f, kind in result["formats"].items() if kind == "held out"]
            heads = {"induction": probes.induction_scores(lm),
                     **{fmt: probes.label_attention(lm, fmt, 16, episodes=100) for fmt in ["plain"] + held[:1]}}
            result["heads"] = {"seed": seed, "induction": heads["induction"].tolist(),
                               **{fmt: {k: v.tolist() if torch.is_tensor(v) else v for k, v in r.items()}
                                  for fmt, r in heads.items() if fmt != "induction"}}
    atomic_write(os.path.join(out, "copying.png"), plots.copying(result))
    atomic_write(os.path.join(out, "heads.png"), plots.heads(result["heads"]))
    atomic_write(os.path.join(out, "copying.json"), json.dumps(result, indent=1).encode())
    return result


def table(result):
    """A row per probe (and the onset step), a column per seed, then the mean and the minimum over seeds; held-out
    formats marked `*`."""
    seeds = result["seeds"]
    keys = list(dict.fromkeys(k for r in seeds.values() for k in r["probes"]))   # in order, each once
    mark = lambda k: k.replace("/", "*/") if result["formats"].get(k.split("/")[0]) == "held out" else k
    lines = [f"{'probe':<17}" + "".join(f"{'seed ' + s:>8}" for s in seeds) + f"{'mean':>8}{'min':>8}"]
    onsets = [r["onset"] for r in seeds.values()]
    lines.append(f"{'onset step':<17}" + "".join(f"{'never' if o is None else o:>8}" for o in onsets))
    for part in ("shape", "colour"):   # the onset of each attribute the labels name, where the probe logged them
        if all(part in r.get("parts", {}) for r in seeds.values()):
            lines.append(f"{part + ' onset':<17}" + "".join(
                f"{'never' if (o := r['parts'][part]['onset']) is None else o:>8}" for r in seeds.values()))
    for k in keys:
        values = [r["probes"].get(k) for r in seeds.values()]     # None: a lure_split part with no episode
        read = [v for v in values if v is not None]
        lines.append(f"{mark(k):<17}" + "".join(f"{'-' if v is None else f'{v:.2f}':>8}" for v in values) +
                     f"{sum(read) / len(read):>8.2f}{min(read):>8.2f}")
    lines.append(f"(concept binding in text, FORMAT/shots, {result['episodes']} episodes each; onset: the first "
                 f"logged LM step whose 4-shot plain probe reads >= {probes.ONSET:.2f}, and shape / colour onset its "
                 "episodes whose labels name a shape / a colour; *: a format the LM's text never used; plain lure / "
                 "no lure: the plain probe's episodes that hold a lure by chance, and the rest; plain colour / shape: "
                 "those whose labels name a colour / a shape; plain shown N: those whose supports show the answer's "
                 "label N times)")
    return "\n".join(lines)
