# %% [markdown]
# # Lesson 8: few-shot learning, accuracy against shots
#
# The paper's headline: a model trained on interleaved documents learns new tasks from examples written into its
# prompt, with no weight update, and gets better with more shots. Here: prompts built from held-out combinations
# (exercise `build_prompt`), answers decoded greedily until `<EOC>` (exercise `greedy_decode`) or ranked by likelihood
# (exercise `score_candidates`), then accuracy against shots over enough episodes to tell a real effect from noise.
#
# It uses `runs/default` if you have trained it (`python main.py train`, timed in docs/performance.md), else the model
# kept in the repository (`lessons/trained.py`: the `video` preset's run, seed 0, stills and clips), unpacked into
# `runs/lesson/video` on first use in about a second.

# %%
import own_checkout  # noqa: F401  (first, before torch: this checkout's code, idle threads that sleep soon)

import json
import math
import os
from collections import Counter

import torch

from flamingo_min import evaluate
from flamingo_min.evaluate import until
from flamingo_min.lab.plots import plt  # matplotlib, drawing to files: no screen needed
from lessons import claim, trained, wrap_up
from lessons.exercises import use
from toy_data import TOKENIZER, make_episode, render
from toy_data.shapes import describe
from toy_data.tasks import score

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.environ.get("LESSONS_OUT") or os.path.join(ROOT, "lessons", "out")
os.makedirs(OUT, exist_ok=True)

build_prompt, greedy_decode = use("build_prompt"), use("greedy_decode")
RUN, model, cfg = trained.pick(os.path.join(ROOT, "runs", "default"), "video")
print("using the run in", os.path.relpath(RUN, ROOT))


def pictures(scenes, seed):
    """The prompt's images, drawn as the training data was (toy_data/shapes.py: its size, noise and colour jitter)."""
    return render(scenes, generator=torch.Generator().manual_seed(seed))[None]


def ask(text, scenes, seed, max_new_tokens=3):
    """Your greedy_decode on one prompt: the answer's words."""
    ids = torch.tensor([TOKENIZER.encode(text)])
    return TOKENIZER.decode(greedy_decode(model, ids, pictures(scenes, seed), max_new_tokens=max_new_tokens))


# %% [markdown]
# ## One prompt, one answer
# Task inference (`infer`): every example names the same attribute of its picture, here always one of them; the
# model must work out which from the examples, then name it for the query.

# %%
ep = make_episode("infer", 1, cfg.data)
text, scenes = build_prompt(ep.support(4), ep.query, ep.text_examples)
print(text, " -> ?  (truth:", ep.query.answer + ")")
print("the model says:", ask(text, scenes, 0, max_new_tokens=10))

# %% [markdown]
# ## The same prompt, close-ended (exercise `score_candidates`)
# Instead of generating, rank the episode's candidate answers by their log-likelihood after the prompt: the paper's
# close-ended evaluation (App. A.2). The model can then only pick among the candidates.

# %%
score_candidates = use("score_candidates")
scores = score_candidates(model, torch.tensor([TOKENIZER.encode(text)]), pictures(scenes, 0),
                          [TOKENIZER.encode(c) for c in ep.candidates])
ranked = [c for _, c in sorted(zip(scores, ep.candidates), reverse=True)]
print(f"{len(ranked)} candidates, most likely first:", " ".join(ranked[:5]), "...")
print(f"the truth, {ep.query.answer!r}, ranks {ranked.index(ep.query.answer) + 1} of {len(ranked)}")

# %% [markdown]
# ## Binding: a new word, learnt from the prompt
# `bind` (concept binding, as in Frozen's "fast binding") gives each of three new words to one value of one attribute,
# colour or shape, and redraws everything else in every picture; `match` shows each word with the very same object
# every time. The words are evaluation-only nonce words, never seen with an image in training: only the prompt's
# examples can say what they mean. Two episodes, 4 shots each, the query last:

