"""Training streams: a text-only corpus, image-caption pairs, and interleaved image-text documents (our M3W).

Each stream is indexable and seeded: sample i is a pure function of (seed, i), so a resumed run sees exactly the data an
uninterrupted one would, and two runs with one seed see the same data. No training stream renders a held-out colour x
shape combination (shapes.HELD_OUT), and no stream with images uses an evaluation nonce word (vocab.EVAL_NONCE).

Formats (paper section 2.3: `<image>` where an image stood, `<EOC>` ending each chunk):
    text      <bos> a big red circle at top-left . what colour ? red . <eos> red dax . blue wug . red dax . <eos> ...
              (the video preset's text adds `a red circle moves up : moves up .`)
    pair      <bos> <image> a big red circle at top-left <EOC>
    document  <bos> <image> chunk <EOC> <image> chunk <EOC> ...   1 to max_images images, one hidden task per document
    video     <bos> <image> a red circle moves left <EOC>         a clip (clips.py) where `<image>` stands, or a
              <bos> <image> moves up <EOC> <image> moves left <EOC> ...   document of 2 to VIDEO_MAX_CLIPS clips
`<image>` marks one media item, a still or a clip, as in the paper: the mask and the LM need not know which it is.

Document tasks: caption; question (one attribute per document); count; infer (bare answers about one hidden attribute:
`<image> red <EOC> <image> blue <EOC>`); bind (a per-document mapping from one attribute's values to nonce words,
`<image> : dax <EOC>`: the `:` gives each image a second position, as `red circle dax .` has two words in the LM's
text, so that the LM's own binding skill can be reused). Binding chunks, in documents and in the LM's concept-binding
text alike, come in the surface forms of data.bind_formats and data.text_formats (formats.py: other words before or
after the label).

Which targets carry loss (`Sample.loss_mask`, True where token t is predicted from t-1 and scored):
- never `<bos>`, `<image>` (it is given, not predicted), padding, or text before the first image;
- in an infer document, not the first answer: which attribute is asked cannot be known before one example;
- in a bind document, a label only where its value appeared earlier in the document (a first occurrence is a coin flip
  over nonce words, and its gradient teaches a prior over labels instead of reading the context); of a chunk's other
  words, those after the label, not those before it (as the plain format's `:` is not scored).
"""
import random
from dataclasses import dataclass

import torch

from . import formats
from .clips import EVENTS, draw_clip, render_clip_groups
from .formats import chunk_formats, fits
from .shapes import (COLOURS, COUNTS, IMAGE_SIZE, PLURALS, POSITIONS, SHAPES, SIZES, TRAIN_COMBOS, Obj, Scene,
                     describe, render_groups)
from .settings import check, knob
from .vocab import NONCE, TOKENIZER, TRAIN_NONCE

ATTRIBUTES = ("colour", "shape", "size", "position", "count")
VALUES = {"colour": COLOURS, "shape": SHAPES, "size": SIZES, "position": POSITIONS, "count": COUNTS}
QUESTION = {"colour": "what colour ?", "shape": "what shape ?", "size": "what size ?", "position": "where ?",
            "count": "how many ?"}
DOC_TASKS = ("caption", "question", "count", "infer", "bind")
TEXT_KINDS = ("caption", "qa", "bind", "concept", "infer", "event")
VIDEO_DOCS = ("clip", "events", "direction")  # one captioned clip; a document of captioned clips; of movers' directions
BIND_PREFIX = ":"  # `<image> : dax <EOC>`: two positions that see the image, as `red circle dax .` has two words
LONGEST_CHUNK = 8  # "<image> a big red circle at top-left <EOC>"
BIND_CHUNK = 4     # "<image> : dax <EOC>"
MAX_LEN = 48       # tokens per document or pair, padding included: one fixed length for every image-text stream
VIDEO_MAX_CLIPS = 4  # clips per video document: each clip is data.clip_frames pictures to encode, so fewer than stills


