"""Every picture the command line saves: loss curves, gate openings (paper Fig. 6), the few-shot curves, sample
episodes, a look at the toy world, the LM's copying (its onset per seed, and which heads bind), binding by model size
(paper Fig. 2), binding apart by how often the answer's label is shown, and binding with gated layers closed.
Matplotlib with the Agg backend: no screen needed. Each function returns the PNG's bytes; callers write them with
checkpoints.atomic_write once all their work has succeeded."""
import io

import matplotlib
import torch
from einops import rearrange

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen before pyplot is imported)

MODE_STYLE = {"open": ("tab:blue", "o-"), "closed": ("tab:orange", "s-")}


def png(fig):
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _image(ax, img, title=None, colour="black"):
    """A picture (3, H, W), or a clip (F, 3, H, W) as its frames side by side, left to right, one pixel apart."""
    if img.dim() == 4:
        gap = img.new_ones(*img.shape[:-1], 1)                                  # a white column after each frame
        img = rearrange(torch.cat([img, gap], -1), "f c h w -> c h (f w)")[..., :-1]
    ax.imshow(img.permute(1, 2, 0).clamp(0, 1).cpu().tolist())   # (H, W, 3); plain lists: no array protocol
    ax.set_xticks([]), ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=7, color=colour)


def losses(metrics):
    stages = [s for s in ("lm", "vision", "flamingo") if any(m["stage"] == s for m in metrics)]
    fig, axes = plt.subplots(1, max(1, len(stages)), figsize=(4.2 * max(1, len(stages)), 3.2), squeeze=False)
    for ax, stage in zip(axes[0], stages):
        rows = [m for m in metrics if m["stage"] == stage]
        keys = [k for k in rows[0] if k.startswith("loss_")] if stage == "flamingo" else ["loss"]
        for key in keys:
            ax.plot([m["step"] for m in rows], [m[key] for m in rows], label=key)
        ax.set_title({"lm": "LM pretraining (next token)", "vision": "vision: contrastive",
                      "flamingo": "Flamingo: bridge"}[stage], fontsize=9)
        ax.set_xlabel("step"), ax.set_ylabel("loss"), ax.legend(fontsize=7)
    return png(fig)


def gates(metrics):
    rows = [m for m in metrics if m["stage"] == "flamingo"]
    names = sorted({k for m in rows for k in m if k.startswith(("xattn", "dense"))}, key=lambda n: (n[-1], n))
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    for n in names:
        ax.plot([m["step"] for m in rows], [m[n] for m in rows], label=n, ls="-" if n.startswith("xattn") else "--")
    ax.set_xlabel("step"), ax.set_ylabel("|tanh(alpha)|")
    ax.set_title("gate openings during bridge training (cf. paper Fig. 6)", fontsize=9)
    ax.legend(fontsize=6, ncol=2)
    return png(fig)