# %%
def explain(ep, support, said):
    """Why an answer to a binding episode is right or wrong, read off what each word's examples share with the query."""
    q, a, truth = describe(ep.query.scene), ep.attribute, ep.query.answer
    which = lambda word: [i for i, e in enumerate(support, 1) if e.answer == word]   # noqa: E731
    where = lambda word: f"example{'s' * (len(which(word)) > 1)} " + " and ".join(map(str, which(word)))  # noqa: E731
    others = [x for x in cfg.data.bind_attributes if x != a]
    alike = lambda word: [x for x in others if any(describe(support[i - 1].scene)[x] == q[x]   # noqa: E731
                                                   for i in which(word))]
    if said == truth:
        return f"right: the query's {a} is {q[a]}, as in {where(truth)}, labelled {truth}" + (
            f"; {where(truth)} also share{'s' * (len(which(truth)) == 1)} the query's {alike(truth)[0]}, so this hit "
            f"alone cannot tell whether the model read the word as the {a} or the {alike(truth)[0]}"
            if alike(truth) else f"; nothing else is shared, so the model read the word as naming the {a}")
    why = [f"wrong: the query's {a} is {q[a]}, as in {where(truth)}, labelled {truth}"]
    if not which(said):
        return why[0] + f"; {said!r} is no word of this prompt"
    alike = alike(said)
    why.append(f"{said} labels {where(said)}, " + (
        f"which share the query's {alike[0]} ({q[alike[0]]}): the model read the word as naming the {alike[0]}"
        if alike else f"which share no {' or '.join(cfg.data.bind_attributes)} with the query"))
    counts = Counter(e.answer for e in support)
    if counts[said] > counts[truth]:
        why.append(f"{said} is also the prompt's most frequent word ({counts[said]} of {len(support)}), the answer "
                   "of the `majority` baseline, which reads only the answers")
    elif said == support[-1].answer:
        why.append(f"{said} is also the last word shown, the answer of the `last` baseline, which reads only the "
                   "answers")
    return "; ".join(why)


def showcase(seed):
    """One binding episode at 4 shots: its examples, the query (marked), your greedy_decode's answer, and why."""
    ep = make_episode("bind", seed, cfg.data)
    support = ep.support(4)
    text, scenes = build_prompt(support, ep.query)
    print(f"episode {seed}: the words name the {ep.attribute}")
    for i, e in enumerate(support + [ep.query], 1):
        d = describe(e.scene)
        print(f"  {'QUERY' if e is ep.query else f'example {i}':>9}: {d['colour']:>7} {d['shape']:<9} -> " +
              (f"?   (truth: {e.answer})" if e is ep.query else e.answer))
    said = ask(text, scenes, seed)
    print(f"  the model says {said!r}: {explain(ep, support, said)}\n")


SHOW = 7   # the shipped model misses this one and gets the next right: a miss teaches as much as a hit
showcase(SHOW)
showcase(SHOW + 1)

# %% [markdown]
# ## The same episode, in a richer prompt
# Real pages say more than a name. `bind-after`, `bind-before`, ... (toy_data/formats.py) are the very `bind`
# episodes with other words in every chunk: remarks true of each picture that never name the bound attribute, so the
# word is still the only thing bound. The open-ended answer stops where the format goes on (`tiv . where ?` ->
# `tiv`, the step `until` of evaluate.py). The evaluation reports every format (docs/results.md).

# %%
rich = make_episode("bind-after", SHOW, cfg.data)   # the episode above: the same pictures, words and query
text, scenes = build_prompt(rich.support(4), rich.query)
said_rich = ask(text, scenes, SHOW)
print(text.replace(" <EOC> ", " <EOC>\n  ") + "   <- the QUERY")
print(f"the model says: {said_rich!r} -> answer {until(said_rich, rich.query.tail)!r} (truth: "
      f"{rich.query.answer!r})")

# %% [markdown]
# ## Accuracy against shots
# One episode says little: a model that is right 70% of the time misses 3 in 10. So the scores below are means over
# N episodes per point, and a mean over N episodes wobbles by its standard error, sqrt(p (1 - p) / N): two scores
# closer than about twice that could swap places on other episodes.
#
# The loop is the evaluation's own (`flamingo_min/evaluate.py`, what `python main.py eval` runs): every episode's
# pictures encoded and resampled once, then for each shot count the same prompts as `build_prompt` writes, answered
# for all N episodes at once by greedy decoding with a KV cache. That is what makes N = 200 take seconds; your
# `greedy_decode` answers one prompt at a time. "none" is the query alone; "0" the paper's zero-shot, two text-only
# examples; then k image-text examples. Beside each score: chance (a uniform guess among the episode's candidate
# answers) and the best of three context-only baselines, which read only the answers the prompt shows (the most
# frequent one, the last one, a uniform guess among them): a score above them had to come from the images.

