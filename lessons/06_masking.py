# %% [markdown]
# # Lesson 6: image-causal masking, drawn
#
# A text token cross-attends only to the visual tokens of image phi(t), the image immediately before it (paper section
# 2.3, Fig. 7). It still depends on earlier images through the LM's causal self-attention. The paper's ablation
# "attend to all previous images" scored lower (63.5 vs 70.7). Exercise `cross_attention_mask` asks you to build both.

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

cross_attention_mask = use("cross_attention_mask")
phi = use("phi")

# %% [markdown]
# ## Both masks for one document

# %%
text = "<bos> a <image> dax <EOC> <image> wug <EOC> <image> dax <EOC>"
words = text.split()
ids = torch.tensor([TOKENIZER.encode(text)])
R = 3  # visual tokens per image
fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
for ax, only in zip(axes, (True, False)):
    m = cross_attention_mask(ids, TOKENIZER.image_id, 3, R, only)[0]
    ax.imshow(m, cmap="Greens", aspect="auto")
    ax.set_yticks(range(len(words)), words, fontsize=7)
    ax.set_xticks([R * i + 1 for i in range(3)], ["image 1", "image 2", "image 3"], fontsize=7)
    for i in range(1, 3):
        ax.axvline(R * i - 0.5, color="gray", lw=0.5)
    ax.set_title("only the immediate image (paper)" if only else "all previous images (ablation)", fontsize=9)
fig.savefig(os.path.join(OUT, "06_masks.png"), dpi=100, bbox_inches="tight")
print("phi, word by word:", " ".join(f"{w}({v})" for w, v in zip(words, phi(ids, TOKENIZER.image_id)[0].tolist())))
m = cross_attention_mask(ids, TOKENIZER.image_id, 3, R, True)[0]
print("rows that see no image:", [w for w, row in zip(words, m) if not row.any()])

# %% [markdown]
# ## Why "only the immediate image" generalises to more shots
# With the immediate-image mask, each text chunk sees exactly one image however long the prompt is: a 16-shot prompt
# looks, to every cross-attention layer, like the 1-to-5-image documents of training. With the all-previous mask, a
# token after 16 images attends over 16 x R visual tokens, a distribution it never saw in training.

# %%
for n in (1, 5, 16):
    ids = torch.tensor([TOKENIZER.encode(" ".join(["<image> dax <EOC>"] * n))])
    for only in (True, False):
        seen = cross_attention_mask(ids, TOKENIZER.image_id, n, R, only)[0, -1].sum().item()
        print(f"{n:2d} images, {'immediate' if only else 'all prev.'}: the last token attends to {seen:3d} tokens")

# %% [markdown]
# ## Summary and questions

# %%
wrap_up(6, [
    "phi(t) picks one image per text token; its mask row selects that image's R tokens.",
    "Earlier images still reach later text, through the LM's own causal self-attention.",
], [
    "Which token can carry information about image 1 to the text after image 2?",
    "Build the mask for the paper's p_next augmentation (text attends to the *next* image).",
    "Why does the number of visual tokens a text token sees stay constant with the immediate mask?",
])
print(f"figures in {OUT}")