@dataclass(frozen=True)
class DataConfig:
    # The interleaved documents are read by the bridge's stage alone (stage="flamingo"), as are the mixture weights
    # and bind_redraw below: a pretrained LM or encoder serves any value of them.
    max_images: int = knob(5, lo=2, stage="flamingo")        # per interleaved document (the paper trains with 5)
    bind_max_images: int = knob(10, lo=2, stage="flamingo")  # per binding document: its chunks are short, and with 5
                                                             # images binding weakened beyond 4 shots (docs/recipe.md)
    text_len: int = knob(160, lo=16, stage="lm")   # tokens per packed text-corpus sequence
    ways: int = knob(3, lo=2, stage="flamingo")  # labels per binding document (the LM's text draws 2-4)
    bind_attributes: tuple = ("colour", "shape")
    # The chance that a task-inference document opens with two answers written without their pictures (zero-shot's
    # form: documents.py).
    infer_text: float = knob(0.25, 0, 1, stage="flamingo")
    bind_redraw: float = knob(0.75, 0, 1, stage="flamingo")  # chance that a binding image redraws all but its bound
                                                             # attribute
    text_bind_max_pairs: int = knob(24, lo=6, stage="lm")
    text_mix: tuple = knob(("caption", "qa", "bind", "bind", "concept", "concept", "infer"), stage="lm")  # kinds
    # The surface forms of binding examples (toy_data/formats.py) in the LM's concept-binding text and in the
    # interleaved binding documents; a declared format left out of both is held out, for the evaluation alone. Both
    # plain by default, on measurement (docs/recipe.md): in several formats the LM's copying came late, or never (seed
    # 1, 1500 steps), and with three formats in its documents the bridge's binding started late, or not within its
    # 1200 steps (seed 2).
    text_formats: tuple = knob(("plain",), stage="lm")
    bind_formats: tuple = knob(("plain",), stage="flamingo")
    # The chance that a concept-binding text draws its examples' other attribute from two values shared by all its
    # labels (`red circle tiv . blue circle vop . red square tiv .`): lures, which a label copied by any matching
    # word gets wrong. Off: lure-heavy text did not teach the LM to resist lures, and it bound worse without them
    # (docs/recipe.md).
    text_lures: float = knob(0.0, 0, 1, stage="lm")
    # The chance that a concept-binding example names its shape before its colour (`circle red tiv .`). In one fixed
    # order the word right before every label is the shape, which a head of the LM's first layer can match through its
    # smeared key (flamingo_min/lm.py): an LM may bind every shape that way and never grow the later head that binds
    # the colour (docs/incontext.md, "Two words, two kinds of head").
    text_swap: float = knob(0.0, 0, 1, stage="lm")
    w_caption: float = knob(1.0, lo=0, stage="flamingo")  # mixture weights of the interleaved-document tasks
    w_question: float = knob(1.0, lo=0, stage="flamingo")
    w_count: float = knob(1.0, lo=0, stage="flamingo")
    w_infer: float = knob(2.0, lo=0, stage="flamingo")
    w_bind: float = knob(2.0, lo=0, stage="flamingo")     # binding scores only repeated labels, ~4 tokens a document
    # Clips (the video stream, read by the bridge's stage only; `train.video_weight` puts it in the mixture).
    clip_frames: int = knob(4, lo=2, stage="flamingo")      # F, even: each clip's event happens halfway

    def __post_init__(self):
        check(self, "data")
        for name, allowed in (("bind_attributes", ATTRIBUTES), ("text_mix", TEXT_KINDS)):
            chosen = getattr(self, name)
            if any(a not in allowed for a in chosen):
                raise ValueError(f"data.{name}={','.join(map(str, chosen))}: choose from {', '.join(allowed)}")
        formats.check(self.text_formats, "data.text_formats")
        formats.check(self.bind_formats, "data.bind_formats")
        for a in self.bind_attributes:
            if self.ways > len(VALUES[a]):
                raise ValueError(f"data.ways={self.ways} but attribute {a!r} has only {len(VALUES[a])} values: "
                                 f"lower data.ways or remove {a!r} from data.bind_attributes")
        for name, chunk in (("max_images", LONGEST_CHUNK), ("bind_max_images", BIND_CHUNK)):
            need = 1 + getattr(self, name) * chunk
            if need > MAX_LEN:
                raise ValueError(f"data.{name}={getattr(self, name)} needs up to {need} tokens but a document holds "
                                 f"at most {MAX_LEN} (toy_data/documents.py: MAX_LEN): give at most "
                                 f"{(MAX_LEN - 1) // chunk}")
        if self.clip_frames % 2:
            raise ValueError(f"data.clip_frames={self.clip_frames}: give an even number (a clip's event happens "
                             "halfway, so that the clip played backwards shows the opposite event)")
        if sum(getattr(self, "w_" + t) for t in DOC_TASKS) == 0:
            raise ValueError("the mixture weights data.w_* are all 0: give at least one task a positive weight")


