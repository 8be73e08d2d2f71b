"""Held-out few-shot evaluation episodes (paper App. A.2): support examples first, the query last.

Every image of every episode is drawn from the held-out colour x shape combinations (shapes.EVAL_COMBOS), which no
training stream renders, and binding labels come from the evaluation nonce pool (vocab.EVAL_NONCE), which no stream
with images uses. So a right answer must come from composing what was learnt, or from reading the prompt.

Tasks, with the chunk each support example contributes (the query chunk stops where the answer would start):
    infer     <image> red <EOC>                 the supports alone say which attribute is wanted
    bind      <image> : tiv <EOC>               concept binding (Frozen's "fast binding"): N new labels, each bound to
                                                one value of one attribute; everything else is redrawn for every image
    match     <image> : tiv <EOC>               the easy case: each label always shows the very same object
    question  <image> what colour ? red <EOC>
    caption   <image> a big red circle at top-left <EOC>
    count     <image> how many ? three <EOC>
    bind-after, bind-before, ...                the `bind` episodes, each chunk in one of the other binding formats
                                                (formats.py: `<image> : tiv . where ? top-left <EOC>`, ...)
and on clips (clips.py; `<image>` stands for a clip), for models trained with them:
    direction <image> moves left <EOC>                  where a moving shape goes: read the frames in order
    event     <image> a red circle moves left <EOC>     what happens; one distractor is the clip played backwards

Shot counts (`SHOTS`, the keys of eval.json): "none" is the query alone, no example at all; "0" is the paper's
zero-shot, two text-only examples of the task (no image) before the query; "k" is k image-text examples. Shots up to
16 exceed the images of any training document (5; binding documents 10); that is deliberate (paper section 2.3).
"""
import dataclasses
import random
from collections import Counter
from dataclasses import dataclass

from .clips import DIRECTIONS, EVENTS, clip_candidates, draw_clip
from .formats import BY_NAME, FORMATS
from .documents import (ATTRIBUTES, BIND_PREFIX, QUESTION, VALUES, DataConfig, attribute_scene, bind_look, bind_scene,
                        caption)
from .shapes import COLOURS, EVAL_COMBOS, POSITIONS, SHAPES, SIZES, Scene, describe
from .vocab import EVAL_NONCE

TASKS = ("infer", "bind", "match", "question", "caption", "count")   # on stills
RICH_TASKS = tuple(f"bind-{f.name}" for f in FORMATS if f.name != "plain")   # `bind` in the other formats
VIDEO_TASKS = ("direction", "event")                                   # on clips
ALL_TASKS = TASKS + RICH_TASKS + VIDEO_TASKS
NO_CONTEXT = "none"
SHOTS = (NO_CONTEXT, "0", "1", "2", "4", "8", "16")
INFER_ANSWERS = tuple(w for a in ATTRIBUTES for w in VALUES[a])


def shot_count(shot):
    """A shot key ("none", "0", "4", ...) -> the number of image examples it puts in the prompt."""
    return 0 if shot == NO_CONTEXT else int(shot)


def check_shots(shots):
    """Shot keys as a tuple of strings; a clear ValueError for anything else."""
    out = []
    for s in shots:
        s = str(s).strip()
        if s != NO_CONTEXT and not (s.isdigit() and int(s) >= 0):
            raise ValueError(f"shot count {s!r}: give whole numbers >= 0 or {NO_CONTEXT!r} (no example at all), "
                             "e.g. none,0,1,2,4,8,16")
        out.append(str(int(s)) if s != NO_CONTEXT else s)
    if not out:
        raise ValueError("no shot counts given: e.g. none,0,1,2,4,8,16")
    return tuple(dict.fromkeys(out))


def binding(task):
    """Does this task bind labels to pictures (`bind`, `match`, `bind-<format>`)?"""
    return task in ("bind", "match") or task in RICH_TASKS


@dataclass(frozen=True)
class Example:
    scene: Scene  # or a clips.Clip
    prefix: str   # words between <image> and the answer ("" or a question)
    answer: str
    tail: str = ""  # words between the answer and <EOC> (binding formats: `. where ? top-left`)

    def chunk(self, with_image=True):
        words = ["<image>"] * with_image + [self.prefix, self.answer, self.tail, "<EOC>"]
        return " ".join(w for w in words if w)


