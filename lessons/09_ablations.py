# %% [markdown]
# # Lesson 9: reading the ablation table
#
# The paper's Table 3 removes one design choice at a time and measures what is lost. `python main.py ablate` does the
# same at toy scale: one LM and one encoder, pretrained once, and one bridge per variant trained on them. This lesson
# reads that table, explains two of its rows from the code, and asks you to predict a third before you run it.
#
# It reads `runs/ablate` if you have run `python main.py ablate` (timed in docs/ablations.md): the whole table, and its
# `baseline` and `all-images` bridges (seed 0). Otherwise it uses the two bridges kept in the repository
# (`lessons/trained.py`): the `video` preset's run, and the same recipe with `model.only_immediate=false`, each
# trained for 1200 steps on the same frozen LM and encoder.

# %%
import own_checkout  # noqa: F401  (first, before torch: this checkout's code, idle threads that sleep soon)

import json
import os

import torch
import torch.nn.functional as F

from flamingo_min import evaluate
from flamingo_min.config import from_dict
from flamingo_min.masking import cross_attention_mask
from flamingo_min.lab.plots import plt  # matplotlib, drawing to files: no screen needed
from flamingo_min import runs
from flamingo_min.lab import probes
from lessons import claim, trained, wrap_up
from toy_data import TOKENIZER, TextCorpus
from toy_data.documents import collate

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.environ.get("LESSONS_OUT") or os.path.join(ROOT, "lessons", "out")
os.makedirs(OUT, exist_ok=True)

FULL = os.path.join(ROOT, "runs", "ablate")
OWN = {name: os.path.join(FULL, name, "seed0") for name in ("baseline", "all-images")}
rows = {}
if os.path.exists(os.path.join(FULL, "ablations.json")) and not os.environ.get(trained.SHIPPED):
    with open(os.path.join(FULL, "ablations.json")) as f:
        table = json.load(f)
    rows = table["variants"]
    print(f"the table in {FULL}: {len(rows)} variants, {table['flamingo_steps']} bridge steps each\n")
    for name, r in rows.items():
        o = r["overall"]
        print(f"  {name:<15} overall {o['mean']:.3f} (seeds {o['min']:.3f}-{o['max']:.3f})  {r['direction']}")
if rows and all(os.path.exists(runs.ckpt_path(f, "flamingo")) for f in OWN.values()):
    BRIDGES = OWN
else:
    BRIDGES = {"baseline": trained.run("video"), "all-images": trained.run("all-images")}
    print("the table's rows are measured by `python main.py ablate`; here, two of them, kept in the repository")
print("bridges:", {name: os.path.relpath(f, ROOT) for name, f in BRIDGES.items()})

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
    """A Flamingo model seen as a text-only LM (no images), for probes.lm_binding_accuracy."""
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, ids, starts=None):
        return self.model(ids)   # Flamingo finds where each document starts in the ids themselves


with open(os.path.join(BRIDGES["baseline"], "config.json")) as f:
    settings = json.load(f)
text = collate([TextCorpus(from_dict(settings).data, seed=123)[i] for i in range(8)])[0]   # (8, text_len)
kl, binding = {}, {}
for kind in ("gated", "ungated"):
    settings["model"]["xattn_block"] = kind
    torch.manual_seed(0)
    fresh = runs.build_flamingo(BRIDGES["baseline"], from_dict(settings), torch.device("cpu")).eval()
    with torch.no_grad():
        lm_logp = F.log_softmax(fresh.lm(text, embed_weight=fresh.embed_weight()), -1)
        kl[kind] = F.kl_div(F.log_softmax(fresh(text), -1), lm_logp, log_target=True,
                            reduction="none").sum(-1).mean().item()
    binding[kind] = probes.lm_binding_accuracy(TextOnly(fresh), pairs=8, episodes=100)
    print(f"{kind:>8} bridge at initialisation, text only: KL from the LM {kl[kind]:.4f} nats/token, "
          f"binding {binding[kind]:.2f}")
binding["lm"] = probes.lm_binding_accuracy(fresh.lm, pairs=8, episodes=100)
print(f"     the LM alone: binding {binding['lm']:.2f}")
claim(kl["gated"] == 0 and binding["gated"] == binding["lm"], "the gated bridge is exactly the LM at step 0",
      f"KL {kl['gated']}, binding {binding['gated']:.2f} against the LM's {binding['lm']:.2f}")
claim(kl["ungated"] > 0, "the ungated bridge moves the LM's next-token distributions", f"KL {kl['ungated']:.4f}")
claim(binding["lm"] >= 0.9, "the frozen LM binds new words in text", f"binding {binding['lm']:.2f}")
survives = binding["ungated"] >= binding["lm"] - 0.1
print(f"The ungated bridge moves the LM by {kl['ungated']:.3f} nats/token before any training, and its text binding "
      + (f"survives ({binding['ungated']:.2f} against {binding['lm']:.2f})." if survives else
         f"falls from {binding['lm']:.2f} to {binding['ungated']:.2f}: the damage reaches what the bridge must use."))

