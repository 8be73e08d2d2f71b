"""Held-out few-shot evaluation episodes (paper App. A.2): support examples first, the query last.

Every image of every episode is drawn from the held-out colour x shape combinations (shapes.EVAL_COMBOS), which no
training stream renders, and binding labels come from the evaluation nonce pool (vocab.EVAL_NONCE), which no stream
with images uses. So a right answer must come from composing what was learnt, or from reading the prompt.

Tasks, with the chunk each support example contributes (the query chunk stops where the answer would start):
    infer     <image> red <EOC>                 the supports alone say which attribute is wanted
    bind      <image> tiv <EOC>                 N-way: new labels bound to one attribute's values inside the prompt
    question  <image> what colour ? red <EOC>
    caption   <image> a big red circle at top-left <EOC>
    count     <image> how many ? three <EOC>
Zero-shot, as in the paper: two text-only examples of the task (no image), then the query.

Shots k up to 16 exceed the 5 images of any training document; that is deliberate (paper section 2.3).
"""
import random
from collections import Counter
from dataclasses import dataclass

from .documents import ATTRIBUTES, QUESTION, VALUES, attribute_scene, bind_look, bind_scene, caption
from .shapes import COLOURS, EVAL_COMBOS, POSITIONS, SHAPES, SIZES, Scene, describe
from .vocab import EVAL_NONCE

TASKS = ("infer", "bind", "question", "caption", "count")
SHOTS = (0, 1, 2, 4, 8, 16)
INFER_ANSWERS = tuple(w for a in ATTRIBUTES for w in VALUES[a])


@dataclass(frozen=True)
class Example:
    scene: Scene
    prefix: str   # words between <image> and the answer ("" or a question)
    answer: str

    def chunk(self, with_image=True):
        words = ["<image>"] * with_image + [self.prefix, self.answer, "<EOC>"]
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

    def support(self, k):
        """The first k pool examples; for binding, one of them is swapped for the query's value if it is missing."""
        shots = list(self.pool[:k])
        if self.task == "bind" and k and all(e.answer != self.query.answer for e in shots):
            same = next(e for e in self.pool[k:] if e.answer == self.query.answer)
            shots[random.Random(self.seed * 31 + k).randrange(k)] = same
        return shots

    def baselines(self, k, support=None):
        """Answers of two context-only baselines: the most frequent label (ties: the latest) and the last label.
        They read the k supports given (default: support(k)), or the text-only examples at zero shots."""
        answers = [e.answer for e in (support if support is not None else self.support(k))] if k else [
            e.answer for e in self.text_examples]
        counts = Counter(answers)
        top = max(counts.values())
        majority = next(a for a in reversed(answers) if counts[a] == top)
        return {"majority": majority, "last": answers[-1]}


def build_prompt(support, query, text_examples=()):
    """The prompt's words: `<bos>`, each support chunk (or, at zero shots, the text-only examples), then the query's
    `<image>` and prefix. Returns (text, scenes) with one scene per `<image>` in the text, in order."""
    chunks = [e.chunk() for e in support] if support else [e.chunk(with_image=False) for e in text_examples]
    text = " ".join(["<bos>", *chunks, "<image>", query.prefix]).strip()
    return text, [e.scene for e in support] + [query.scene]


def make_episode(task, seed, ways=3, pool_size=32, combos=EVAL_COMBOS, bind_attributes=("colour", "shape"),
                 infer_attributes=ATTRIBUTES):
    """One episode of `task`, a pure function of seed. pool_size >= the largest shot count you will ask for."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}: choose from {', '.join(TASKS)}")
    rng = random.Random(seed)
    if task == "bind":
        a = rng.choice(bind_attributes)
        values = rng.sample(range(len(VALUES[a])), ways)
        labels = rng.sample(EVAL_NONCE, ways)
        looks = [bind_look(rng, a, v, combos) for v in values]
        picks = [j % ways for j in range(pool_size + 1)]
        rng.shuffle(picks)
        examples = [Example(bind_scene(rng, a, values[p], looks[p], combos), "", labels[p]) for p in picks]
        text = [Example(examples[0].scene, "", lb) for lb in rng.sample(labels, 2)]
        return Episode(task, a, examples[:-1], examples[-1], tuple(labels), tuple(text), seed)

    a = {"infer": rng.choice(infer_attributes), "question": rng.choice(ATTRIBUTES[:4]), "caption": "caption",
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


def score(task, prediction, truth):
    """Open-ended score: token F1 for captions, exact match otherwise."""
    return token_f1(prediction, truth) if task == "caption" else float(prediction.strip() == truth)