@dataclass
class Episode:
    task: str
    attribute: str
    pool: list          # candidate support Examples, in random order
    query: Example
    candidates: tuple   # close-ended choices; the answer is one of them
    text_examples: tuple  # two Examples shown as text only, for zero-shot
    seed: int

    @property
    def chance(self):
        return 1.0 / len(self.candidates)

    def support_indices(self, k):
        """Which pool examples the k-shot prompt shows, as indices (equal examples keep their own pictures): the
        first k; for binding, one of them swapped for an example of the query's label if none has it."""
        idx = list(range(k))
        if binding(self.task) and k and all(self.pool[i].answer != self.query.answer for i in idx):
            same = next(i for i in range(k, len(self.pool)) if self.pool[i].answer == self.query.answer)
            idx[random.Random(self.seed * 31 + k).randrange(k)] = same
        return idx

    def support(self, k):
        return [self.pool[i] for i in self.support_indices(k)]

    def context_answers(self, shot, support=None):
        """The answers a prompt shows: its supports' (default: support(k)), the text examples' at "0", none at
        "none"."""
        if shot == NO_CONTEXT:
            return []
        if shot_count(shot) == 0:
            return [e.answer for e in self.text_examples]
        return [e.answer for e in (support if support is not None else self.support(shot_count(shot)))]


def baseline_answers(answers):
    """Context-only baselines, from the answers a prompt shows: the most frequent (ties: the latest), the last, and
    every distinct one (a uniform guess among them scores their mean). With no answers to read, none of them answers."""
    if not answers:
        return {"majority": None, "last": None, "uniform": []}
    counts = Counter(answers)
    top = max(counts.values())
    majority = next(a for a in reversed(answers) if counts[a] == top)
    return {"majority": majority, "last": answers[-1], "uniform": list(counts)}


def ideal_binding(ep, shot, attributes):
    """The expected accuracy of an ideal observer on a binding episode: it sees every picture's true attributes, knows
    that the labels name the values of one of `attributes` one-to-one and that every prompt shows the answer's label
    (support_indices; the training documents score a label only where it was shown before, so the model meets the
    same rule), and weighs every attribute the shown examples allow alike. Below 1 where the examples allow more than
    one reading (two shots, `red square tiv` and `blue circle vop`, then a red circle); chance without examples. A
    ceiling for the model, not a baseline."""
    k = 0 if shot == NO_CONTEXT else shot_count(shot)
    support = ep.support(k) if k else []
    votes = {}
    for a in attributes:
        label_of, value_of = {}, {}
        for e in support:
            v = describe(e.scene)[a]
            if label_of.setdefault(v, e.answer) != e.answer or value_of.setdefault(e.answer, v) != v:
                break                                                    # this attribute cannot be the bound one
        else:
            q = describe(ep.query.scene)[a]
            if q in label_of:                                            # else the answer's label would not be shown
                votes[label_of[q]] = votes.get(label_of[q], 0) + 1
    if not votes:
        return ep.chance
    best = max(votes.values())
    winners = [c for c, v in votes.items() if v == best]
    return (ep.query.answer in winners) / len(winners)


def build_prompt(support, query, text_examples=()):
    """The prompt's words: `<bos>`, each support chunk (or, at zero shots, the text-only examples), then the query's
    `<image>` and prefix. Returns (text, scenes) with one scene per `<image>` in the text, in order."""
    chunks = [e.chunk() for e in support] if support else [e.chunk(with_image=False) for e in text_examples]
    text = " ".join(["<bos>", *chunks, "<image>", query.prefix]).strip()
    return text, [e.scene for e in support] + [query.scene]