# %% [markdown]
# The gated bridge *is* the LM at step 0 (KL exactly 0). The ungated one is not: it moves every next-token
# distribution, how much and with what harm to the LM's text binding is printed above. The cost of the gate is on the
# other side: behind a gate at 0 nothing gets a gradient until the gate moves, so the gated bridge starts slowly, and
# at 300 steps `python main.py ablate` measured `ungated` far above the baseline; at 1200 steps they were level
# (docs/ablations.md). The paper's argument for the gate is about a 1.4B-70B LM, where that first damage is much
# harder to undo and training was unstable without it: a result the toy cannot reach.
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
# image is its own: the more shots, the more the right image is drowned. The paper's reasoning predicts a gap that
# grows with shots. Measure it: both bridges on the same held-out episodes, close-ended, at 1 to 16 shots, on three
# tasks whose answer is in the query's own picture (`count`, and `infer`, `bind` once the shots say what is asked).

# %%
tasks, shots = ("count", "infer", "bind"), ("1", "4", "8", "16")
n = 100   # the same in fast mode: the claims below are checked on these numbers
scores = {}
for name, folder in BRIDGES.items():
    bridge, bridge_cfg = runs.load_run(folder)
    result = evaluate.evaluate(bridge, bridge_cfg.data, shots, n, seed=0, tasks=tasks, beams=1)["tasks"]
    scores[name] = {t: [result[f"{t}/closed"]["shots"][s] for s in shots] for t in tasks}
chance = {t: result[f"{t}/closed"]["chance"] for t in tasks}
best = {t: [max(b[s] for b in result[f"{t}/closed"]["baselines"].values()) for s in shots] for t in tasks}
fig, axes = plt.subplots(1, len(tasks), figsize=(3.2 * len(tasks), 2.8), sharey=True)
for ax, task in zip(axes, tasks):
    for name, style in (("baseline", "o-"), ("all-images", "s--")):
        ax.plot(shots, scores[name][task], style, label=f"{name} bridge")
    ax.axhline(chance[task], color="gray", ls=":", lw=1, label="chance")
    ax.plot(shots, best[task], color="gray", ls="-.", lw=1, label="best context-only baseline")
    ax.set_title(f"{task} (close-ended)", fontsize=9), ax.set_xlabel("shots"), ax.set_ylim(0, 1.02)
axes[0].set_ylabel("accuracy"), axes[0].legend(fontsize=6)
fig.suptitle(f"text attends to its own image (baseline) or to every previous one (all-images); {n} held-out "
             "episodes per point", fontsize=8)
fig.tight_layout()
fig.savefig(os.path.join(OUT, "09_all_images.png"), dpi=100)
for task in tasks:
    print(f"{task:<6} at {'/'.join(shots)} shots: " + "   ".join(
        f"{name} " + " ".join(f"{v:.2f}" for v in scores[name][task]) for name in BRIDGES) +
        f"   (chance {chance[task]:.2f})")
gap = [sum(scores["baseline"][t][i] - scores["all-images"][t][i] for t in tasks) / len(tasks)
       for i in range(len(shots))]
print("the gap, baseline minus all-images, averaged over the three tasks: " +
      ", ".join(f"{s} shots {g:+.2f}" for s, g in zip(shots, gap)))
claim(gap[-1] >= 0.1, "attending to every previous image loses to the immediate image at 16 shots",
      f"gap {gap[-1]:+.2f}")
claim(gap[-1] > gap[0], "the gap grows with shots", f"{gap[0]:+.2f} at {shots[0]} shot, {gap[-1]:+.2f} at 16")

# %% [markdown]
# ## Your turn: predict before you run
#
# Pick a row you have not run, say `mean-pool` (every image becomes the mean of its features: one visual token, no
# positions). From the code (`bridges.py`, `toy_data/tasks.py`), which tasks should it lose, which should it keep, and
# what overall score do you expect against the baseline? Write your guess here, then run
#
#     python main.py ablate --only mean-pool          # a few minutes for 2 seeds; the table gains the row
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
    print("mean-pool is not in your table yet: make your prediction, then run `python main.py ablate --only "
          "mean-pool` (the first ablate also pretrains the LM and the encoder, once, into runs/ablate/pretrained)")

# %% [markdown]
# ## Summary and questions

# %%
wrap_up(9, [
    f"A gate at zero makes the start *exactly* the LM (KL {kl['gated']:.0f}); without it the bridge starts "
    f"{kl['ungated']:.3f} nats/token away from the LM, before it has learnt anything.",
    "Attending to every previous image dilutes the query's own picture by the number of shots: here the gap to the "
    f"immediate image's bridge went from {gap[0]:+.2f} at 1 shot to {gap[-1]:+.2f} at 16.",
    "A row is a claim only beyond the seeds' spread: read the direction column of `python main.py ablate`'s table "
    "(docs/ablations.md), not the third decimal.",
], [
    "`round-robin` sees half the samples of each dataset per step and costs half as much. Is its row "
    "(docs/ablations.md) a fair comparison at equal steps? At equal compute?",
    "`lm-finetuned` trains 1.9x the parameters. Its \"text bind\" column says what happened to the LM. Why is that "
    "the paper's argument for freezing?",
    "`vision-random` leaves the encoder at initialisation. Which tasks can a random CNN still serve, and why?",
])
print(f"figures in {OUT}")
