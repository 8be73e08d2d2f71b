# %% [markdown]
# # Lesson 10: video, and why frames need a time
#
# Flamingo reads a video as frames (1 per second in the paper), each encoded by the same frozen vision encoder as a
# still image. A learned temporal embedding is added to every feature of frame f, and the resampler's latents read all
# F x S features of the clip at once: R visual tokens out, the same as for an image (paper section 2.1, Fig. 5). An
# image is simply a 1-frame video.
#
# Our clips (toy_data/clips.py) are 4 frames of one shape that moves, grows or shrinks, turns another colour, appears
# or disappears. Every clip played backwards shows the opposite event, from the very same frames: a model that does
# not know the frames' order cannot tell `moves left` from `moves right`. This lesson measures that on a trained model.
#
# It uses `runs/video` if you have trained it (`python main.py train --preset video`, timed in docs/video.md),
# else the same recipe's run kept in the repository (`lessons/trained.py`, seed 0), unpacked into `runs/lesson/video`
# on first use in about a second.

# %%
import own_checkout  # noqa: F401  (first, before torch: this checkout's code, idle threads that sleep soon)

import os
import random

import torch
from einops import rearrange

from flamingo_min.evaluate import episode_images, episodes_for
from flamingo_min.lab.plots import _image, plt  # matplotlib, drawing to files: no screen needed
from toy_data import TOKENIZER
from lessons import claim, trained, wrap_up
from lessons.exercises import use
from toy_data.clips import DIRECTIONS, draw_clip, render_media, reverse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.environ.get("LESSONS_OUT") or os.path.join(ROOT, "lessons", "out")
os.makedirs(OUT, exist_ok=True)

# %% [markdown]
# ## A clip and the same clip backwards
# The two hold exactly the same four pictures; only their order differs, and with it the caption.

# %%
clip = draw_clip(random.Random(7), 4, event="moves left")
back = reverse(clip)
frames = render_media([clip, back], 32, jitter=0.0, colour_jitter=0.0, noise=0.0)          # (2, F, 3, H, W)
print(f"{clip.caption!r} played backwards is {back.caption!r}")
print("same pictures, other order:", torch.equal(frames[0].flip(0), frames[1]))
fig, axes = plt.subplots(2, 1, figsize=(5, 3))
for ax, c, x in zip(axes, (clip, back), frames):
    _image(ax, x, c.caption)
fig.savefig(os.path.join(OUT, "10_clip.png"), dpi=120)

# %% [markdown]
# ## A trained model
# The video preset is the default recipe plus clips: the LM also reads clip captions (`a red circle moves left .`), and
# the bridge trains on a third stream, clips with captions and documents of clips (toy_data/documents.py: VideoStream).

# %%
RUN, model, cfg = trained.pick(os.path.join(ROOT, "runs", "video"), "video")
print("using the run in", os.path.relpath(RUN, ROOT))
if cfg.model.max_frames < cfg.data.clip_frames:
    raise SystemExit(f"{RUN} was not trained on clips (model.max_frames={cfg.model.max_frames}): train it with "
                     "--preset video, or move it away to use the shipped one")

# %% [markdown]
# ## How a clip enters the model
# The encoder sees frames as pictures; the resampler's input adds `time[f]` to every feature of frame f, flattens the
# clip to F x S keys, and its latents return R tokens, as many as for a still image.

# %%
clips = render_media([clip, back], generator=torch.Generator().manual_seed(1))[:, None]  # (B=2, N=1, F, 3, H, W)
with torch.no_grad():
    feats = model.encode(clips)                                                        # (B, N, F, S, Dv)
    tokens = model.perceive(feats)                                                     # (B, N, R, D)
print("pixels", tuple(clips.shape), "-> features", tuple(feats.shape), "-> visual tokens", tuple(tokens.shape))
frame_input = use("frame_input")     # exercise `frame_input`: the resampler's keys, each frame tagged with its time
with torch.no_grad():
    keys = frame_input(model.resampler.input, feats)                                  # (B*N, F*S, D)
print("the resampler's input per clip:", tuple(keys.shape), "(B*N, F*S, D); equal to the model's own:",
      torch.allclose(keys, model.resampler.input(feats), atol=1e-5))