@dataclass
class Sample:
    tokens: torch.Tensor      # (T,) long
    loss_mask: torch.Tensor   # (T,) bool: True where token t is a scored target
    images: torch.Tensor      # (N, 3, H, W), N = 0 for text; clips (N, F, 3, H, W)
    task: str
    scenes: tuple = ()        # a Scene per image, or a clips.Clip per clip


@dataclass(frozen=True)
class Draft:
    """A sample before its pixels: `_Stream.render` draws many drafts' scenes in one call, each from its own seed."""
    tokens: torch.Tensor
    loss_mask: torch.Tensor
    task: str
    scenes: tuple
    image_seed: int
    grey: bool = False


def _rng(seed, stream, i):
    """One integer per (seed, stream, sample): the whole sample is a pure function of it."""
    return (seed * 1_000_003 + stream * 7_919 + i * 2_654_435_761) % (2 ** 62)


def draw_scene(rng, combos=TRAIN_COMBOS, colour=None, shape=None, size=None, position=None, count=1):
    """A random scene with the given attribute values fixed (indices), drawn only from the allowed combos."""
    allowed = [(c, s) for c, s in combos if colour in (None, c) and shape in (None, s)]
    if not allowed:
        raise ValueError(f"no allowed colour x shape combination has colour={colour}, shape={shape}")
    c, s = rng.choice(allowed)
    if count == 1:
        size = rng.randrange(3) if size is None else size
        cell = rng.randrange(9) if position is None else position
        return Scene((Obj(s, c, size, cell),))
    # Several objects: one colour and shape, small or medium so that neighbours never touch.
    return Scene(tuple(Obj(s, c, rng.randrange(2), cell) for cell in rng.sample(range(9), count)))


def caption(scene, colour=True):
    """`a big red circle at top-left` or `three red circles`; colour=False leaves the colour word out."""
    d = describe(scene)
    c = f"{d['colour']} " if colour else ""
    if len(scene.objects) > 1:
        return f"{d['count']} {c}{PLURALS[scene.objects[0].shape]}"
    return f"a {d['size']} {c}{d['shape']} at {d['position']}"


def attribute_scene(rng, attribute, combos=TRAIN_COMBOS):
    """A scene suited to asking about `attribute`: count scenes for counting, single objects otherwise."""
    return draw_scene(rng, combos, count=rng.randint(1, 4) if attribute == "count" else 1)


class _Stream:
    """Sample i is `stream[i]`; `stream.batch(indices)` gives the same samples, their pictures drawn in one call (on
    `device` if given: shapes.render_groups)."""
    code = 0

    def __init__(self, cfg: DataConfig, seed: int = 0):
        self.cfg, self.seed = cfg, seed

    def __getitem__(self, i):
        return self.render([self.draft(i)])[0]

    def batch(self, indices, device=None):
        return self.render([self.draft(i) for i in indices], device)

    def _start(self, i):
        if i < 0:
            raise IndexError(f"sample index {i} is negative")
        return random.Random(_rng(self.seed, self.code, i))

    def _draft(self, tokens, mask, task, scenes, i, grey=False, code=100):
        return Draft(tokens, mask, task, tuple(scenes), _rng(self.seed, self.code + code, i), grey)

    def render(self, drafts, device=None):
        """Samples with their pictures: every draft's scenes rendered in one batched call (9x faster than one call
        per sample, measured on 128 pictures), each draft from its own seed, so that it is the same either way."""
        groups = [(d.scenes, torch.Generator().manual_seed(d.image_seed), d.grey) for d in drafts if d.scenes]
        pictures = iter(render_groups(groups, device=device) if groups else ())
        empty = torch.zeros(0, 3, IMAGE_SIZE, IMAGE_SIZE, device=device)
        return [Sample(d.tokens, d.loss_mask, next(pictures) if d.scenes else empty, d.task, d.scenes)
                for d in drafts]


