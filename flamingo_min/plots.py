"""Every picture the command line saves: loss curves, gate openings (paper Fig. 6), the few-shot curve, sample
episodes and a look at the toy world. Matplotlib with the Agg backend: files only, no screen needed."""
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def _save(fig, path):
    tmp = path + ".tmp.png"
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
    plt.close(fig)
    os.replace(tmp, path)
    return path


def _image(ax, img, title=None, colour="black"):
    ax.imshow(img.permute(1, 2, 0).clamp(0, 1).cpu())
    ax.set_xticks([]), ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=7, color=colour)


def losses(metrics, path):
    stages = [s for s in ("lm", "vision", "flamingo") if any(m["stage"] == s for m in metrics)]
    fig, axes = plt.subplots(1, max(1, len(stages)), figsize=(4.2 * max(1, len(stages)), 3.2), squeeze=False)
    for ax, stage in zip(axes[0], stages):
        rows = [m for m in metrics if m["stage"] == stage]
        keys = ["loss_doc", "loss_pair"] if stage == "flamingo" else ["loss"]
        for key in keys:
            ax.plot([m["step"] for m in rows], [m[key] for m in rows], label=key)
        ax.set_title({"lm": "LM pretraining (next token)", "vision": "vision: contrastive",
                      "flamingo": "Flamingo: bridge"}[stage], fontsize=9)
        ax.set_xlabel("step"), ax.set_ylabel("loss"), ax.legend(fontsize=7)
    return _save(fig, path)


def gates(metrics, path):
    rows = [m for m in metrics if m["stage"] == "flamingo"]
    names = sorted({k for m in rows for k in m if k.startswith(("xattn", "dense"))}, key=lambda n: (n[-1], n))
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    for n in names:
        ax.plot([m["step"] for m in rows], [m[n] for m in rows], label=n, ls="-" if n.startswith("xattn") else "--")
    ax.set_xlabel("step"), ax.set_ylabel("|tanh(alpha)|")
    ax.set_title("gate openings during bridge training (cf. paper Fig. 6)", fontsize=9)
    ax.legend(fontsize=6, ncol=2)
    return _save(fig, path)


def fewshot(result, path):
    tasks = list(dict.fromkeys(name.split("/")[0] for name in result["tasks"]))
    fig, axes = plt.subplots(1, len(tasks), figsize=(3.3 * len(tasks), 3.2), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        for mode, style in (("open", "o-"), ("closed", "s-")):
            r = result["tasks"].get(f"{task}/{mode}")
            if r is None:
                continue
            ks = list(r["shots"])
            ax.plot(range(len(ks)), [r["shots"][k] for k in ks], style, label=mode)
        ax.axhline(r["chance"], color="gray", ls=":", label="chance")
        for (name, v), c in zip(r["baselines"].items(), ("tab:red", "tab:purple")):
            ax.axhline(v, color=c, ls="--", lw=0.8, label=f"{name} (4-shot)")
        ax.set_xticks(range(len(ks)), ks), ax.set_ylim(-0.02, 1.02)
        ax.set_title(task), ax.set_xlabel("shots")
    axes[0][0].set_ylabel("accuracy"), axes[0][0].legend(fontsize=6)
    fig.suptitle("few-shot accuracy on held-out colour x shape combinations", fontsize=10)
    return _save(fig, path)


def episodes(rows, path):
    """rows: list of (support images, support texts, query image, answer, truth)."""
    width = max(len(r[0]) for r in rows) + 1
    fig, axes = plt.subplots(len(rows), width, figsize=(1.25 * width, 1.45 * len(rows)), squeeze=False)
    for ax_row, (imgs, texts, query, answer, truth) in zip(axes, rows):
        for ax in ax_row:
            ax.axis("off")
        for ax, img, t in zip(ax_row, imgs, texts):
            ax.axis("on"), _image(ax, img, t)
        ok = answer == truth
        ax_row[len(imgs)].axis("on")
        _image(ax_row[len(imgs)], query, f"-> {answer}" + ("" if ok else f"\n(truth: {truth})"),
               "green" if ok else "red")
    return _save(fig, path)


def world(images, captions, strip, strip_texts, path):
    cols, n = 8, len(images)
    grid_rows = -(-n // cols)
    fig = plt.figure(figsize=(1.45 * cols, 1.6 * (grid_rows + 1)))
    for i, (img, cap) in enumerate(zip(images, captions)):
        _image(fig.add_subplot(grid_rows + 1, cols, i + 1), img, "\n".join(cap.split(" at ")))
    for j, (img, t) in enumerate(zip(strip, strip_texts)):  # one interleaved document, left to right
        _image(fig.add_subplot(grid_rows + 1, cols, grid_rows * cols + j + 1), img, t, "navy")
    return _save(fig, path)
