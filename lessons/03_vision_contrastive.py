# %% [markdown]
# # Lesson 3: the vision encoder and contrastive pretraining
#
# Flamingo's vision encoder is pretrained on its own, CLIP-style: pull each image's embedding towards its caption's and
# away from the other captions in the batch, in both directions, with a learnable temperature (paper App. B.1.3). Then
# it is frozen. Exercise `contrastive_loss` asks you to write the loss.
#
# Our encoder is a 4-layer CNN; the text side is a bag of word embeddings. We train one for a few seconds here and probe
# what it learnt, including on colour x shape combinations it never saw.

# %%
import own_checkout  # noqa: F401  (first, before torch: this checkout's code, idle threads that sleep soon)

import os
import random

import torch
import torch.nn.functional as F

from flamingo_min.encoder import ContrastiveModel
from flamingo_min.lab.plots import plt  # matplotlib, drawing to files: no screen needed
from flamingo_min.train import caption_ids
from lessons import claim, wrap_up
from lessons.exercises import use
from toy_data import COLOURS, SHAPES, TOKENIZER, DataConfig, PairStream, render
from toy_data.documents import caption, collate, draw_scene
from toy_data.shapes import EVAL_COMBOS, describe

OUT = os.environ.get("LESSONS_OUT") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "out")
os.makedirs(OUT, exist_ok=True)
FAST = bool(os.environ.get("LESSONS_FAST"))

contrastive_loss = use("contrastive_loss")
torch.manual_seed(0)

# %% [markdown]
# ## The loss on a toy batch
# Matching pairs on the diagonal of the similarity matrix; the loss is cross-entropy along rows (image -> text) and
# columns (text -> image). With 4 pairs, an encoder that cannot tell them apart gives every caption the same score:
# each row's softmax is uniform, 1/4 on the right caption, and the loss is log 4 = 1.386. That is chance. Random
# embeddings do worse than chance: the temperature (here exp(2.659) = 14.3, CLIP's initial 1/0.07) makes their
# random similarities confident, and a confident wrong guess costs more than a uniform one.

# %%
img, txt = torch.randn(4, 8), torch.randn(4, 8)
scale = torch.tensor(2.659)   # log of the inverse temperature
same = torch.ones(4, 8)       # every image and caption the same embedding: no pair can be told apart
losses = {"every embedding the same (chance)": contrastive_loss(same, same, scale).item(),
          "random embeddings": contrastive_loss(img, txt, scale).item(),
          "perfect match (each image = its caption)": contrastive_loss(img, img, scale).item()}
for name, v in losses.items():
    print(f"{name:<42} {v:.3f}")
log4 = torch.log(torch.tensor(4.0)).item()
claim(abs(losses["every embedding the same (chance)"] - log4) < 1e-4, "chance is log 4",
      f"{losses['every embedding the same (chance)']:.4f} against {log4:.4f}")
claim(losses["perfect match (each image = its caption)"] < log4 < losses["random embeddings"],
      "random embeddings are worse than chance and a perfect match better", str(losses))

# %% [markdown]
# ## Train a small encoder for a few seconds
# Half of each batch is drawn colourless with the colour word left out of its caption. Why: inside the training
# combinations colour predicts shape (red is never a circle, lesson 1), so an encoder could name a shape by its colour,
# and that shortcut is wrong on exactly the held-out combinations; a grey shape can only be named by its outline.
# (Stage `vision` of `main.py train` does the same, plus minimal-pair negatives.)
#
# As it trains, a probe on 24 scenes of held-out combinations: for each image, does its own caption beat the same
# caption with only the colour word changed (to each other colour), and with only the shape word changed? That says,
# attribute by attribute, what the image embedding has learnt to carry.

# %%
rng = random.Random(2)
probe = [draw_scene(rng, EVAL_COMBOS) for _ in range(24)]             # single objects, held-out combinations
probe_images = render(probe, 32, torch.Generator().manual_seed(2))


@torch.no_grad()
def attribute_accuracy(words, attribute):
    """How often each probe image prefers its own caption to every variant with another word for `attribute`."""
    right = 0
    for scene, image in zip(probe, probe_images):
        own = describe(scene)[attribute]
        variants = [caption(scene).replace(own, w) for w in [own] + [w for w in words if w != own]]
        ids = torch.tensor([TOKENIZER.encode(v) for v in variants])
        sims = F.normalize(model.embed_images(image[None]), dim=-1) @ F.normalize(model.embed_texts(ids), dim=-1).T
        right += int(sims.argmax()) == 0
    return right / len(probe)


