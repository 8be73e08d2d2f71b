# %% [markdown]
# # Lesson 2: tokens, `<image>`, `<EOC>` and phi
#
# Flamingo writes an `<image>` token where each image stood and ends each chunk of text with `<EOC>` (paper section
# 2.3). The function phi tells every text position which image it belongs to: the index of the last `<image>` at or
# before it, 0 if none. Exercise `phi` asks you to write it.

# %%
import os

import torch

from flamingo_min.plots import plt  # matplotlib, drawing to files: no screen needed
from lessons.exercises import use
from toy_data import TOKENIZER

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "out")
os.makedirs(OUT, exist_ok=True)

phi = use("phi")

# %% [markdown]
# ## The vocabulary
# Word level: every word the grammar can emit, five special tokens, and two pools of nonce words.

# %%
print(len(TOKENIZER), "tokens; specials:", TOKENIZER.words[:5])
text = "<bos> <image> a big red circle at top <EOC> <image> what colour ? blue <EOC> <image>"
ids = torch.tensor([TOKENIZER.encode(text)])
print(ids.tolist())
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
I, P = TOKENIZER.image_id, TOKENIZER.pad_id
rows = torch.tensor([[5, 6, 7, 8, 9], [I, 5, 6, 7, 8], [5, 6, 7, 8, I], [5, I, I, 6, 7], [I, 5, 6, P, P]])
for r, v in zip(rows.tolist(), phi(rows, I).tolist()):
    print(r, "->", v)
fig, ax = plt.subplots(figsize=(4, 2.5))
ax.imshow(phi(rows, I), cmap="viridis")
ax.set_title("phi for five rows (colour = image index)", fontsize=8), ax.set_xlabel("position")
fig.savefig(os.path.join(OUT, "02_phi.png"), dpi=100, bbox_inches="tight")

# %% [markdown]
# ## Summary
# phi is a running count of `<image>` tokens: one `cumsum`. Everything about which text sees which image follows from
# it (lesson 6).
#
# ## Questions
# 1. Why does the `<image>` token map to its own image rather than the previous one?
# 2. With right padding, padding tokens get phi of the last image. Why is that harmless?
# 3. What would phi look like for the paper's "next image" augmentation (p_next)?
print(f"figures in {OUT}")
