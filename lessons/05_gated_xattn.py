# %% [markdown]
# # Lesson 5: gated cross-attention, and why tanh(0) matters
#
# GATED XATTN-DENSE (paper section 2.2, Fig. 4) sits before a frozen LM block:
#
#     y = y + tanh(alpha_xattn) * s * CrossAttention(LN(y), LN(visual))
#     y = y + tanh(alpha_dense) * s * FFW(LN(y))
#
# Both alphas start at 0: at initialisation Flamingo *is* the language model. `s` is ours (the paper is silent): a
# fixed number, the typical size of the LM's residual stream where the layer writes, so that a fresh layer's output
# is not drowned by the stream it joins (lesson 7 shows the numbers). Exercise `gated_xattn_forward` asks you to write
# the layer, including the case the paper leaves open: a text token with no image before it.

# %%
import own_checkout  # noqa: F401  (first, before torch: this checkout's code, idle threads that sleep soon)

import os

import torch

from flamingo_min import Flamingo, cross_attention_mask
from flamingo_min.config import ModelConfig
from flamingo_min.lab.plots import plt  # matplotlib, drawing to files: no screen needed
from flamingo_min.xattn import GatedCrossAttention
from lessons import claim, wrap_up
from lessons.exercises import use
from toy_data import TOKENIZER

OUT = os.environ.get("LESSONS_OUT") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "out")
os.makedirs(OUT, exist_ok=True)

gated_xattn_forward = use("gated_xattn_forward")
torch.manual_seed(0)
I = TOKENIZER.image_id

# %% [markdown]
# ## At init the model is the LM
# The LM never saw `<image>` or `<EOC>`, so their embeddings are ours to choose: `<image>` is a zero vector (the
# image, written in by the gated layers, is all it carries) and `<EOC>` starts as the LM's `.`. With every gate at 0,
# Flamingo is exactly the LM reading those two rows.

# %%
model = Flamingo(ModelConfig(d_model=32, n_layers=2, n_heads=2, vision_width=16, latents=4)).eval()
ids = torch.tensor([TOKENIZER.encode("<bos> a red <image> what colour ? red <EOC> <image> what")])
images = torch.rand(1, 2, 3, 32, 32)
with torch.no_grad():
    diff = (model(ids, images=images) - model.lm(ids, embed_weight=model.embed_weight())).abs().max().item()
print(f"max |Flamingo - LM| at init: {diff}")

# %% [markdown]
# ## Text before the first image
# Three ways to handle a query row whose mask is all False. Fill masked scores with -inf: softmax over nothing is
# NaN. Fill with a large negative number: softmax becomes *uniform over every image*, so text before the first image
# sees all of them (a bug several public implementations shipped). Ours: exact zero.

# %%
scores = torch.randn(1, 4)                         # one text token, four visual tokens
nothing = torch.zeros(1, 4, dtype=torch.bool)      # phi = 0: may see none of them
print("fill -inf     :", torch.softmax(scores.masked_fill(~nothing, float("-inf")), -1))
print("fill -1e9     :", torch.softmax(scores.masked_fill(~nothing, -1e9), -1), " <- uniform: leaks every image")
layer = GatedCrossAttention(16, 2)
with torch.no_grad():
    layer.alpha_xattn.fill_(1.0)
words = "a red <image> what <image> colour".split()
ids = torch.tensor([TOKENIZER.encode(" ".join(words))])
mask = cross_attention_mask(ids, I, 2, 3)          # 2 images, 3 visual tokens each
x, media = torch.randn(1, 6, 16), torch.randn(1, 6, 16)
branch = layer.attend(x, media, mask)
norms = branch.norm(dim=-1)[0]
print("ours, |attention branch| per position:", "  ".join(f"{w} {v:.3f}" for w, v in zip(words, norms.tolist())))
claim(norms[:2].eq(0).all(), "text before the first image gets exactly zero from the attention branch",
      f"{norms[:2].tolist()} at `a red`")
print("your layer == the real layer:", torch.allclose(gated_xattn_forward(layer, x, media, mask),
                                                      layer(x, media, mask), atol=1e-5))

# %% [markdown]
# ## The gate
# tanh keeps the contribution bounded in (-1, 1) and starts it at exactly 0 with a non-zero gradient.

# %%
a = torch.linspace(-3, 3, 200)
fig, ax = plt.subplots(figsize=(4, 2.6))
ax.plot(a, torch.tanh(a)), ax.axhline(0, color="gray", lw=0.5), ax.axvline(0, color="gray", lw=0.5)
ax.set_xlabel("alpha"), ax.set_ylabel("tanh(alpha)"), ax.set_title("the gate", fontsize=9)
fig.savefig(os.path.join(OUT, "05_tanh_gate.png"), dpi=100, bbox_inches="tight")
alpha = torch.zeros((), requires_grad=True)
(torch.tanh(alpha) * 3.0).backward()
print("d tanh(alpha) / d alpha at 0 =", alpha.grad.item() / 3.0)

# %% [markdown]
# ## Summary and questions

# %%
wrap_up(5, [
    f"Zero-initialised tanh gates make the new layers the identity at the start (max |Flamingo - LM| = {diff} "
    "above): training begins from the LM's behaviour and cannot wreck it in the first steps (the paper's ablation: "
    "no gating is worse and unstable).",
    "The weights behind a closed gate get no gradient; only the gate's own gradient opens it. At toy scale we give "
    "the gates a larger learning rate so they open within hundreds of steps (flamingo_min/train.py).",
], [
    "Why is the feed-forward gated separately from the attention?",
    "If alpha_xattn is 0, what gradient do the cross-attention weights receive?",
    "The paper observes that deeper gates open more (Fig. 6). Does it hold in lesson 7's runs?",
])
print(f"figures in {OUT}")