time_emb = model.resampler.input.time.detach()                                          # (max_frames, D)
cos = torch.nn.functional.cosine_similarity(time_emb[:, None], time_emb[None], dim=-1)
print("cosine between the learnt temporal embeddings, frame by frame:")
print("           " + " ".join(f"frame {f}" for f in range(len(cos))))
print("\n".join(f"  frame {f}  " + " ".join(f"{v:7.2f}" for v in r) for f, r in enumerate(cos.tolist())))

# %% [markdown]
# ## What the answer hears when the frames are shuffled
# `direction` episodes ask where a shape of a held-out colour x shape combination goes: `<image> moves` -> `left`.
# We score the four answers by likelihood (closed-ended) for the clips as they are, played backwards (then the right
# answer is the opposite direction), with the frames in a random order, and with the temporal embeddings set to zero.
# Beside the accuracy, the *axis*: how often the answer is at least on the right line (left/right or up/down).

# %%
n = 100   # the same in fast mode: the claims below are checked on these numbers
eps = episodes_for("direction", n, cfg.data, seed=0, pool_size=4)
OPP = {"left": "right", "right": "left", "up": "down", "down": "up"}
choices = [TOKENIZER.ids[w] for w in DIRECTIONS]


AXIS = {"left": "horizontal", "right": "horizontal", "up": "vertical", "down": "vertical"}


@torch.no_grad()
def accuracy(arrange, truth, zero_time=False):
    """Closed-ended direction accuracy over the episodes, 2-shot, each clip's frames rearranged by `arrange`, and
    how often the answer's axis was right."""
    saved = model.resampler.input.time.clone()
    if zero_time:
        model.resampler.input.time.zero_()
    right = axis = 0
    for e, ep in enumerate(eps):
        pixels = episode_images(ep, cfg.data)                                            # (P+1, F, 3, H, W)
        idx = [0, 1, len(ep.pool)]                                                      # two supports and the query
        media = torch.stack([arrange(pixels[i], e) for i in idx])[None]                 # (1, 3, F, 3, H, W)
        text = " ".join(["<bos>"] + [ep.pool[i].chunk() for i in idx[:2]] + ["<image> moves"])
        logits = model(torch.tensor([TOKENIZER.encode(text)]), images=media)[0, -1]
        answer = list(DIRECTIONS)[int(logits[choices].argmax())]
        right += answer == truth(ep)
        axis += AXIS[answer] == AXIS[truth(ep)]
    model.resampler.input.time.copy_(saved)
    return right / len(eps), axis / len(eps)


def shuffled(x, e):
    order = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(e))
    return x[order]


rows = {"in order": accuracy(lambda x, e: x, lambda ep: ep.query.answer),
        "played backwards (truth: the opposite)": accuracy(lambda x, e: x.flip(0), lambda ep: OPP[ep.query.answer]),
        "frames shuffled (truth as in order)": accuracy(shuffled, lambda ep: ep.query.answer),
        "temporal embeddings zeroed": accuracy(lambda x, e: x, lambda ep: ep.query.answer, zero_time=True)}
print(f"  {'':<42} direction  axis")
for name, (acc, axis) in rows.items():
    print(f"  {name:<42} {acc:9.2f} {axis:5.2f}")
print(f"(chance: direction 0.25, axis 0.50; {n} held-out episodes, 2 shots; supports are rearranged like the query)")
in_order, backwards, mixed, blind = (acc for acc, _ in rows.values())
claim(in_order >= 0.75, "the trained run reads a clip's direction", f"in order {in_order:.2f}, chance 0.25")
claim(backwards >= 0.75, "it reads the same frames played backwards as the opposite direction",
      f"backwards {backwards:.2f}")
claim(mixed <= in_order - 0.2 and blind <= in_order - 0.2, "order matters: shuffled frames, or frames without "
      "their time, lose the direction", f"in order {in_order:.2f}, shuffled {mixed:.2f}, time zeroed {blind:.2f}")

