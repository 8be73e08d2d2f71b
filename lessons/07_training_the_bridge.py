# %% [markdown]
# # Lesson 7: training the bridge, and watching the gates open
#
# The paper's recipe in three stages (section 2.4): pretrain an LM on text; pretrain a vision encoder contrastively;
# freeze both and train only the resampler, the gated layers and the new token embeddings. This lesson runs all three
# at miniature size (well under a minute) with the same code as `python main.py train`, then plots the loss curves and
# the gates' |tanh(alpha)| (the paper's Fig. 6). The real run (`python main.py train`, ~8 min) is where the few-shot
# curves of lesson 8 come from.

# %%
import json
import os
import shutil
import time

import torch

from flamingo_min import plots, train
from flamingo_min.config import make_config
from flamingo_min.errors import CheckpointError

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "out")
FAST = bool(os.environ.get("LESSONS_FAST"))
RUN = os.path.join(OUT, "run_fast" if FAST else "run")

# %% [markdown]
# ## A miniature configuration
# The same presets and `--set` overrides as the command line.

# %%
steps = (20, 10, 20) if FAST else (150, 60, 120)
cfg = make_config("quick", ["model.d_model=64", "model.n_heads=2", "model.vision_width=32", "model.latents=4",
                            "model.resampler_layers=1", "data.text_len=96", f"train.lm_steps={steps[0]}",
                            f"train.vision_steps={steps[1]}", f"train.flamingo_steps={steps[2]}",
                            "train.lm_batch=8", "train.vision_batch=32", "train.doc_batch=16",
                            "train.pair_batch=16", "train.log_every=5"])
print(json.dumps(train.to_dict(cfg)["train"], indent=None)[:300], "...")

# %% [markdown]
# ## Three stages
# A stage with a finished checkpoint is skipped: run the lesson twice and the second run is instant. If you change the
# configuration above, the old run no longer matches it (the trainer would refuse to mix them), so it is started afresh.

# %%
try:
    train.start_run(RUN, cfg)   # checks the checkpoints already there against cfg, then records cfg
except CheckpointError:         # made with another configuration (or another version of this code): start afresh
    shutil.rmtree(RUN)
    train.start_run(RUN, cfg)
for stage in train.STAGES:
    t0 = time.perf_counter()
    ckpt = train.run_stage(RUN, stage, cfg, seed=0, progress=False)
    print(f"{stage:<9} {ckpt['step']} steps in {time.perf_counter() - t0:5.1f} s")
metrics = train.read_metrics(RUN)

# %% [markdown]
# ## What stayed frozen
# After the bridge trained, the LM's weights are bit-identical to what stage `lm` produced.

# %%
lm = train.load_checkpoint(train.ckpt_path(RUN, "lm"))["model"]
fl = train.load_checkpoint(train.ckpt_path(RUN, "flamingo"))["model"]
print("LM untouched:", all(torch.equal(fl["lm." + k], v) for k, v in lm.items()))
model, _ = train.load_run(RUN)
n_train = sum(p.numel() for _, p in model.trainable_parameters())
print(f"trainable: {n_train:,} of {sum(p.numel() for p in model.parameters()):,} parameters")

# %% [markdown]
# ## Writing in the LM's units
# A trained LM's residual stream is large after its first block (its MLPs write big vectors), while a freshly
# initialised gated layer writes vectors of size ~1: the LM's LayerNorms would drown them until the layer's weights
# grew many-fold. So each gated layer multiplies its branches by a fixed scale, measured once on text: the RMS of the
# stream where it writes (`Flamingo.calibrate`). On the full-size LM the scales are about 0.1, 11, 13 and 18.

# %%
print("each gated layer's scale (RMS of the residual stream before its block):",
      [round(layer.scale.item(), 2) for layer in model.xattn])

# %% [markdown]
# ## Loss curves and gates

# %%
for name, picture in (("07_losses.png", plots.losses(metrics)), ("07_gates.png", plots.gates(metrics))):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(picture)
last = [m for m in metrics if m["stage"] == "flamingo"][-1]
print("final |tanh(alpha)| per layer:", {k: round(v, 3) for k, v in last.items() if k.startswith(("xattn", "dense"))})

# %% [markdown]
# ## Summary
# - Only the bridge trains; each update sums the interleaved-document loss (x1.0) and the pair loss (x0.2).
# - Gates start at 0 and open over training, deeper layers more (compare the paper's Fig. 6).
#
# ## Questions
# 1. Why does the paper accumulate gradients across datasets instead of alternating (round-robin)?
# 2. Which tokens carry no loss in a binding document, and why? (toy_data/documents.py)
# 3. A gate of |tanh| 0.04 can still carry a whole lookup. Why is gate size a poor measure of influence?
print(f"figures in {OUT}; the run is in {RUN}")