def fewshot(summary):
    """One panel per task: each mode's mean score against shots with its seeds' min-max band, the best context-only
    baseline at every shot (dashed, in that mode's unit: token F1 for open captions, accuracy otherwise), chance
    (dotted) and, for binding, the ideal observer (grey dash-dot). `summary` is report.summarise(results); every
    baseline is in eval.json. A binding format that no training document used is titled "(held out)"."""
    tasks = list(dict.fromkeys(name.split("/")[0] for name in summary["tasks"]))
    cols = min(3, len(tasks))
    rows = -(-len(tasks) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.0 * cols, 3.1 * rows), squeeze=False)
    for ax in axes.flat[len(tasks):]:
        ax.axis("off")
    for ax, task in zip(axes.flat, tasks):
        for mode, (colour, style) in MODE_STYLE.items():
            r = summary["tasks"].get(f"{task}/{mode}")
            if r is None:
                continue
            ks = list(r["shots"])
            x = range(len(ks))
            ax.plot(x, [r["shots"][k]["mean"] for k in ks], style, color=colour, label=mode, ms=4)
            ax.fill_between(x, [r["shots"][k]["min"] for k in ks], [r["shots"][k]["max"] for k in ks],
                            color=colour, alpha=0.2, lw=0)
            best = [max(r["baselines"][b][k]["mean"] for b in r["baselines"]) for k in ks]
            ax.plot(x, best, "--", color=colour, lw=1, alpha=0.7, label=f"{mode}: best baseline")
        ax.axhline(r["chance"], color="gray", ls=":", lw=1, label="chance")
        if "ideal" in r:
            ax.plot(x, [r["ideal"][k]["mean"] for k in ks], "-.", color="gray", lw=1, label="ideal observer")
        ax.set_xticks(list(x), ks), ax.set_ylim(-0.02, 1.02)
        held_out = " (held out)" if task in summary.get("held_out", ()) else ""
        ax.set_title(task + held_out), ax.set_xlabel("shots ('none': the query alone)", fontsize=8)
    axes[0][0].set_ylabel("accuracy (caption/open: token F1)", fontsize=8)
    (axes.flat[tasks.index("bind")] if "bind" in tasks else axes[0][0]).legend(fontsize=6, loc="lower right")
    seeds = summary["seeds"]
    fig.suptitle(f"few-shot scores on held-out colour x shape combinations ({summary['episodes']} episodes per "
                 f"point; " + (f"mean and min-max band over seeds {', '.join(map(str, seeds))}" if len(seeds) > 1
                               else f"seed {seeds[0]}") + "); dashed: the best baseline that reads only the prompt's "
                 "answers", fontsize=9)
    fig.tight_layout()
    return png(fig)


DIRECTION_COLOUR = {"below": "tab:green", "above": "tab:red", "": "tab:blue"}   # "": the baseline itself


def direction_colour(direction):
    """The ablation plot's colour for a direction that ablate.direction wrote: its first word, without the colon or
    bracket that follows it ("below: as the paper", "above (1 seed)"). Green below, red above, grey within noise."""
    word = direction.split(" ")[0].rstrip(":")
    return DIRECTION_COLOUR.get(word, "tab:gray")


def ablations(rows, paper_baseline, paper):
    """Left: each variant's overall score, mean and min-max over seeds, against the baseline's band. Right: the
    paper's overall score for the same change (Table 3), against its baseline."""
    names = list(rows)[::-1]
    y = range(len(names))
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(10, 0.32 * len(names) + 1.6), sharey=True)
    base = rows.get("baseline")
    if base:
        ax.axvspan(base["overall"]["min"], base["overall"]["max"], color="tab:blue", alpha=0.15, lw=0)
        ax.axvline(base["overall"]["mean"], color="tab:blue", lw=1)
    for i, n in zip(y, names):
        o, said = rows[n]["overall"], rows[n]["direction"]
        ax.errorbar(o["mean"], i, xerr=[[o["mean"] - o["min"]], [o["max"] - o["mean"]]], fmt="o",
                    color=direction_colour(said), capsize=3)
    ax.set_yticks(list(y), names), ax.set_xlabel("overall score (toy)")
    ax.set_title("toy: mean and seeds' range; band = baseline\ngreen below, grey within noise, red above", fontsize=8)
    for i, n in zip(y, names):
        if paper.get(n) == paper.get(n):  # not nan
            bx.barh(i, paper[n], color="tab:blue" if n == "baseline" else "tab:orange")
        else:
            bx.text(50.5, i, "no such row in the paper", va="center", fontsize=7, color="gray")
    bx.axvline(paper_baseline, color="tab:blue", lw=1)
    bx.set_xlim(50, 72), bx.set_xlabel("overall score (paper, Flamingo-3B, Table 3)")
    bx.set_title("the paper's row for the same change", fontsize=8)
    fig.tight_layout()
    return png(fig)