def _assemble(chunks, scored):
    """Token ids and loss mask for `<bos>` + chunks; `scored[k]` says which words of chunk k are targets."""
    ids, mask = [TOKENIZER.bos_id], [False]
    for words, score in zip(chunks, scored):
        toks = TOKENIZER.encode(words)
        ids += toks
        mask += [bool(s) and t != TOKENIZER.image_id for t, s in zip(toks, score)]
    return torch.tensor(ids), torch.tensor(mask)


def concept_words(rng, bound, value, others=None):
    """`colour shape` of a training combination whose bound attribute (0 colour, 1 shape) has `value`; the other
    attribute is drawn at random, from `others` (indices) where a training combination allows: the words of one
    concept-binding key."""
    combos = [cs for cs in TRAIN_COMBOS if cs[bound] == value]
    c, s = rng.choice([cs for cs in combos if others is None or cs[1 - bound] in others] or combos)
    return f"{COLOURS[c]} {SHAPES[s]}"


class TextCorpus(_Stream):
    """Packed text-only sequences of exactly cfg.text_len tokens, for pretraining the LM (no <image>, no <EOC>)."""
    code = 1

    def _doc(self, rng, side):
        """One document; `side` draws what the original recipe did not have (formats, lures), so that with none of
        them the text is the very text that recipe drew."""
        kind = rng.choice(self.cfg.text_mix)
        if kind == "caption":
            return caption(draw_scene(rng, count=rng.choice((1, 1, 1, 2, 3, 4)))) + " ."
        if kind == "qa":
            a = rng.choice(ATTRIBUTES)
            scene = attribute_scene(rng, a)
            return f"{caption(scene)} . {QUESTION[a]} {describe(scene)[a]} ."
        if kind == "event":  # what clips will show, then what happened again: `a red circle moves up : moves up .`
            # The repeat is what makes the LM tell `up` from `down`: in captions alone they fill the very same slot,
            # and the frozen LM gave them near-equal embeddings (measured: up/down confused 26 times in 50, left/right,
            # which position questions make it copy, 2 in 50).
            clip = draw_clip(rng, self.cfg.clip_frames)
            return f"{clip.caption} : {clip.event} ."
        if kind == "infer":  # text-only task inference: the answers show which attribute is wanted
            a = rng.choice(ATTRIBUTES)
            scenes = [attribute_scene(rng, a) for _ in range(rng.randint(2, 6))]
            return " ".join(f"{caption(s)} : {describe(s)[a]} ." for s in scenes)
        if kind == "concept":  # concept binding: `red circle dax . red square dax . blue circle wug . red ring`
            a = rng.randrange(2)                                       # the bound attribute: 0 colour, 1 shape
            ways = rng.randint(2, 4)
            values, labels = rng.sample(range(len((COLOURS, SHAPES)[a])), ways), rng.sample(NONCE, ways)
            pairs = rng.randint(ways, self.cfg.text_bind_max_pairs)
            others = side.sample(range(len((SHAPES, COLOURS)[a])), 2) if side.random() < self.cfg.text_lures else None
            out = []
            for p, f in zip((rng.randrange(ways) for _ in range(pairs)),
                            chunk_formats(side, self.cfg.text_formats, pairs)):
                facts = {"size": side.choice(SIZES), "position": side.choice(POSITIONS), "count": COUNTS[0]}
                words = concept_words(rng, a, values[p], others)
                if self.cfg.text_swap and side.random() < self.cfg.text_swap:
                    words = " ".join(reversed(words.split()))                  # `circle red`
                out.append(f.text(side, words, labels[p], facts, ATTRIBUTES[a]))
            return " ".join(out)
        # Binding with attribute words where images will later stand: `red dax . blue wug . red dax .`
        values = VALUES[rng.choice(ATTRIBUTES)]
        ways = rng.randint(2, min(6, len(values)))
        keys, labels = rng.sample(values, ways), rng.sample(NONCE, ways)  # both nonce pools: the LM must read them all
        pairs = rng.randint(ways, self.cfg.text_bind_max_pairs)
        picks = [rng.randrange(ways) for _ in range(pairs)]
        return " ".join(f"{keys[p]} {labels[p]} ." for p in picks)

    def draft(self, i):
        rng, side = self._start(i), random.Random(_rng(self.seed, self.code + 400, i))
        words = []
        while len(words) < self.cfg.text_len:
            words += self._doc(rng, side).split() + ["<eos>"]
        tokens = torch.tensor([TOKENIZER.bos_id] + TOKENIZER.encode(" ".join(words[: self.cfg.text_len - 1])))
        mask = torch.ones_like(tokens, dtype=torch.bool)
        mask[0] = False
        return self._draft(tokens, mask, "text", (), i)