# %%
N = 200   # the same in fast mode: the claims below are checked on these numbers
SHOTS = ("none", "0", "1", "2", "4", "8")
TASKS = ("infer", "question", "bind", "match")


def accuracy(task, shots, pool_size, selections=("random",), n=N):
    """{(selection, shot): (open-ended accuracy, {baseline: its score})} over n episodes of `task`, and chance.
    Episodes draw their examples from a pool of pool_size (at least the largest shot count)."""
    eps = evaluate.episodes_for(task, n, cfg.data, seed=0, pool_size=pool_size)
    media, pooled = evaluate.episode_media(model, eps, cfg.data)      # (n, pool + 1, R, D): the query last
    out = {}
    for selection in selections:
        for shot in shots:
            said, _, shown = evaluate.answer(model, eps, list(range(n)), shot, media, pooled, selection, beams=1)
            right = sum(score(task, a, ep.query.answer) for a, ep in zip(said, eps)) / n
            base = [evaluate.baseline_scores(task, "open", s, ep.query.answer) for s, ep in zip(shown, eps)]
            out[selection, shot] = right, {b: sum(x[b] for x in base) / n for b in base[0]}
    return out, sum(ep.chance for ep in eps) / n


curves, floor, chance = {}, {}, {}
for task in TASKS:
    scores, chance[task] = accuracy(task, SHOTS, pool_size=8)
    curves[task] = [scores["random", s][0] for s in SHOTS]
    floor[task] = [max(scores["random", s][1].values()) for s in SHOTS]


def se(p, n=N):
    """The standard error of a mean score p over n episodes."""
    return math.sqrt(p * (1 - p) / n)


def se_gap(a, b, n=N):
    """The standard error of the difference of two such scores."""
    return math.sqrt(se(a, n) ** 2 + se(b, n) ** 2)


SE = se(0.5)   # the largest a standard error gets, at p = 0.5
print(f"open-ended accuracy, {N} held-out episodes per point (standard error at most {SE:.3f})")
for task in TASKS:
    print(f"{task:<8} " + "  ".join(f"{s:>4}: {a:.2f}" for s, a in zip(SHOTS, curves[task])) +
          f"   (chance {chance[task]:.2f}; best baseline " + " ".join(f"{b:.2f}" for b in floor[task]) + ")")
fig, ax = plt.subplots(figsize=(6, 3.6))
for (task, accs), colour in zip(curves.items(), ("C0", "C1", "C2", "C3")):
    ax.errorbar(range(len(SHOTS)), accs, yerr=[se(a) for a in accs], fmt="o-", color=colour, capsize=2,
                label=task)
    ax.axhline(chance[task], color=colour, ls=":", lw=1)
ax.plot([], [], "k:", lw=1, label="chance (same colour)")
ax.plot(range(len(SHOTS)), floor["bind"], "--", color="C2", lw=1, label="bind: best context-only baseline")
ax.set_xticks(range(len(SHOTS)), SHOTS), ax.set_xlabel("shots (none: the query alone; 0: two text-only examples)")
ax.set_ylabel("accuracy, open-ended"), ax.set_ylim(0, 1.02), ax.legend(fontsize=7, loc="lower right")
ax.set_title(f"held-out episodes, {N} per point, bars: one standard error ({os.path.relpath(RUN, ROOT)})",
             fontsize=9)
fig.savefig(os.path.join(OUT, "08_few_shot.png"), dpi=100, bbox_inches="tight")

# %% [markdown]
# What the lesson says about binding, checked on the numbers just printed with their standard errors (a run that
# contradicts it stops here). The difference of two scores has standard error sqrt(se1^2 + se2^2) (`se_gap`).

# %%
acc, base = dict(zip(SHOTS, curves["bind"])), dict(zip(SHOTS, floor["bind"]))
claim(max(acc["none"], acc["0"]) <= chance["bind"] + 2 * SE,
      "without image examples a new word cannot be known: binding at chance or below, within two standard errors",
      f"none {acc['none']:.2f}, 0-shot {acc['0']:.2f}, chance {chance['bind']:.2f}, 2 SE {2 * SE:.2f}")