def episodes(rows):
    """rows: list of (support images, support texts, query image, answer, truth)."""
    width = max(len(r[0]) for r in rows) + 1
    wide = 0.75 * rows[0][2].shape[0] if rows[0][2].dim() == 4 else 1          # a clip's frames side by side
    fig, axes = plt.subplots(len(rows), width, figsize=(1.25 * wide * width, 1.45 * len(rows)), squeeze=False)
    for ax_row, (imgs, texts, query, answer, truth) in zip(axes, rows):
        for ax in ax_row:
            ax.axis("off")
        for ax, img, t in zip(ax_row, imgs, texts):
            ax.axis("on"), _image(ax, img, t)
        ok = answer == truth
        ax_row[len(imgs)].axis("on")
        _image(ax_row[len(imgs)], query, f"-> {answer}" + ("" if ok else f"\n(truth: {truth})"),
               "green" if ok else "red")
    return png(fig)


def world(images, captions, strip, strip_texts):
    cols, n = 8, len(images)
    grid_rows = -(-n // cols)
    fig = plt.figure(figsize=(1.45 * cols, 1.6 * (grid_rows + 1)))
    for i, (img, cap) in enumerate(zip(images, captions)):
        _image(fig.add_subplot(grid_rows + 1, cols, i + 1), img, "\n".join(cap.split(" at ")))
    for j, (img, t) in enumerate(zip(strip, strip_texts)):  # one interleaved document, left to right
        _image(fig.add_subplot(grid_rows + 1, cols, grid_rows * cols + j + 1), img, t, "navy")
    return png(fig)


WATCHED = {   # a watched stage: (x label, y label, title)
    "lm": ("LM training step", "4-shot concept binding in text", "in-context copying appears suddenly (dotted: each "
           "seed's onset)"),
    "flamingo": ("bridge training step", "4-shot binding with pictures, closed", "the bridge finds the LM's lookup "
                 "(dotted: where it reads 2/3)"),
}


def copying(result, stage="lm"):
    """A watched probe against its training step, one line per seed, the onset marked: the LM's 4-shot copying
    (incontext.py), or the bridge's 4-shot binding (stage "flamingo")."""
    xlabel, ylabel, title = WATCHED[stage]
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    alone = len(result["seeds"]) == 1    # one seed: its parts too (a line for each attribute the labels name)
    for seed, r in result["seeds"].items():
        steps, acc = zip(*r["curve"]) if r["curve"] else ((), ())
        line, = ax.plot(steps, acc, "-", lw=1.2, label=f"seed {seed}" + ("" if r["onset"] is not None else " (never)"))
        if r["onset"] is not None:
            ax.axvline(r["onset"], color=line.get_color(), ls=":", lw=0.8)
        for (part, p), style in zip(r.get("parts", {}).items() if alone else (), ("--", "-.")):
            ax.plot(*zip(*p["curve"]), style, lw=0.9, color=line.get_color(), alpha=0.7,
                    label=f"labels naming the {part}")
    ax.axhline(1 / 3, color="grey", ls="--", lw=0.8, label="chance")
    ax.set_xlabel(xlabel), ax.set_ylabel(ylabel), ax.set_ylim(0, 1.02)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    return png(fig)


def heads(found):
    """Per layer and head: the induction score, and the answer position's attention on matching vs other labels in
    each probed format (probes.label_attention, probes.induction_scores)."""
    panels = [("induction score", found["induction"])]
    for fmt, r in found.items():
        if isinstance(r, dict):
            panels += [(f"{fmt}:\non matching labels", r["match"]), (f"{fmt}:\non other labels", r["other"])]
    fig, axes = plt.subplots(1, len(panels), figsize=(2.6 * len(panels), 3.0), squeeze=False)
    for ax, (title, grid) in zip(axes[0], panels):
        grid = grid.tolist() if torch.is_tensor(grid) else grid     # matplotlib reads lists, not tensors
        ax.imshow(grid, vmin=0, vmax=1, cmap="viridis")
        for i, row in enumerate(grid):
            for j, v in enumerate(row):
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=6, color="white" if v < 0.6 else "black")
        ax.set_xticks(range(len(grid[0]))), ax.set_yticks(range(len(grid)))
        ax.set_xlabel("head"), ax.set_title(title, fontsize=8)
    axes[0][0].set_ylabel("layer")
    return png(fig)


