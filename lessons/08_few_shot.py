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

import torch

from flamingo_min import train
from flamingo_min.plots import plt  # matplotlib, drawing to files: no screen needed
from lessons.exercises import use
from toy_data import TOKENIZER, make_episode, render
from toy_data.shapes import describe
from toy_data.tasks import score, shot_count

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "lessons", "out")
os.makedirs(OUT, exist_ok=True)
FAST = bool(os.environ.get("LESSONS_FAST"))

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
def pictures(scenes, seed):
    """The prompt's images, drawn as the run's training data was (its size, noise and colour jitter)."""
    d = cfg.data
    return render(scenes, d.image_size, torch.Generator().manual_seed(seed), colour_jitter=d.colour_jitter,
                  noise=d.noise)[None]


ep = make_episode("infer", 1, cfg.data)
text, scenes = build_prompt(ep.support(4), ep.query, ep.text_examples)
print(text, " -> ?  (truth:", ep.query.answer + ")")
images = pictures(scenes, 0)
answer = greedy_decode(model, torch.tensor([TOKENIZER.encode(text)]), images)
print("model says:", TOKENIZER.decode(answer))

# %% [markdown]
# ## Binding: a new word, learnt from the prompt
# `match` shows each label with the very same object every time; `bind` (concept binding, as in Frozen's "fast
# binding") shares only the bound attribute between a label's images, colour or shape, and redraws everything else.
# The labels are evaluation-only nonce words, never seen with an image in training. Look at one prompt:

# %%
ep = make_episode("bind", 7, cfg.data)
text, scenes = build_prompt(ep.support(4), ep.query)
print(f"bound attribute: {ep.attribute}")
for e in ep.support(4) + [ep.query]:
    print(f"  {describe(e.scene)['colour']:>7} {describe(e.scene)['shape']:<9} -> {e.answer}")
print("the model says:", TOKENIZER.decode(greedy_decode(model, torch.tensor([TOKENIZER.encode(text)]),
                                                        pictures(scenes, 7), max_new_tokens=3)))

# %% [markdown]
# ## Accuracy against shots
# A few episodes per point (the full evaluation is `python main.py eval --run RUN`, 200 episodes per point). "none" is
# the query alone; "0" the paper's zero-shot, two text-only examples; then k image-text examples.

# %%
n = 4 if FAST else 16
shots = ("none", "0", "1", "2", "4") if FAST else ("none", "0", "1", "2", "4", "8")
curves = {}
for task in ("infer", "question", "bind", "match"):
    curves[task] = []
    for shot in shots:
        right = 0.0
        for j in range(n):
            ep = make_episode(task, 1000 + j, cfg.data)
            examples = ep.text_examples if shot != "none" else ()
            text, scenes = build_prompt(ep.support(shot_count(shot)), ep.query, examples)
            out = greedy_decode(model, torch.tensor([TOKENIZER.encode(text)]), pictures(scenes, j), max_new_tokens=3)
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
# - With no context, the query alone, the model cannot know which attribute `infer` wants nor what a new word means;
#   zero-shot, the prompt holds two text-only examples; k-shot, k image-text chunks, then the query.
# - Task inference needs the shots to say *which* attribute is wanted; binding needs them to say what a new word means.
# - The baselines in `python main.py eval`'s table read only the answers in the prompt. A score above them had to come
#   from the images.
#
# ## Questions
# 1. Why is 0-shot binding at chance, whatever the model?
# 2. At 1 shot, `bind` is trivially right (its only label is the answer). Which baseline shows that?
# 3. 16 shots put more images in a prompt than any training document had. What keeps that from breaking?
# 4. Try RICES: `python main.py eval --run RUN --selection rices`. Which task gains most, and why?
print(f"figures in {OUT}")