top = max(chance["bind"], base["4"])
claim(acc["4"] - top > 3 * se_gap(acc["4"], top),
      "with 4 image examples binding is above chance and above every context-only baseline, by more than three "
      "standard errors", f"4-shot {acc['4']:.2f}, chance {chance['bind']:.2f}, best baseline {base['4']:.2f}")
low, high = max(acc["none"], acc["0"]), min(acc[s] for s in ("2", "4", "8"))
claim(high - low > 3 * se_gap(high, low),
      "binding comes with the examples: every score at 2 or more shots is above both scores without them, by more "
      "than three standard errors", ", ".join(f"{s}: {a:.2f}" for s, a in acc.items()))

# %% [markdown]
# ## Which examples? Random against RICES
# So far the examples were drawn at random from the episode's pool. RICES (paper App. A.2) puts the pool's examples
# most similar to the query into the prompt instead, by frozen vision features, the most similar last. Both, on the
# same episodes with a pool of 16 to choose from, 4 shots, each beside the `last` baseline (repeat the last answer the
# prompt shows). This is `python main.py eval --run RUN --selection rices --shots 4` without the other tasks and shot
# counts.

# %%
M = 100
print(f"4 shots, {M} episodes each (standard error at most {se(0.5, M):.3f})    random   RICES")
picked = {}
for task in ("bind", "match", "question"):
    scores, _ = accuracy(task, ("4",), pool_size=16, selections=("random", "rices"), n=M)
    picked[task] = {how: (scores[how, "4"][0], scores[how, "4"][1]["last"]) for how in ("random", "rices")}
    (drawn, drawn_last), (similar, similar_last) = picked[task]["random"], picked[task]["rices"]
    print(f"  {task:<9} the model                          {drawn:6.2f}  {similar:6.2f}")
    print(f"  {'':<9} repeat the last answer shown       {drawn_last:6.2f}  {similar_last:6.2f}")
(drawn, drawn_last), (similar, similar_last) = picked["bind"]["random"], picked["bind"]["rices"]
claim(similar_last - drawn_last > 3 * se_gap(drawn_last, similar_last, M),
      "RICES makes binding easier for a model that reads no image at all: repeating the last answer shown gains "
      "more than three standard errors", f"`last` on bind {drawn_last:.2f} with random examples, {similar_last:.2f} "
      "with RICES")

# %% [markdown]
# ## Inside the LM: where binding comes from
# The bridge only lets pictures reach a skill the frozen LM brought: reading off the label of the example whose concept
# matches the query's. That skill appears *suddenly* during the LM's training: `python main.py train` watches it every
# 100 steps (its `metrics.jsonl`, `copy`), and `docs/copying.json` keeps five seeds of the default recipe. Then
# `probes.label_attention` reads, head by head, where the answer's position looks: at the labels of the matching
# examples, or at the other labels (docs/incontext.md).

# %%
from flamingo_min import runs  # noqa: E402
from flamingo_min.lab import plots as pictures_of, probes, repeats  # noqa: E402

mine = probes.watched(runs.read_metrics(RUN))   # your LM's copying probe, if your run logged one
if mine:
    watched = {"seeds": {"yours": mine}}
else:
    with open(os.path.join(ROOT, "docs", "copying.json")) as f:
        watched = json.load(f)
for seed, r in watched["seeds"].items():
    curve = " ".join(f"{a:.2f}" for _, a in r["curve"])
    print(f"seed {seed}: copying probe every 100 steps {curve}  -> onset {r['onset']}")
with open(os.path.join(OUT, "08_copying.png"), "wb") as f:
    f.write(pictures_of.copying(watched))
jumps = [max(b - a for (_, a), (_, b) in zip(r["curve"], r["curve"][1:])) for r in watched["seeds"].values()
         if r["onset"] is not None]
claim(all(j > 0.25 for j in jumps), "copying appears suddenly: where it appears, the probe jumps by more than 0.25 "
      "within 100 steps", f"largest jumps {', '.join(f'{j:.2f}' for j in jumps)}")