SIZE_COLOURS = ("tab:green", "tab:blue", "tab:purple", "tab:red", "tab:brown")


def scale(result):
    """Concept binding (close-ended) against shots, one line per model size with its seeds' min-max band: plain
    binding, each held-out form, and the held-out forms' mean; the ideal observer grey (lab/scale.py)."""
    held = result["held_out"]
    panels = ["bind"] + held + ["held-out mean"]
    cols = 4
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.3 * cols, 2.8 * rows), squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.axis("off")
    for ax, task in zip(axes.flat, panels):
        for colour, (size, r) in zip(SIZE_COLOURS, result["sizes"].items()):
            ks = list(next(iter(r["seeds"].values()))["scores"]["bind/closed"])
            per_seed = [[sum(s["scores"][f"{t}/closed"][k] for t in held) / len(held) if task == "held-out mean"
                         else s["scores"][f"{task}/closed"][k] for k in ks] for s in r["seeds"].values()]
            x = range(len(ks))
            lo, hi = [min(v) for v in zip(*per_seed)], [max(v) for v in zip(*per_seed)]
            ax.plot(x, [sum(v) / len(v) for v in zip(*per_seed)], "o-", ms=3, color=colour,
                    label=f"{size} (LM {r['params']['lm'] / 1e6:.2f}M)")
            ax.fill_between(x, lo, hi, color=colour, alpha=0.15, lw=0)
        ax.plot(x, [result["ideal"][k] for k in ks], "-.", color="gray", lw=1, label="ideal observer")
        ax.axhline(1 / 3, color="gray", ls=":", lw=1, label="chance")
        ax.set_xticks(list(x), ks), ax.set_ylim(0.2, 1.02)
        ax.set_title(task + (" (held out)" if task in held else ""), fontsize=9)
        ax.set_xlabel("shots", fontsize=8)
    axes[0][0].set_ylabel("close-ended accuracy", fontsize=8)
    axes[0][0].legend(fontsize=6, loc="lower right")
    seeds = ", ".join(next(iter(result["sizes"].values()))["seeds"])
    fig.suptitle(f"concept binding by model size ({result['episodes']} episodes per point; mean and min-max band "
                 f"over seeds {seeds})", fontsize=9)
    fig.tight_layout()
    return png(fig)


FEWEST = 20   # episodes a part needs to be drawn: fewer give a point that moves by 0.1 or more with the episodes


def repeats(result):
    """Close-ended binding against shots, apart by how many supports carry the answer's label (lab/repeats.py):
    the model's accuracy solid, the ideal observer's dashed, every episode in black; a part drawn where it has at
    least FEWEST episodes."""
    shots = list(result["shots"])
    x = [int(s) for s in shots]
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    ax.plot(x, [result["shots"][s]["all"] for s in shots], "ko-", lw=1.6, label="every episode")
    ax.plot(x, [result["shots"][s]["ideal"] for s in shots], "k--", lw=0.9, label="ideal observer")
    for p, colour in zip(("1", "2", "3+"), ("tab:red", "tab:orange", "tab:green")):
        have = [(k, result["shots"][s]["parts"][p]) for k, s in zip(x, shots)
                if result["shots"][s]["parts"].get(p, {}).get("episodes", 0) >= FEWEST]
        if have:
            ax.plot([k for k, _ in have], [c["accuracy"] for _, c in have], "o-", color=colour,
                    label=f"answer's label shown {p}x")
            ax.plot([k for k, _ in have], [c["ideal"] for _, c in have], "--", color=colour, lw=0.8)
    ax.set_xscale("log", base=2), ax.set_xticks(x), ax.set_xticklabels(shots)
    ax.set_xlabel("shots"), ax.set_ylabel(f"{result['task']}, close-ended"), ax.set_ylim(0, 1.02)
    ax.set_title(f"{result['episodes']} episodes (seed {result['seed']}); dashed: the ideal observer", fontsize=9)
    ax.legend(fontsize=7)
    return png(fig)