class PairStream(_Stream):
    """Image-caption pairs `<bos> <image> caption <EOC>`: contrastive pretraining and Flamingo's pair stream."""
    code = 2

    def scene(self, i):
        """Sample i's scene alone, without rendering it."""
        rng = self._start(i)
        return draw_scene(rng, count=1 if rng.random() < 0.8 else rng.randint(2, 4))

    def draft(self, i, kind="pair"):
        """Sample i as a plain pair, as its `twin` or as its `grey` variant, before its picture is drawn."""
        scene = self.scene(i)
        if kind == "twin":
            scene = twin_scene(random.Random(_rng(self.seed, self.code + 200, i)), scene)
        tokens, mask = _assemble([f"<image> {caption(scene, colour=kind != 'grey')} <EOC>"], [[1] * LONGEST_CHUNK])
        if kind == "grey":
            return self._draft(tokens, mask, "grey", [scene], i, grey=True, code=300)
        return self._draft(tokens, mask, "pair", [scene], -1 - i if kind == "twin" else i)

    def twin(self, i):
        """Sample i's minimal-pair twin: its scene with one attribute changed, captioned to match."""
        return self.render([self.draft(i, "twin")])[0]

    def grey(self, i):
        """Sample i drawn colourless and captioned without its colour word (`a big circle at top-left`).

        Colour augmentation for contrastive pretraining (the paper uses colour augmentation too). Inside the training
        combinations colour predicts shape ("red is never a circle"), and an encoder that leans on that shortcut
        fails on exactly the held-out combinations; a colourless shape can only be named by its outline. A grey
        object is no colour x shape combination, so the held-out split stays unseen."""
        return self.render([self.draft(i, "grey")])[0]


def twin_scene(rng, scene, combos=TRAIN_COMBOS):
    """The same scene with one attribute changed (the shape half of the time): a minimal-pair negative.

    Contrastive pretraining with random negatives can tell most scenes apart by colour, size and position alone, and
    inside the training combinations colour even predicts shape; a prototype's encoder then hardly encoded shape
    (probe: 47% on training combinations, 2% on held-out ones). A twin that differs only in shape makes shape pay."""
    o, n = scene.objects[0], len(scene.objects)
    attr = "shape" if rng.random() < 0.5 else rng.choice(("colour", "size", "position", "count"))
    if attr in ("colour", "shape"):
        other = [(c, s) for c, s in combos if (c, s) != (o.colour, o.shape) and
                 (c == o.colour if attr == "shape" else s == o.shape)]
        c, s = rng.choice(other)
        return Scene(tuple(Obj(s, c, x.size, x.cell) for x in scene.objects))
    if n > 1 or attr == "count":
        k = rng.choice([m for m in range(1, 5) if m != n])
        return draw_scene(rng, combos, colour=o.colour, shape=o.shape, count=k)
    if attr == "size":
        return Scene((Obj(o.shape, o.colour, rng.choice([z for z in range(3) if z != o.size]), o.cell),))
    return Scene((Obj(o.shape, o.colour, o.size, rng.choice([c for c in range(9) if c != o.cell])),))