lm = model.lm
heads = {k: {fmt: probes.label_attention(lm, fmt, k, episodes=100) for fmt in ("plain", "after")} for k in (4, 16)}
H = lm.blocks[0].attn.n_heads
best = int(heads[4]["plain"]["match"].flatten().argmax())
layer, head = divmod(best, H)
print(f"\nthe head that looks most at the matching labels: layer {layer}, head {head}")
print("  form (shots)     on matching labels   on other labels   the LM's text accuracy")
for k in (4, 16):
    for fmt in ("plain", "after"):
        r = heads[k][fmt]
        print(f"  {fmt:<6} ({k:>2})     {r['match'][layer, head]:18.2f} {r['other'][layer, head]:17.2f} "
              f"{r['accuracy']:22.2f}")
induction = probes.induction_scores(lm)
print(f"highest induction score of any head: {induction.max():.2f} (a pure induction head: 1)")
with open(os.path.join(OUT, "08_heads.png"), "wb") as f:
    f.write(pictures_of.heads({"induction": induction, **{fmt: heads[16][fmt] for fmt in ("plain", "after")}}))
matching, others = heads[4]["plain"]["match"][layer, head], heads[4]["plain"]["other"][layer, head]
claim(matching > others, "at 4 shots in the trained form the binding head looks more at the matching labels than at "
      "all the other labels together", f"{matching:.2f} against {others:.2f}")
fell = heads[4]["after"]["match"][layer, head] - heads[16]["after"]["match"][layer, head]
claim(fell > 0, "in a form the LM never read (`after`), that head's attention on the matching labels falls as shots "
      "are added", f"{heads[4]['after']['match'][layer, head]:.2f} at 4 shots, "
      f"{heads[16]['after']['match'][layer, head]:.2f} at 16")

# %% [markdown]
# ## Lures: where the LM's remaining errors are
# The LM finds a label by its concept, two words, of which only one is bound. A support of another label may share
# the query's *other* word (`blue ring vop . red circle tiv . red ring` when colour is bound): a lure, and a head that
# scores a support by either word is torn between two labels. Episodes drawn at random hold lures often, and more of
# them as shots are added. `probes.lure_split` reads the LM's plain episodes apart, with a lure and without.

# %%
L = 600   # episodes per split: the lures are a quarter of them at 4 shots
lures = {}
print(f"\nthe LM's concept binding in text (plain form, {L} episodes), apart by lures")
for k in (4, 16):
    texts, answers, bounds = probes.concept_episodes(k, 3, L, seed=0)
    lured = sum(map(probes.natural_lure, texts, answers, bounds))
    lures[k] = {**probes.lure_split(lm, k, episodes=L), "n": lured}
    print(f"  {k:>2} shots: {lured:3d} episodes with a lure read {lures[k]['lure']:.2f}, the other {L - lured:3d} "
          f"{lures[k]['no lure']:.2f}")
gaps = {k: (r["no lure"] - r["lure"], math.hypot(se(r["lure"], r["n"]), se(r["no lure"], L - r["n"])))
        for k, r in lures.items()}
claim(all(gap > 3 * err for gap, err in gaps.values()), "at 4 shots and at 16 the LM answers worse where a lure is "
      "present, by more than three standard errors", ", ".join(f"{k} shots: {gap:.2f} (standard error {err:.3f})"
                                                               for k, (gap, err) in gaps.items()))

# %% [markdown]
# ## Which word a head reads
# A label names one word of its concept, the bound attribute, and in the plain form the two words sit in a fixed
# order: the shape right before the label, the colour before that. The LM's smeared key (flamingo_min/lm.py) mixes the
# word before each label into that label's key, so a head of the *first* layer can match the query's last word, its
# shape, against the word before every label. The colour, two words back, is out of that head's reach: its query holds
# the query's shape and nothing else, its keys the labels and the shapes before them (inside the training combinations
# some colours never come with some shapes, so a shape hints at its colour, no more). Only a later head, reading what
# an earlier layer moved forward, can match the colour. An LM without one answers a colour-bound query with the label
# of a support that shares the query's shape: right only where that support shares the colour too, above chance but
# far from perfect. `probes.attribute_split` reads the LM apart by the attribute
# its labels name, and `probes.label_attention(..., bound=...)` its heads on those episodes alone.

