# %% [markdown]
# # Lesson 1: the toy world
#
# Flamingo learned from web pages where images and text interleave. We need a world small enough to train on a laptop
# and rich enough that some questions can only be answered by *reading the prompt*. Ours: coloured shapes on a 3x3
# grid, drawn in pure torch with signed-distance functions (`toy_data/shapes.py`).
#
# You will see: how a shape is drawn from a distance field, the attributes of a scene, captions, an interleaved
# document, and the held-out colour x shape combinations that no training stream ever shows.

# %%
import own_checkout  # noqa: F401  (first, before torch: this checkout's code, idle threads that sleep soon)

import os
import random

import torch

from flamingo_min.lab.plots import plt  # matplotlib, drawing to files: no screen needed
from lessons import wrap_up
from toy_data import COLOURS, HELD_OUT, SHAPES, TOKENIZER, DataConfig, DocumentStream, render
from toy_data.documents import caption, draw_scene
from toy_data.shapes import SDF, Obj, Scene

OUT = os.environ.get("LESSONS_OUT") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "out")
os.makedirs(OUT, exist_ok=True)

# %% [markdown]
# ## A shape is a distance field
# Each shape is a function d(x, y): negative inside, positive outside, zero on the edge. Coverage is a one-pixel ramp,
# `clamp(0.5 - d / pixel, 0, 1)`: that is the anti-aliasing.

# %%
axis = torch.linspace(-1.5, 1.5, 121)
y, x = torch.meshgrid(axis, axis, indexing="ij")
fig, axes = plt.subplots(1, len(SHAPES), figsize=(2.2 * len(SHAPES), 2.4))
for ax, name, sdf in zip(axes, SHAPES, SDF):
    d = sdf(x, y)
    im = ax.imshow(d, cmap="RdBu", vmin=-1, vmax=1)
    ax.contour(d, levels=[0], colors="k")
    ax.set_title(f"{name}: d(x, y)", fontsize=8), ax.axis("off")
fig.colorbar(im, ax=axes, fraction=0.015, label="d(x, y)")
fig.suptitle("negative (red) inside, zero on the edge (black line), positive (blue) outside", fontsize=9)
fig.savefig(os.path.join(OUT, "01_distance_fields.png"), dpi=100, bbox_inches="tight")
print("distance at the centre of each shape:", {n: round(f(torch.zeros(1), torch.zeros(1)).item(), 2)
                                                for n, f in zip(SHAPES, SDF)})

# %% [markdown]
# ## Scenes, captions and pixels
# A scene holds 1 to 4 objects. Rendering is batched and seeded: the same generator seed gives the same pixels.

# %%
rng = random.Random(0)
scenes = [draw_scene(rng, count=1 if i < 6 else rng.randint(2, 4)) for i in range(8)]
images = render(scenes, 32, torch.Generator().manual_seed(0))
assert images.shape == (8, 3, 32, 32)
again = render(scenes, 32, torch.Generator().manual_seed(0))
print("same seed, same pixels:", torch.equal(images, again))
fig, axes = plt.subplots(1, 8, figsize=(14, 2.2))
for ax, img, s in zip(axes, images, scenes):
    ax.imshow(img.permute(1, 2, 0)), ax.axis("off"), ax.set_title(caption(s).replace(" at ", "\n"), fontsize=7)
fig.savefig(os.path.join(OUT, "01_scenes.png"), dpi=100, bbox_inches="tight")
for s in scenes[:3]:
    print(caption(s), "->", TOKENIZER.encode(caption(s)))

# %% [markdown]
# ## An interleaved document
# Each document has a hidden task shared by its chunks. In a *binding* document, nonce words name the values of one
# attribute, and the mapping changes from document to document: the context is the only way to be right.

# %%
docs = DocumentStream(DataConfig(), seed=0)
for i in range(40):
    doc = docs[i]
    if doc.task == "bind" and len(doc.images) >= 4:
        break
print("task:", doc.task)
print("tokens:", TOKENIZER.decode(doc.tokens))
print("scored:", " ".join(w for w, m in zip(TOKENIZER.decode(doc.tokens).split(), doc.loss_mask.tolist()) if m))
print("(only labels whose value appeared earlier are scored: a first occurrence cannot be predicted)")

# %% [markdown]
# ## What is held out
# Twelve colour x shape combinations never appear in training. Every evaluation episode uses only them.

# %%
grid = [["held out" if (c, s) in HELD_OUT else "train" for s in range(len(SHAPES))] for c in range(len(COLOURS))]
print(f"{'':>8}" + "".join(f"{s:>10}" for s in SHAPES))
for c, row in zip(COLOURS, grid):
    print(f"{c:>8}" + "".join(f"{v:>10}" for v in row))
red_circle = render([Scene((Obj(0, 0, 2, 4),))], 32)[0]
print("a big red circle is", "held out" if (0, 0) in HELD_OUT else "in training")

# %% [markdown]
# ## Summary and questions

# %%
wrap_up(1, [
    "Shapes are distance fields; pixels are a seeded, batched function of scene specs.",
    "Documents interleave `<image>` with text chunks ending in `<EOC>`; one hidden task per document.",
    f"Held-out combinations ({len(HELD_OUT)} colour x shape pairs) and evaluation-only nonce words make few-shot "
    "accuracy honest.",
], [
    "Why must a binding document's last image repeat a value seen earlier?",
    "Inside the training combinations, red is never a circle. What shortcut could a model learn from that, and why "
    "does it hurt exactly on the held-out combinations? (Lesson 3 shows the fix we use.)",
    "Which attributes of a scene could a model answer without looking at the image at all?",
])
print(f"figures in {OUT}")