# %% [markdown]
# ## Where the latents look, frame by frame
# The first resampler layer's attention, recomputed from its weights: for each latent, the share of its attention on
# each frame's features (and on the latents themselves). The fused kernel does not return its weights, so the plain
# math of lesson 4 is written out again here.

# %%
@torch.no_grad()
def latent_attention(features):
    """features (1, 1, F, S, Dv) -> (R, F + 1): each latent's attention mass per frame, then on the latents."""
    r = model.resampler
    x = r.input(features)                                                               # (1, F*S, D)
    layer, lat = r.layers[0], r.latents[None]                                           # (1, R, D)
    q = rearrange(layer.q(layer.ln_latents(lat)), "b r (h d) -> b h r d", h=layer.n_heads)
    kv_in = torch.cat([layer.ln_media(x), layer.ln_latents(lat)], dim=1)               # (1, F*S + R, D)
    k, _ = rearrange(layer.kv(kv_in), "b s (two h d) -> two b h s d", two=2, h=layer.n_heads)
    w = torch.softmax(q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5, -1).mean(1)[0]     # (R, F*S + R), heads averaged
    F_, S = features.shape[2], features.shape[3]
    per_frame = rearrange(w[:, : F_ * S], "r (f s) -> r f s", f=F_).sum(-1)             # (R, F)
    return torch.cat([per_frame, w[:, F_ * S:].sum(-1, keepdim=True)], dim=1)


if hasattr(model.resampler, "latents"):
    mass = latent_attention(feats[:1])
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 2.6), gridspec_kw={"width_ratios": [2, 1]})
    _image(a, clips[0, 0], clip.caption)
    im = b.imshow(mass.tolist(), cmap="viridis", vmin=0, aspect="auto")
    b.set_xticks(range(mass.shape[1]), [f"frame {f}" for f in range(mass.shape[1] - 1)] + ["latents"], fontsize=7)
    b.set_ylabel("latent"), b.set_title("attention mass, first resampler layer", fontsize=8)
    fig.colorbar(im, ax=b)
    fig.tight_layout()
    fig.savefig(os.path.join(OUT, "10_attention.png"), dpi=120)
    print("attention mass of each latent (rows) on each frame's features and on the latents themselves:")
    print("            " + " ".join(f"frame {f}" for f in range(mass.shape[1] - 1)) + " latents")
    print("\n".join(f"  latent {r:<2} " + " ".join(f"{v:7.2f}" for v in row) for r, row in enumerate(mass.tolist())))

# %% [markdown]
# ## Summary and questions

# %%
blind_axis = rows["temporal embeddings zeroed"][1]
wrap_up(10, [
    "A clip is F frames through the same frozen encoder; `time[f]` is added to frame f's features; the resampler's "
    "latents read all F x S of them and return R tokens. One `<image>`, one media item: the mask does not change.",
    "Without temporal embeddings the resampler sees a *set* of features: any order of the frames gives the same "
    "tokens (tests/test_video.py proves it for every bridge), so `moves left` and `moves right` look identical. "
    f"With them, this run read {in_order:.2f} of the clips right in order and {backwards:.2f} of them played "
    f"backwards as the opposite direction; shuffled frames fell to {mixed:.2f} and zeroed temporal embeddings to "
    f"{blind:.2f} (chance 0.25).",
    "A mean over the features (the `mean-pool` bridge of lesson 9) is blind to order even with temporal embeddings: "
    "the mean of (feature + time) over frames is the same in any order.",
], [
    f"With the temporal embeddings zeroed, the direction was right {blind:.2f} of the time and its axis "
    f"{blind_axis:.2f} (chances 0.25 and 0.50). What can a set of frames still tell, and what can it not?",
    "Train `python main.py train --preset video --set data.clip_frames=6 --set model.max_frames=6 --out runs/video` "
    "(this lesson reads runs/video): does direction get easier or harder to read?",
    "The paper samples video at 1 FPS and interpolates its temporal embeddings for longer clips at inference. What "
    "would interpolating `time` from 4 to 8 frames assume about the events in a clip?",
])
print(f"figures in {OUT}: 10_clip.png" + (", 10_attention.png" if hasattr(model.resampler, "latents") else ""))