def routes(result):
    """Per shot count: close-ended binding with only layers i and j open (the diagonal: i alone) as a grid; each
    layer closed everywhere, at the supports only and at the query only, against every layer open and none; and each
    LM head's attention from the answer's position on the matching labels, over that on the other labels
    (lab/routes.py)."""
    n, shots = len(result["layers"]), list(result["shots"])
    fig, axes = plt.subplots(len(shots), 3, figsize=(13, 3.3 * len(shots)), squeeze=False,
                             gridspec_kw={"width_ratios": (1, 1.5, 1)})
    for (grid_ax, bar_ax, head_ax), shot in zip(axes, shots):
        rows = {r["name"]: r for r in result["shots"][shot]}
        closing = {(tuple(r["closed"]), r["part"]): r["accuracy"] for r in rows.values()}
        grid = [[None] * n for _ in range(n)]
        for r in rows.values():
            kept = [j for j in range(n) if j not in r["closed"]]
            if r["part"] == "everywhere" and len(kept) in (1, 2):
                grid[kept[0]][kept[-1]] = grid[kept[-1]][kept[0]] = r["accuracy"]
        grid_ax.imshow([[float("nan") if v is None else v for v in row] for row in grid], vmin=0, vmax=1,
                       cmap="viridis")
        for i, row in enumerate(grid):
            for j, v in enumerate(row):
                if v is not None:
                    grid_ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7,
                                 color="white" if v < 0.6 else "black")
        grid_ax.set_xticks(range(n)), grid_ax.set_yticks(range(n))
        grid_ax.set_xlabel("gated layer"), grid_ax.set_ylabel("gated layer")
        grid_ax.set_title(f"{shot} shots: only layers i and j open (diagonal: i alone)", fontsize=8)
        for k, (part, colour) in enumerate(zip(("everywhere", "supports", "query"),
                                               ("tab:blue", "tab:orange", "tab:green"))):
            bar_ax.bar([j + 0.27 * (k - 1) for j in range(n)], [closing[(j,), part] for j in range(n)],
                       width=0.27, color=colour, label=f"closed {'at the ' * (k > 0)}{part}")
        bar_ax.axhline(rows["all open"]["accuracy"], color="black", lw=1, label="every layer open")
        bar_ax.axhline(rows["none open (the LM)"]["accuracy"], color="gray", ls="--", lw=1, label="none open")
        bar_ax.axhline(result["chance"], color="gray", ls=":", lw=1, label="chance")
        bar_ax.set_xticks(range(n)), bar_ax.set_xlabel("the gated layer closed")
        bar_ax.set_ylim(0, 1.02), bar_ax.set_ylabel(f"{result['task']}, close-ended", fontsize=8)
        bar_ax.set_title(f"{shot} shots, {result['episodes']} episodes (seed {result['seed']})", fontsize=8)
        bar_ax.legend(fontsize=6, loc="upper right", ncol=2)
        match, other = result["heads"][shot]["match"], result["heads"][shot]["other"]
        head_ax.imshow([[m - o for m, o in zip(ms, os_)] for ms, os_ in zip(match, other)], vmin=-1, vmax=1,
                       cmap="coolwarm")   # red: a head that prefers the matching labels, blue: the other labels
        for i, (ms, os_) in enumerate(zip(match, other)):
            for j, (m, o) in enumerate(zip(ms, os_)):
                head_ax.text(j, i, f"{m:.2f}\n{o:.2f}", ha="center", va="center", fontsize=7)
        head_ax.set_xticks(range(len(match[0]))), head_ax.set_yticks(range(len(match)))
        head_ax.set_xlabel("head"), head_ax.set_ylabel("LM layer")
        head_ax.set_title("LM heads, every gate open: attention on the matching\nlabels (above) and the other labels "
                          "(below); red: more on the matching", fontsize=8)
    fig.tight_layout()
    return png(fig)
