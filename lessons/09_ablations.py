# %% [markdown]
# # Lesson 9: reading the ablation table
#
# The paper's Table 3 removes one design choice at a time and measures what is lost. `python main.py ablate` does the
# same at toy scale: one LM and one encoder, pretrained once, and one bridge per variant trained on them. This lesson
# reads that table, explains two of its rows from the code, and asks you to predict a third before you run it.
#
# It reads `runs/ablate` if you have run `python main.py ablate` (~50 min on 2 cores); otherwise it runs a miniature
# ablate of three variants here (well under a minute). The miniature's numbers are too small
# to mean much: the code paths are the same, the scores are not.

# %%
import json
import os
import shutil

import torch
import torch.nn.functional as F

from flamingo_min import ablate, evaluate, train
from flamingo_min.config import from_dict
from flamingo_min.errors import CheckpointError
from flamingo_min.masking import cross_attention_mask
from flamingo_min.plots import plt  # matplotlib, drawing to files: no screen needed
from toy_data import TOKENIZER, TextCorpus
from toy_data.documents import collate

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "lessons", "out")
os.makedirs(OUT, exist_ok=True)
FAST = bool(os.environ.get("LESSONS_FAST"))

FULL = os.path.join(ROOT, "runs", "ablate")
if os.path.exists(os.path.join(FULL, "ablations.json")) and not FAST:
    FOLDER = FULL
else:
    FOLDER = os.path.join(OUT, "ablate_fast" if FAST else "ablate")
    steps = (12, 8, 8, 3) if FAST else (80, 40, 40, 12)   # lm, vision, bridge steps; evaluation episodes
    tiny = ["model.d_model=32", "model.n_layers=2", "model.n_heads=2", "model.vision_width=16", "model.embed_dim=16",
            "model.latents=3", "model.resampler_layers=1", "model.context=160", "data.text_len=64",
            f"train.lm_steps={steps[0]}", f"train.vision_steps={steps[1]}", f"train.flamingo_steps={steps[2]}",
            "train.lm_batch=4", "train.vision_batch=16", "train.doc_batch=4", "train.pair_batch=4",
            f"train.eval_episodes={steps[3]}"]
    def miniature():
        ablate.run(FOLDER, "quick", tiny, only=("baseline", "ungated", "all-images"), seeds=1,
                   progress=False, say=lambda s: print("  trained", s))

    try:
        miniature()
    except CheckpointError:   # made by another configuration or version of this code: start afresh
        shutil.rmtree(FOLDER)
        miniature()
with open(os.path.join(FOLDER, "ablations.json")) as f:
    table = json.load(f)
rows = table["variants"]
print(f"the table in {FOLDER}: {len(rows)} variants, {table['flamingo_steps']} bridge steps each\n")
for name, r in rows.items():
    o = r["overall"]
    print(f"  {name:<15} overall {o['mean']:.3f} (seeds {o['min']:.3f}-{o['max']:.3f})  {r['direction']}")

# %% [markdown]
# ## Row 1: `ungated`. Why a gate that starts at zero matters
#
# `xattn.py`: a gated layer adds `tanh(alpha) * s * CrossAttention(...)` and `tanh(alpha) * s * FFW(...)` to the LM's
# residual stream, with alpha = 0 at the start. The `ungated` variant drops the `tanh(alpha)`. Two consequences you
# can read off the code before training a single step:
# 1. the feed-forward writes into *every* token's stream, image or not, so even text-only input stops being the LM's;
# 2. `s` is the stream's own size (Flamingo.calibrate), so that write is as large as what the LM itself carries.
#
# Measure it: build both bridges on the same pretrained LM and feed each text alone, no image at all. How far are
# its next-token distributions from the LM's own (KL divergence, in nats per token), and can it still do the LM's
# text-only binding (`red tiv . blue vop . red` -> `tiv`)?

# %%
class TextOnly(torch.nn.Module):
    """A Flamingo model seen as a text-only LM (no images), for evaluate.lm_binding_accuracy."""
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, ids):
        return self.model(ids)


with open(os.path.join(FOLDER, "baseline", "seed0", "config.json")) as f:
    settings = json.load(f)
text = collate([TextCorpus(from_dict(settings).data, seed=123)[i] for i in range(8)])[0]   # (8, text_len)
for kind in ("gated", "ungated"):
    settings["model"]["xattn_block"] = kind
    torch.manual_seed(0)
    fresh = train.build_flamingo(os.path.join(FOLDER, "pretrained"), from_dict(settings), torch.device("cpu")).eval()
    with torch.no_grad():
        lm_logp = F.log_softmax(fresh.lm(text, embed_weight=fresh.embed_weight()), -1)
        kl = F.kl_div(F.log_softmax(fresh(text), -1), lm_logp, log_target=True, reduction="none").sum(-1).mean()
    acc = evaluate.lm_binding_accuracy(TextOnly(fresh), pairs=8, episodes=100)
    print(f"{kind:>8} bridge at initialisation, text only: KL from the LM {kl.item():.4f} nats/token, "
          f"binding {acc:.2f}")
