# %% [markdown]
# # Lesson 4: the Perceiver Resampler
#
# However many spatial features an image has (S grows with resolution) and however many frames a video has, the
# resampler returns R visual tokens (paper section 2.1, Fig. 5). R learned latents are the queries; the keys and values
# are the features *and the latents*. No spatial position embedding, so the order of the features does not matter.
# Exercise `resampler_attention` asks you to write one layer.
#
# This lesson also shows, once, the plain attention math that `F.scaled_dot_product_attention` computes for us.

# %%
import own_checkout  # noqa: F401  (first, before torch: this checkout's code, idle threads that sleep soon)

import os

import torch
import torch.nn.functional as F
from einops import rearrange

from flamingo_min.lab.plots import plt  # matplotlib, drawing to files: no screen needed
from flamingo_min.resampler import PerceiverResampler
from lessons import wrap_up
from lessons.exercises import solutions, use

OUT = os.environ.get("LESSONS_OUT") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "out")
os.makedirs(OUT, exist_ok=True)

resampler_attention = use("resampler_attention")
torch.manual_seed(0)

# %% [markdown]
# ## Attention, written out
# softmax(Q K^T / sqrt(d)) V, row by row. The fused kernel gives the same numbers, faster and with less memory.

# %%
q, k, v = torch.randn(2, 4, 8), torch.randn(2, 10, 8), torch.randn(2, 10, 8)
weights = torch.softmax(q @ k.transpose(-1, -2) / 8 ** 0.5, dim=-1)      # (B, R, S): each row sums to 1
plain = weights @ v
print("plain math == F.scaled_dot_product_attention:", torch.allclose(plain, F.scaled_dot_product_attention(q, k, v),
                                                                       atol=1e-6))

# %% [markdown]
# ## Any number of features in, R tokens out

# %%
r = PerceiverResampler(d_in=16, d_model=32, n_latents=8, n_layers=2, n_heads=4, max_frames=4)
for S, frames in ((16, 1), (64, 1), (256, 1), (64, 3)):
    x = torch.randn(2, 5, frames, S, 16)                                # (B, N, F, S, Dv)
    print(f"S = {S:3d}, frames = {frames}: in {tuple(x.shape)} -> out {tuple(r(x).shape)}")
x = torch.randn(1, 1, 1, 64, 16)
perm = torch.randperm(64)
print("shuffling the spatial features changes nothing:", torch.allclose(r(x), r(x[:, :, :, perm]), atol=1e-5))
try:
    r(torch.randn(1, 1, 5, 4, 16))
except ValueError as e:
    print("too many frames:", e)

# %% [markdown]
# ## One layer, and where its latents look

# %%
layer = r.layers[0]
feats = r.input(x)   # projected, time-tagged, one row per image: (BN, FS, D)
latents = r.latents[None]
if resampler_attention is solutions.resampler_attention:   # use() fell back on the reference: nothing of yours runs
    print("(exercise resampler_attention: not done yet, so the reference layer runs here; once your layer passes "
          "its check, this line compares it with the real one)")
else:
    print("your layer == the real layer:", torch.allclose(resampler_attention(layer, feats, latents),
                                                          layer(feats, latents), atol=1e-5))
lat = layer.ln_latents(latents)
kv = torch.cat([layer.ln_media(feats), lat], 1)
qh = rearrange(layer.q(lat), "b r (h d) -> b h r d", h=layer.n_heads)
kh = rearrange(layer.kv(kv)[..., :32], "b s (h d) -> b h s d", h=layer.n_heads)
attn = torch.softmax(qh @ kh.transpose(-1, -2) / qh.shape[-1] ** 0.5, -1)[0, 0]   # head 0: (R, S + R)
fig, ax = plt.subplots(figsize=(7, 2.2))
im = ax.imshow(attn.detach(), aspect="auto", cmap="viridis")
fig.colorbar(im, ax=ax, label="attention weight")
ax.axvline(63.5, color="w"), ax.set_xlabel("64 features | 8 latents"), ax.set_ylabel("latent")
ax.set_title("head 0 attention at init: queries = latents, keys = [features; latents]", fontsize=8)
fig.savefig(os.path.join(OUT, "04_resampler_attention.png"), dpi=100, bbox_inches="tight")

# %% [markdown]
# ## Summary and questions

# %%
wrap_up(4, [
    "The resampler turns a variable-size feature set into a fixed number of tokens; cross-attention cost downstream "
    "no longer depends on resolution.",
    "Without spatial embeddings it is a set function; position must already be in the features (our CNN adds "
    "coordinate channels).",
], [
    "Why might attending to the latents as well as the features help?",
    "What would break if two frames of a video had no temporal embedding?",
    "How does the cost of a resampler layer grow with S, and with R?",
])
print(f"figures in {OUT}")
