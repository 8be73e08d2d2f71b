# %% [markdown]
# # Lesson 8: few-shot learning, accuracy against shots
#
# The paper's headline: a model trained on interleaved documents learns new tasks from examples written into its
# prompt, with no weight update, and gets better with more shots. Here: prompts built from held-out combinations
# (exercise `build_prompt`), answers decoded greedily until `<EOC>` (exercise `greedy_decode`), accuracy against shots.
#
# It uses `runs/default` if you have trained it (`python main.py train`), else lesson 7's miniature run: that one is far
# too small to learn much, so expect numbers near chance from it.

# %%
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "lessons", "out")
os.makedirs(OUT, exist_ok=True)
FAST = bool(os.environ.get("LESSONS_FAST"))

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from flamingo_min import train  # noqa: E402
from lessons.exercises import use  # noqa: E402
from toy_data import TOKENIZER, make_episode, render  # noqa: E402
from toy_data.tasks import score  # noqa: E402

build_prompt, greedy_decode = use("build_prompt"), use("greedy_decode")
RUN = next((r for r in (os.path.join(ROOT, "runs", "default"), os.path.join(OUT, "run"), os.path.join(OUT, "run_fast"))
            if os.path.exists(os.path.join(r, "flamingo.pt"))), None)
if RUN is None:
    raise SystemExit("no trained run yet: run lesson 7 (python lessons/07_training_the_bridge.py) or "
                     "python main.py train first")
model, cfg = train.load_run(RUN)
print("using the run in", RUN)

# %% [markdown]
# ## One prompt, one answer

# %%
ep = make_episode("infer", seed=1)
text, scenes = build_prompt(ep.support(4), ep.query, ep.text_examples)
print(text, " -> ?  (truth:", ep.query.answer + ")")
images = render(scenes, cfg.data.image_size, torch.Generator().manual_seed(0))[None]
answer = greedy_decode(model, torch.tensor([TOKENIZER.encode(text)]), images)
print("model says:", TOKENIZER.decode(answer))

# %% [markdown]
# ## Accuracy against shots
# A few episodes per point (the full evaluation is `python main.py eval --run RUN`).

# %%
n = 4 if FAST else 16
shots = (0, 1, 2, 4) if FAST else (0, 1, 2, 4, 8)
curves = {}
for task in ("infer", "question", "bind"):
    curves[task] = []
    for k in shots:
        right = 0.0
        for j in range(n):
            ep = make_episode(task, seed=1000 + j)
            text, scenes = build_prompt(ep.support(k), ep.query, ep.text_examples)
            images = render(scenes, cfg.data.image_size, torch.Generator().manual_seed(j))[None]
            out = greedy_decode(model, torch.tensor([TOKENIZER.encode(text)]), images, max_new_tokens=3)
            right += score(task, TOKENIZER.decode(out), ep.query.answer)
        curves[task].append(right / n)
    print(task, dict(zip(shots, [round(a, 2) for a in curves[task]])))
fig, ax = plt.subplots(figsize=(5, 3.4))
for task, accs in curves.items():
    ax.plot(range(len(shots)), accs, "o-", label=task)
ax.set_xticks(range(len(shots)), shots), ax.set_xlabel("shots"), ax.set_ylabel("accuracy"), ax.set_ylim(0, 1)
ax.legend(), ax.set_title(f"open-ended, {n} episodes per point ({os.path.basename(RUN)})", fontsize=9)
fig.savefig(os.path.join(OUT, "08_few_shot.png"), dpi=100, bbox_inches="tight")

# %% [markdown]
# ## Summary
# - Zero-shot, the prompt holds two text-only examples; k-shot, k image-text chunks, then the query.
# - Task inference needs the shots to say *which* attribute is wanted; binding needs them to say what a new word means.
#
# ## Questions
# 1. Why is 0-shot binding at chance, whatever the model?
# 2. 8 and 16 shots put more images in a prompt than any training document had. What keeps that from breaking?
# 3. Try RICES: `python main.py eval --run RUN --selection rices`. Which task gains most, and why?
print(f"figures in {OUT}")