class DocumentStream(_Stream):
    """Interleaved documents (our M3W): 1 to max_images images, each followed by a chunk of text ending in <EOC>.

    A curriculum, if `ramp` > 0: the binding images of documents [0, ramp) redraw their unbound attributes with a
    chance rising linearly from 0 to data.bind_redraw (train.redraw_ramp), so that binding starts on documents where
    any feature matches, and ends on the concept binding the evaluation asks for."""
    code = 3

    def __init__(self, cfg: DataConfig, seed: int = 0, ramp: int = 0):
        super().__init__(cfg, seed)
        self.ramp = ramp

    def draft(self, i):
        rng = self._start(i)
        cfg = self.cfg
        task = rng.choices(DOC_TASKS, [getattr(cfg, "w_" + t) for t in DOC_TASKS])[0]
        n = rng.randint(1 if task in ("caption", "question", "count") else 2,
                        cfg.bind_max_images if task == "bind" else cfg.max_images)
        if task == "bind":
            scenes, chunks, scored = self._bind(rng, n, random.Random(_rng(self.seed, self.code + 400, i)), i)
        else:
            a = {"caption": None, "count": "count", "question": rng.choice(ATTRIBUTES[:4]),
                 "infer": rng.choice(ATTRIBUTES)}[task]
            scenes = [attribute_scene(rng, a or "colour") for _ in range(n)]
            if task == "caption":
                texts = [caption(s) for s in scenes]
            elif task == "infer":
                texts = [describe(s)[a] for s in scenes]
            else:
                texts = [f"{QUESTION[a]} {describe(s)[a]}" for s in scenes]
            chunks = [f"<image> {t} <EOC>" for t in texts]
            # An infer document's first answer is unknowable (which attribute?); its <EOC> is still scored. Unless the
            # document opens with two answers written without their pictures (`red <EOC> blue <EOC> <image> ...`),
            # as a page may say what it is about before its first picture, and as the paper's zero-shot prompts do.
            side = random.Random(_rng(self.seed, self.code + 400, i))
            lead = task == "infer" and side.random() < cfg.infer_text
            scored = [[0, 0, 1] if task == "infer" and k == 0 and not lead else [1] * LONGEST_CHUNK for k in range(n)]
            if lead:
                chunks = [f"{describe(attribute_scene(side, a))[a]} <EOC>" for _ in range(2)] + chunks
                scored = [[0, 0]] * 2 + scored       # text before the first picture is never scored
        tokens, mask = _assemble(chunks, scored)
        return self._draft(tokens, mask, task, scenes, i)

    def _bind(self, rng, n, side, i):
        # Each chunk's format (formats.py) is drawn by `side`, so that plain-only documents are those of the original
        # recipe; as many chunks as fit in MAX_LEN.
        chunk_fmts = chunk_formats(side, self.cfg.bind_formats, n)
        n = max(2, fits(chunk_fmts, MAX_LEN - 1))
        a = rng.choice(self.cfg.bind_attributes)
        ways = self.cfg.ways
        values = rng.sample(range(len(VALUES[a])), ways)
        labels = rng.sample(TRAIN_NONCE, ways)
        # Each image redraws all but its bound attribute with chance data.bind_redraw (concept binding, as evaluated);
        # otherwise it repeats its label's one look. Repeated looks are what lets binding start: any feature matches.
        # Measured over the bridge's first 800-1200 steps: with no repeated looks binding never started (2 of 2
        # runs); with repeated looks only, it started in 2 of 2 but other tasks generalised worse. The curriculum
        # (`ramp`) gives each its part of the run: repeated looks first, redrawn ones more and more.
        looks = [bind_look(rng, a, v) for v in values]
        chance = self.cfg.bind_redraw * (min(1.0, i / self.ramp) if self.ramp else 1.0)
        picks = [rng.randrange(ways) for _ in range(n - 1)]
        picks.append(rng.choice(picks))  # bursty: the last image repeats a value seen before
        scenes, chunks, scored, seen = [], [], [], set()
        for p, f in zip(picks, chunk_fmts):
            redraw = rng.random() < chance
            scenes.append(bind_scene(rng, a, values[p], None if redraw else looks[p]))
            before, after = f.parts(side, describe(scenes[-1]), a)
            chunks.append(" ".join(w for w in ("<image>", before, labels[p], after, "<EOC>") if w))
            # Scored: the label where its value appeared before, and every word after it (true of the picture).
            scored.append([0] * (1 + len(before.split())) + [int(p in seen)] + [1] * (len(after.split()) + 1))
            seen.add(p)
        return scenes, chunks, scored