print(f"     the LM alone: binding {evaluate.lm_binding_accuracy(fresh.lm, pairs=8, episodes=100):.2f}")

# %% [markdown]
# The gated bridge *is* the LM at step 0 (KL exactly 0). The ungated one is not: it moves every next-token
# distribution. On our 4-layer LM that damage is small (its text binding survives), while the cost of the gate is
# large: behind a gate at 0 nothing gets a gradient until the gate moves, so the gated bridge starts slowly, and at 300
# steps the table shows `ungated` far above the baseline; at 1200 steps the two are level (README). The paper's
# argument for the gate is about a 1.4B-70B LM, where that first damage is much harder to undo and training was
# unstable without it: a result the toy cannot reach, and the table says so.
#
# ## Row 2: `all-images`. What the query sees
#
# `masking.py`: with `only_immediate`, a text token attends to the visual tokens of its own image, phi(t), and of no
# other. With `all-images` (`only_immediate=False`) it attends to every image so far. Count what the query's answer
# token attends to in a k-shot prompt:

# %%
R = 8   # visual tokens per image, as the default model's latents
for k in (1, 4, 16):
    ids = torch.tensor([TOKENIZER.encode("<bos> " + "<image> : tiv <EOC> " * k + "<image> :")])
    for only in (True, False):
        m = cross_attention_mask(ids, TOKENIZER.image_id, k + 1, R, only)[0, -1]   # the last token's row
        own = m[-R:].sum().item()
        print(f"{k:>2}-shot, only_immediate={only!s:<5}: the answer's position sees {int(m.sum()):>3} visual tokens, "
              f"{own} of them its own image's ({own / m.sum().item():.0%})")

# %% [markdown]
# With all previous images the query's own picture is 1/(k+1) of what it may read, and nothing in the keys says which
# image is its own: the more shots, the more the right image is drowned. The paper's reasoning predicts the gap grows
# with shots; here are the table's numbers at 4, 8 and 16 shots:

# %%
shots = table["shots"]
fig, axes = plt.subplots(1, len(ablate.HEADLINE), figsize=(3 * len(ablate.HEADLINE), 2.6), sharey=True)
for ax, task in zip(axes, ablate.HEADLINE):
    for name, style in (("baseline", "o-"), ("all-images", "s--")):
        if name in rows:
            ax.plot(shots, [rows[name]["tasks"][task][s] for s in shots], style, label=name)
    ax.set_title(f"{task} ({ablate.HEADLINE[task]})", fontsize=9), ax.set_xlabel("shots")
axes[0].set_ylabel("score"), axes[0].legend(fontsize=7)
fig.tight_layout()
fig.savefig(os.path.join(OUT, "09_all_images.png"), dpi=100)
for name in ("baseline", "all-images"):
    for task in ("count", "infer"):
        if name in rows:
            print(f"{name:<11} {task:<6} at 4/8/16 shots: " + " ".join(f"{rows[name]['tasks'][task][s]:.2f}"
                                                                     for s in shots))

# %% [markdown]
# ## Your turn: predict before you run
#
# Pick a row you have not run, say `mean-pool` (every image becomes the mean of its features: one visual token, no
# positions). From the code (`bridges.py`, `toy_data/tasks.py`), which tasks should it lose, which should it keep, and
# what overall score do you expect against the baseline? Write your guess here, then run
#
#     python main.py ablate --only mean-pool          # ~3 min for 2 seeds; the table gains the row
#
# and run this lesson again.

# %%
PREDICTION = None   # e.g. 0.55: your guess of mean-pool's overall score, written *before* you run it
if "mean-pool" in rows:
    got = rows["mean-pool"]["overall"]["mean"]
    print(f"mean-pool overall {got:.3f}" + (f", your prediction {PREDICTION:.3f}" if PREDICTION is not None else
                                            " (you made no prediction: set PREDICTION first next time)"))
    print("per task, 4/16 shots:", {t: f"{v['4']:.2f}/{v['16']:.2f}" for t, v in rows["mean-pool"]["tasks"].items()})
else:
    where = "" if FOLDER == FULL else f" --out {os.path.relpath(FOLDER, ROOT)} --preset quick"
    print(f"mean-pool is not in the table yet: make your prediction, then run `python main.py ablate --only "
          f"mean-pool{where}`")

# %% [markdown]
# ## Summary
# - A gate at zero makes the start *exactly* the LM; without it the bridge begins by damaging what it must use.
# - Attending to every previous image dilutes the query's own picture by the number of shots.
# - A row is a claim only beyond the seeds' spread: read the direction column, not the third decimal.
#
# ## Questions
# 1. `round-robin` sees half the samples of each dataset per step and costs half as much. Is its row a fair
#    comparison at equal steps? At equal compute?
# 2. `lm-finetuned` trains 1.8x the parameters. Its "text bind" column says what happened to the LM. Why is that the
#    paper's argument for freezing?
# 3. `vision-random` leaves the encoder at initialisation. Which tasks can a random CNN still serve, and why?
print(f"figures in {OUT}")