model = ContrastiveModel(len(TOKENIZER), vision_width=32, embed_dim=32)
pairs = PairStream(DataConfig(), seed=0)
opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
steps = 30 if FAST else 150
every = steps // 5
learnt = {}                                                           # step -> (colour, shape) on held-out scenes
print("half of each batch grey, without its colour word: it removes the colour shortcut")
print(f"step   loss  temperature   held-out: colour  shape  (chance {1 / len(COLOURS):.2f} and {1 / len(SHAPES):.2f})")
for step in range(steps):
    samples = [pairs[i] for i in range(step * 32, step * 32 + 32)] + [pairs.grey(i) for i in range(step * 32,
                                                                                                  step * 32 + 32)]
    _, _, images, _ = collate(samples)
    text = caption_ids(samples)   # the captions' words alone, without <bos> <image> ... <EOC>
    loss = contrastive_loss(model.embed_images(images[:, 0]), model.embed_texts(text), model.logit_scale)
    opt.zero_grad(), loss.backward(), opt.step()
    if step % every == 0 or step == steps - 1:
        learnt[step] = attribute_accuracy(COLOURS, "colour"), attribute_accuracy(SHAPES, "shape")
        print(f"{step:4d}  {loss.item():5.3f}  {1 / model.logit_scale.exp().item():11.3f}   "
              f"{learnt[step][0]:15.2f}  {learnt[step][1]:5.2f}")

last = steps - 1
if not FAST:   # 30 steps (fast mode) are too few to learn either
    first = next(step for step, (colour, _) in learnt.items() if colour >= 0.75)
    claim(learnt[first][1] < learnt[first][0] - 0.2, "colour is learnt before shape",
          f"at step {first}: colour {learnt[first][0]:.2f}, shape {learnt[first][1]:.2f}")

# %% [markdown]
# ## Retrieval on held-out combinations
# For 8 scenes built only from held-out colour x shape combinations, which caption does each image match best?

# %%
rng = random.Random(1)
scenes = [draw_scene(rng, EVAL_COMBOS) for _ in range(8)]
images = render(scenes, 32, torch.Generator().manual_seed(1))
caps = [caption(s) for s in scenes]
ids = torch.nn.utils.rnn.pad_sequence([torch.tensor(TOKENIZER.encode(c)) for c in caps], batch_first=True)
with torch.no_grad():
    sim = F.normalize(model.embed_images(images), dim=-1) @ F.normalize(model.embed_texts(ids), dim=-1).T
right = (sim.argmax(1) == torch.arange(8)).float().mean().item()
print(f"image -> caption retrieval among 8 held-out scenes: {right:.0%} (chance 12%)")
fig, ax = plt.subplots(figsize=(6, 5.5))
im = ax.imshow(sim, cmap="magma")
ax.set_xticks(range(8), caps, rotation=90, fontsize=6), ax.set_xlabel("caption")
ax.set_yticks(range(8), [f"image of caption {i}" for i in range(8)], fontsize=6)
for i, j in enumerate(sim.argmax(1).tolist()):   # each image's best caption: a circle, green when it is its own
    ax.scatter(j, i, s=60, facecolors="none", edgecolors="lime" if i == j else "red")
fig.colorbar(im, ax=ax, shrink=0.7, label="cosine similarity")
ax.set_title("held-out scenes: the matching caption is on the diagonal\n(circles: each image's best caption)",
             fontsize=8)
fig.savefig(os.path.join(OUT, "03_similarity.png"), dpi=100, bbox_inches="tight")

# %% [markdown]
# ## Summary and questions

# %%
wrap_up(3, [
    "The contrastive loss makes the image embedding carry every attribute the captions name: after "
    f"{steps} steps, {right:.0%} of 8 held-out scenes retrieve their own caption (chance 12%).",
    "Shortcuts in the data become shortcuts in the features. Inside the training combinations colour predicts shape, "
    "so an encoder could name shapes by colour and fail on held-out combinations; drawing half of each batch grey, "
    "without its colour word, removes that colour shortcut: a grey shape can only be named by its outline.",
    f"The probe on held-out scenes read colour {learnt[last][0]:.2f} and shape {learnt[last][1]:.2f} after {steps} "
    f"steps (chance {1 / len(COLOURS):.2f} each).",
    "After this stage only the CNN is kept and frozen: its feature grid (B, S, Dv) is what the resampler reads.",
], [
    "What happens to the loss when two captions in a batch are identical? (See `contrastive_loss` in encoder.py.)",
    "Why does the temperature matter, and why learn it?",
    "In the probe's table, which attribute does the encoder learn first on held-out scenes, colour or shape, and why "
    "is the other slower?",
])
print(f"figures in {OUT}")