# %%
by_word = {k: probes.attribute_split(lm, k, episodes=L) for k in (4, 16)}
on = {a: probes.label_attention(lm, "plain", 16, episodes=200, bound=a) for a in ("colour", "shape")}
print(f"\nthe LM's concept binding in text (plain form, {L} episodes), apart by the attribute its labels name")
for k, r in by_word.items():
    print(f"  {k:>2} shots: labels naming a colour {r['colour']:.2f}, a shape {r['shape']:.2f}")
for a, r in on.items():
    print(f"  its heads where the labels name the {a} (16 shots; attention on the matching labels vs the others): "
          f"{probes.bound_head(r)}")
first = on["shape"]["match"][0] - on["shape"]["other"][0]          # (H,) the first layer's heads, shape-bound
h0 = int(first.argmax())
print(f"  the first layer's head {h0}, on the matching labels vs the others: shape-bound "
      f"{on['shape']['match'][0, h0]:.2f} vs {on['shape']['other'][0, h0]:.2f}, colour-bound "
      f"{on['colour']['match'][0, h0]:.2f} vs {on['colour']['other'][0, h0]:.2f}")
margin = {a: (r["match"][0, h0] - r["other"][0, h0]).item() for a, r in on.items()}
if margin["shape"] >= 0.5:
    claim(margin["colour"] < 0.2, "the first layer's head that finds the labels naming the query's shape does not "
          "find those naming its colour: it reads the word before each label, the shape",
          f"its preference for the matching labels: shape-bound {margin['shape']:.2f}, colour-bound "
          f"{margin['colour']:.2f}")
else:   # some LMs grow no such head, and bind both words through later heads (docs/incontext.md)
    print(f"  this LM has no first-layer head that reads the shape (the best prefers its labels by "
          f"{margin['shape']:.2f}): its later heads bind both words")

# %% [markdown]
# ## Counts: why more shots do not help
# The ideal observer needs one example of a label to answer it. A head that looks a label up gives every label in the
# prompt a share of its attention, and where the match is soft a label shown three times draws three shares whether
# it matches or not. At 4 shots about two prompts in three show the query's label once; at 16 almost none do.
# `repeats.read` reads the bridge's close-ended binding apart by how often the prompt shows the answer's label
# (`python main.py repeats --run RUN` does the same from the command line), and `probes.repeats_split` the LM's text.

# %%
C = 300   # episodes: at 8 shots about a fifth show the query's label once
counted = repeats.read(model, cfg.data, shots=("4", "8"), episodes=C, seed=0)
print("\n" + repeats.table(counted))
text_counts = {k: probes.repeats_split(lm, k, episodes=L) for k in (4, 8)}
print("the LM in text, the same parts: " + "; ".join(
    f"{k} shots " + ", ".join(f"{p}x {v:.2f}" for p, v in r.items()) for k, r in text_counts.items()))
at8 = counted["shots"]["8"]["parts"]
once, often = at8["1"], at8["3+"]
gap = often["accuracy"] - once["accuracy"]
err = math.hypot(se(once["accuracy"], once["episodes"]), se(often["accuracy"], often["episodes"]))
claim(gap > 3 * err, "at 8 shots the model finds a label shown once less often than a label shown three times or "
      "more, by more than three standard errors, where the ideal observer finds both",
      f"{once['accuracy']:.2f} ({once['episodes']} episodes) against {often['accuracy']:.2f} ({often['episodes']}), "
      f"standard error {err:.3f}; ideal {once['ideal']:.2f} and {often['ideal']:.2f}")

# %% [markdown]
# ## Which gated layers carry it
# In the bridge, binding is the LM's lookup fed with pictures: the answer's position must hold the query's picture,
# and each support's label position the picture it names. `routes.closed` closes gated layers through forward hooks
# (each hands its input on, as at initialisation, when tanh(alpha) = 0), everywhere or in one part of the prompt only:
# at the supports, or at the query (the positions from its `<image>` on). `routes.read` reads close-ended binding
# with every layer closed alone, every layer and pair left open alone, and each layer closed in each part, then which
# of the LM's heads look at the matching labels with the pictures in (`python main.py routes --run RUN` does the same
# from the command line; docs/incontext.md, "Routes").

# %%
from flamingo_min.lab import routes  # noqa: E402