def make_episode(task, seed, cfg=DataConfig(), pool_size=32, combos=EVAL_COMBOS):
    """One episode of `task`, a pure function of seed; ways and attributes come from the data config.
    pool_size >= the largest shot count you will ask for."""
    if task not in ALL_TASKS:
        raise ValueError(f"unknown task {task!r}: choose from {', '.join(ALL_TASKS)}")
    if task in RICH_TASKS:
        return in_format(make_episode("bind", seed, cfg, pool_size, combos), task)
    rng = random.Random(seed)
    if task in VIDEO_TASKS:
        return _video_episode(task, rng, seed, cfg, pool_size, combos)
    if task in ("bind", "match"):
        a = rng.choice(cfg.bind_attributes)
        values = rng.sample(range(len(VALUES[a])), cfg.ways)
        labels = rng.sample(EVAL_NONCE, cfg.ways)
        # match: one look per label, drawn once; bind: every image redraws all but the bound attribute (look None).
        looks = [bind_look(rng, a, v, combos) if task == "match" else None for v in values]
        picks = [j % cfg.ways for j in range(pool_size + 1)]
        rng.shuffle(picks)
        examples = [Example(bind_scene(rng, a, values[p], looks[p], combos), BIND_PREFIX, labels[p]) for p in picks]
        text = [Example(examples[0].scene, BIND_PREFIX, lb) for lb in rng.sample(labels, 2)]
        return Episode(task, a, examples[:-1], examples[-1], tuple(labels), tuple(text), seed)

    a = {"infer": rng.choice(ATTRIBUTES), "question": rng.choice(ATTRIBUTES[:4]), "caption": "caption",
         "count": "count"}[task]
    prefix = QUESTION[a] if task in ("question", "count") else ""

    def example():
        scene = attribute_scene(rng, "count" if a == "count" else "colour", combos)
        return Example(scene, prefix, caption(scene) if task == "caption" else describe(scene)[a])

    examples = [example() for _ in range(pool_size + 3)]
    pool, query, text = examples[:pool_size], examples[pool_size], examples[pool_size + 1:]
    if task == "caption":
        candidates = caption_candidates(query.scene, rng)
    else:
        candidates = INFER_ANSWERS if task == "infer" else VALUES[a]
    return Episode(task, a, pool, query, tuple(candidates), tuple(text), seed)


def in_format(ep, task):
    """A `bind` episode with every chunk in the format `task` names (`bind-after`: formats.py): the same pictures and
    labels; the extra words are remarks on each picture that never name the bound attribute."""
    fmt, rng = BY_NAME[task.removeprefix("bind-")], random.Random(f"{ep.seed}/{task}")

    def redo(e):
        before, after = fmt.parts(rng, describe(e.scene), ep.attribute)
        return Example(e.scene, before, e.answer, after)

    return dataclasses.replace(ep, task=task, pool=[redo(e) for e in ep.pool], query=redo(ep.query),
                               text_examples=tuple(redo(e) for e in ep.text_examples))


def _video_episode(task, rng, seed, cfg, pool_size, combos):
    movers = [e for e in EVENTS if e.startswith("moves")]

    def example():
        if task == "direction":
            clip = draw_clip(rng, cfg.clip_frames, combos, event=rng.choice(movers))
            return Example(clip, "moves", clip.event.split()[1])
        clip = draw_clip(rng, cfg.clip_frames, combos)
        return Example(clip, "", clip.caption)

    examples = [example() for _ in range(pool_size + 3)]
    pool, query, text = examples[:pool_size], examples[pool_size], examples[pool_size + 1:]
    candidates = tuple(DIRECTIONS) if task == "direction" else clip_candidates(query.scene, rng)
    return Episode(task, task, pool, query, tuple(candidates), tuple(text), seed)


def caption_candidates(scene, rng):
    """The true caption and three distractors that each change one attribute (colour, shape, size or position)."""
    d = describe(scene)
    truth = caption(scene)
    distractors = []
    for key, values in (("colour", COLOURS), ("shape", SHAPES), ("size", SIZES), ("position", POSITIONS)):
        other = dict(d, **{key: rng.choice([v for v in values if v != d[key]])})
        distractors.append(f"a {other['size']} {other['colour']} {other['shape']} at {other['position']}")
    chosen = rng.sample(distractors, 3) + [truth]
    rng.shuffle(chosen)
    return chosen


def token_f1(prediction, truth):
    """Word-overlap F1 between two strings (captioning's open-ended score)."""
    p, t = prediction.split(), truth.split()
    common = sum((Counter(p) & Counter(t)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(p), common / len(t)
    return 2 * precision * recall / (precision + recall)


def score(task, prediction, truth, mode="open"):
    """One answer's score: token F1 for open-ended captions, exact match otherwise (every close-ended answer, and an
    event's caption: the one word that says which way the clip runs is the point, and F1 would give it 80%)."""
    if prediction is None:
        return 0.0
    return token_f1(prediction, truth) if task == "caption" and mode == "open" else float(prediction.strip() == truth)