class VideoStream(_Stream):
    """Clips with text (our video-text data; the paper's VTP): a clip and its caption, or a document of 2 to
    VIDEO_MAX_CLIPS clips, each followed by its caption or, in a document of movers, by where it goes. Every token
    but `<bos>` and `<image>` is scored; a sample's images are its clips' frames, (N, F, 3, H, W).

    A document holds clips or stills, never both (our choice): a batch's media then share one shape, and nothing is
    padded to F frames. The model itself takes either (tests/test_video.py: an image is exactly a 1-frame clip)."""
    code = 4

    def draft(self, i):
        rng = self._start(i)
        task = rng.choice(VIDEO_DOCS)
        n = 1 if task == "clip" else rng.randint(2, VIDEO_MAX_CLIPS)
        movers = [e for e in EVENTS if e.startswith("moves")]
        clips = [draw_clip(rng, self.cfg.clip_frames, event=rng.choice(movers) if task == "direction" else None)
                 for _ in range(n)]
        chunks = [f"<image> {clip.event if task == 'direction' else clip.caption} <EOC>" for clip in clips]
        tokens, mask = _assemble(chunks, [[1] * LONGEST_CHUNK] * n)
        return self._draft(tokens, mask, f"video {task}", clips, i)

    def render(self, drafts, device=None):
        """As for stills: every draft's frames drawn in one call, each draft from its own seed."""
        groups = [(d.scenes, torch.Generator().manual_seed(d.image_seed)) for d in drafts]
        clips = render_clip_groups(groups, device=device)
        return [Sample(d.tokens, d.loss_mask, x, d.task, d.scenes) for d, x in zip(drafts, clips)]


def bind_look(rng, attribute, value, combos=TRAIN_COMBOS):
    """The unbound attributes of one bound value, drawn once per document: a dict of fixed attribute indices."""
    if attribute == "count":
        o = draw_scene(rng, combos).objects[0]
        return {"colour": o.colour, "shape": o.shape, "count": value + 1}
    o = draw_scene(rng, combos, **{attribute: value}).objects[0]
    return {"colour": o.colour, "shape": o.shape, "size": o.size, "position": o.cell}


def bind_scene(rng, attribute, value, look, combos=TRAIN_COMBOS):
    """A scene showing `value` of `attribute`; `look` fixes the rest, or None to redraw it (concept binding)."""
    if look is None:
        look = bind_look(rng, attribute, value, combos)
    if attribute == "count":
        return draw_scene(rng, combos, colour=look["colour"], shape=look["shape"], count=look["count"])
    return draw_scene(rng, combos, **look)


def collate(samples, pad_id=TOKENIZER.pad_id):
    """Right-pad a list of Samples: ids (B, T), loss_mask (B, T), images (B, N, 3, H, W) (clips: (B, N, F, 3, H, W)),
    counts (B,)."""
    shapes = {s.images.shape[1:] for s in samples if len(s.images)}
    if len(shapes) > 1:
        raise ValueError(f"one batch holds media of shapes {sorted(map(tuple, shapes))}: batch stills and clips "
                         "(or clips of different lengths) separately")
    if shapes:   # a text sample's empty (0, 3, H, W) pictures take the batch's media shape
        shape = shapes.pop()
        media = [s.images if len(s.images) else s.images.new_zeros(0, *shape) for s in samples]
    else:
        media = [s.images for s in samples]
    pad = lambda rows, value: torch.nn.utils.rnn.pad_sequence(rows, batch_first=True, padding_value=value)
    return (pad([s.tokens for s in samples], pad_id), pad([s.loss_mask for s in samples], False), pad(media, 0.0),
            torch.tensor([len(s.images) for s in samples]))