K = 150   # episodes: 24 readings of 4 shots each
gone = routes.read(model, cfg.data, shots=("4",), episodes=K, seed=0)
print("\n" + routes.table(gone))
rows = {r["name"]: r for r in gone["shots"]["4"]}
every = rows["all open"]["accuracy"]
key = min(range(len(model.xattn)), key=lambda j: rows[f"without {j}"]["accuracy"])
lost = {part: rows[f"without {key}" + (f" at the {part}" if part else "")]["accuracy"]
        for part in ("", "supports", "query")}
claim(all(every - a > 3 * se_gap(every, a, K) for a in lost.values()),
      f"closing gated layer {key} costs binding more than three standard errors, whether it is closed everywhere, at "
      "the supports alone or at the query alone", f"every layer open {every:.2f}; without layer {key} "
      + ", ".join(f"{part or 'everywhere'} {a:.2f}" for part, a in lost.items()))

# %% [markdown]
# ## Summary and questions

# %%
infer = dict(zip(SHOTS, curves["infer"]))
wrap_up(8, [
    "With no context, the query alone, the model cannot know which attribute `infer` wants nor what a new word means; "
    "zero-shot, the prompt holds two text-only examples; k-shot, k image-text chunks, then the query.",
    f"Task inference needs the shots to say *which* attribute is wanted: infer {infer['none']:.2f} alone, "
    f"{infer['4']:.2f} at 4 shots. Binding needs them to say what a new word means: bind {acc['none']:.2f} alone, "
    f"{acc['0']:.2f} zero-shot, {acc['4']:.2f} at 4 shots (chance {chance['bind']:.2f}).",
    f"A mean over {N} episodes has a standard error of at most {SE:.3f}: read differences of a few hundredths as "
    "noise, and a score above a baseline only when the gap is several standard errors.",
    f"The context-only baselines read only the answers in the prompt (bind at 4 shots: {base['4']:.2f}); a score "
    "above them had to come from the images.",
], [
    f"Why can 0-shot binding not rise above chance ({acc['0']:.2f} here, chance {chance['bind']:.2f}, standard error "
    f"{se(acc['0']):.3f}), whatever the model?",
    f"At 1 shot, `bind` scored {acc['1']:.2f}: its only word is the answer. Which baseline shows that it is trivial "
    f"(best baseline at 1 shot: {base['1']:.2f})?",
    "16 shots put more images in a prompt than any training document had. What keeps that from breaking?",
    f"With RICES, bind rose from {drawn:.2f} to {similar:.2f}, and question did not move "
    f"({picked['question']['random'][0]:.2f}, {picked['question']['rices'][0]:.2f}). Why each? What does the `last` "
    "baseline beside bind say about its gain?",
    f"The binding head's attention on the matching labels fell from {heads[4]['after']['match'][layer, head]:.2f} "
    f"to {heads[16]['after']['match'][layer, head]:.2f} in the form `after` as shots went from 4 to 16, while the "
    "LM's text accuracy fell too. Why does a head that prefers the matching label lose it when more examples are "
    "added?",
    f"Without a lure the LM binds {lures[16]['no lure']:.2f} at 16 shots, with one {lures[16]['lure']:.2f}, and "
    f"{lures[16]['n']} of {L} episodes hold one (at 4 shots, {lures[4]['n']}). Why do more shots bring more lures, and "
    "what would the LM have to read from the supports to resist one?",
    f"The LM bound {by_word[16]['shape']:.2f} where the labels name a shape and {by_word[16]['colour']:.2f} where "
    "they name a colour (16 shots). What can a head of the first layer match, what must a later head do to match the "
    "colour, and what does an LM answer in a colour-bound episode when only the first kind of head binds?",
    f"At 8 shots the model found a label shown once {once['accuracy']:.2f} of the time, one shown three times or more "
    f"{often['accuracy']:.2f}, and the LM in text {text_counts[8]['1']:.2f} and {text_counts[8]['3+']:.2f}. Which of "
    "the two brings the weakness, and why does plain binding then fall from 2 to 4 shots?",
    f"Closing gated layer {key} at the supports alone read {lost['supports']:.2f}, at the query alone "
    f"{lost['query']:.2f}, against {every:.2f} with every layer open. What does the lookup lose in each case? Which "
    "layers could be closed at no cost, and what does that say about how many of the gated layers binding uses?",
])
print(f"figures in {OUT}")
