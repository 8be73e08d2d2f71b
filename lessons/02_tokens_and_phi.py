# %% [markdown]
# # Lesson 2: tokens, `<image>`, `<EOC>` and phi
#
# Flamingo writes an `<image>` token where each image stood and ends each chunk of text with `<EOC>` (paper section
# 2.3). The function phi tells every text position which image it belongs to: the index of the last `<image>` at or
# before it, 0 if none. Exercise `phi` asks you to write it.

# %%
import own_checkout  # noqa: F401  (first, before torch: this checkout's code, idle threads that sleep soon)

import os

import torch

from flamingo_min.lab.plots import plt  # matplotlib, drawing to files: no screen needed
from lessons import wrap_up
from lessons.exercises import use
from toy_data import TOKENIZER

OUT = os.environ.get("LESSONS_OUT") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "out")
os.makedirs(OUT, exist_ok=True)

phi = use("phi")

# %% [markdown]
# ## The vocabulary
# Word level: every word the grammar can emit, five special tokens, and two pools of nonce words.

# %%
print(len(TOKENIZER), "tokens; specials:", TOKENIZER.words[:5])
text = "<bos> <image> a big red circle at top <EOC> <image> what colour ? blue <EOC> <image>"
ids = torch.tensor([TOKENIZER.encode(text)])
print("word -> id:", " ".join(f"{w}:{i}" for w, i in zip(text.split(), ids[0].tolist())))
try:
    TOKENIZER.encode("a zebra")
except ValueError as e:
    print("unknown words are refused:", e)

# %% [markdown]
# ## phi, position by position

# %%
p = phi(ids, TOKENIZER.image_id)
for w, v in zip(text.split(), p[0].tolist()):
    print(f"{w:>10}  phi = {v}")
assert p[0, 0] == 0 and p[0, 1] == 1 and p[0, -1] == 3

# %% [markdown]
# ## Corner cases
# No image at all, an image first, an image last, two images in a row, and padding.

# %%
I = TOKENIZER.image_id
cases = {"no image": "a red circle at top", "image first": "<image> a red circle at",
         "image last": "a red circle at <image>", "two in a row": "a <image> <image> red circle",
         "padding": "<image> a red <pad> <pad>"}
rows = torch.tensor([TOKENIZER.encode(t) for t in cases.values()])
p = phi(rows, I)
for (name, t), v in zip(cases.items(), p.tolist()):
    print(f"{name:>13}: " + " ".join(f"{w}({x})" for w, x in zip(t.split(), v)))
fig, ax = plt.subplots(figsize=(7, 2.8))
im = ax.imshow(p, cmap="viridis", vmin=0, vmax=int(p.max()))
for r, t in enumerate(cases.values()):
    for c, w in enumerate(t.split()):   # each cell: its word and phi, dark on the brightest colour
        ax.text(c, r, f"{w}\n{p[r, c].item()}", ha="center", va="center", fontsize=6,
                color="k" if p[r, c] == p.max() else "w")
ax.set_yticks(range(len(cases)), list(cases), fontsize=7), ax.set_xlabel("position")
fig.colorbar(im, ax=ax, label="phi: the image a token belongs to (0: none)", ticks=range(int(p.max()) + 1))
ax.set_title("phi for five rows", fontsize=8)
fig.savefig(os.path.join(OUT, "02_phi.png"), dpi=100, bbox_inches="tight")

# %% [markdown]
# ## Summary and questions

# %%
wrap_up(2, [
    "phi is a running count of `<image>` tokens: one `cumsum`. Everything about which text sees which image follows "
    "from it (lesson 6).",
], [
    "Why does the `<image>` token map to its own image rather than the previous one?",
    "With right padding, padding tokens get phi of the last image. Why is that harmless?",
    "What would phi look like for the paper's \"next image\" augmentation (p_next)?",
])
print(f"figures in {OUT}")
