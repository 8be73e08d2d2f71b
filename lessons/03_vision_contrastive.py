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
import os
import random

import torch
import torch.nn.functional as F

from flamingo_min.encoder import ContrastiveModel
from flamingo_min.plots import plt  # matplotlib, drawing to files: no screen needed
from flamingo_min.train import caption_ids
from lessons.exercises import use
from toy_data import TOKENIZER, DataConfig, PairStream, render
from toy_data.documents import caption, collate, draw_scene
from toy_data.shapes import EVAL_COMBOS

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "out")
os.makedirs(OUT, exist_ok=True)
FAST = bool(os.environ.get("LESSONS_FAST"))

contrastive_loss = use("contrastive_loss")
torch.manual_seed(0)

# %% [markdown]
# ## The loss on a toy batch
# Matching pairs on the diagonal of the similarity matrix; the loss is cross-entropy along rows (image -> text) and
# columns (text -> image).

# %%
img, txt = torch.randn(4, 8), torch.randn(4, 8)
print("random embeddings:", round(contrastive_loss(img, txt, torch.tensor(2.659)).item(), 3), "(log 4 =",
      round(torch.log(torch.tensor(4.0)).item(), 3), "is chance)")
print("perfect match    :", round(contrastive_loss(img, img, torch.tensor(2.659)).item(), 3))

# %% [markdown]
# ## Train a small encoder for a few seconds
# Half of each batch is drawn colourless with the colour word left out of its caption. Why: inside the training
# combinations colour predicts shape, and an encoder that leans on that fails on held-out combinations; a grey shape
# can only be named by its outline. (Stage `vision` of `main.py train` does the same, plus minimal-pair negatives.)

# %%
model = ContrastiveModel(len(TOKENIZER), vision_width=32, embed_dim=32)
pairs = PairStream(DataConfig(), seed=0)
opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
steps = 30 if FAST else 150
for step in range(steps):
    samples = [pairs[i] for i in range(step * 32, step * 32 + 32)] + [pairs.grey(i) for i in range(step * 32,
                                                                                                  step * 32 + 32)]
    ids, _, images, _ = collate(samples)
    text = caption_ids(ids)
    loss = contrastive_loss(model.embed_images(images[:, 0]), model.embed_texts(text), model.logit_scale)
    opt.zero_grad(), loss.backward(), opt.step()
    if step % 30 == 0 or step == steps - 1:
        print(f"step {step:4d}  loss {loss.item():.3f}  temperature {1 / model.logit_scale.exp().item():.3f}")

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
fig, ax = plt.subplots(figsize=(5, 4))
ax.imshow(sim, cmap="magma"), ax.set_xlabel("caption"), ax.set_ylabel("image")
ax.set_title("cosine similarity, held-out scenes", fontsize=9)
fig.savefig(os.path.join(OUT, "03_similarity.png"), dpi=100, bbox_inches="tight")

# %% [markdown]
# ## Summary
# - The contrastive loss makes the image embedding carry every attribute the captions name.
# - Shortcuts in the data become shortcuts in the features; augmentation removes the ones that would fail at test.
# - After this stage only the CNN is kept and frozen: its feature grid (B, S, Dv) is what the resampler reads.
#
# ## Questions
# 1. What happens to the loss when two captions in a batch are identical? (See `contrastive_loss` in encoder.py.)
# 2. Why does the temperature matter, and why learn it?
# 3. Run longer (more steps): which attribute is learnt last, and why?
print(f"figures in {OUT}")
