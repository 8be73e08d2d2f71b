"""Clips: the toy world in time (paper section 2.1: a video's frames are encoded one by one by the frozen encoder, then
given learned temporal embeddings; an image is a 1-frame video).

A clip is F frames (F even) in which one object, the actor, does one thing:
    moves left | right | up | down    slides along its row or column, from one side of its cell to the other
    grows | shrinks                   from small to big, or back
    turns <colour>                    has one colour in the first half of the clip and another in the second
    appears | disappears              is absent in the first half, or in the second
With chance 1/2 a second object stands still beside it. Played backwards, every clip shows the opposite event
(`reverse`): a clip and its reverse hold the same set of frames, so a caption can only be right if the frames are read
in order. A caption names the actor by its first frame: `a red circle moves left`, `a blue square turns green`.

Frames are drawn by the image renderer (shapes.render_groups), each with its own position jitter and pixel noise, so a
still object shimmers by up to a pixel from frame to frame, as real video does. Held out as for images: every object of
a clip comes from the allowed colour x shape combinations, a turning actor in both its colours.

Shapes: B clips, F frames, H = W image size.
"""
from dataclasses import dataclass, replace

from .shapes import COLOUR_JITTER, COLOURS, IMAGE_SIZE, NOISE, RADII, SHAPES, TRAIN_COMBOS, Obj, render_groups

DIRECTIONS = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}   # y grows downwards
EVENTS = ("moves left", "moves right", "moves up", "moves down", "grows", "shrinks", "turns", "appears", "disappears")
OPPOSITE = {"moves left": "moves right", "moves right": "moves left", "moves up": "moves down",
            "moves down": "moves up", "grows": "shrinks", "shrinks": "grows", "appears": "disappears",
            "disappears": "appears"}
SPAN = 0.45                     # a mover's offset runs from -SPAN to +SPAN around its cell's centre (+-7 px at 32 px)
GROWTH = RADII[2] / RADII[0]    # grows: from a small object's radius to a big one's


@dataclass(frozen=True)
class Frame:
    objects: tuple  # of shapes.Obj, 0 to 2: an actor that has not appeared yet leaves a frame empty


@dataclass(frozen=True)
class Clip:
    frames: tuple   # of Frame, F of them
    colour: int     # the actor in the first frame it is in
    shape: int
    event: str      # the words after the actor's name: "moves left", "grows", "turns blue", ...

    @property
    def caption(self):
        return f"a {COLOURS[self.colour]} {SHAPES[self.shape]} {self.event}"


def reverse(clip):
    """The clip played backwards, captioned with the opposite event."""
    if clip.event.startswith("turns "):
        new = COLOURS.index(clip.event.split()[1])
        return Clip(clip.frames[::-1], new, clip.shape, f"turns {COLOURS[clip.colour]}")
    return Clip(clip.frames[::-1], clip.colour, clip.shape, OPPOSITE[clip.event])


def draw_clip(rng, frames=4, combos=TRAIN_COMBOS, event=None):
    """A random clip of `event` (one of EVENTS; default: any), every object from the allowed combinations."""
    if frames < 2 or frames % 2:
        raise ValueError(f"a clip has an even number of frames >= 2 (its event happens halfway), got {frames}")
    event = event or rng.choice(EVENTS)
    if event not in EVENTS:
        raise ValueError(f"unknown event {event!r}: choose from {', '.join(EVENTS)}")
    if event == "turns":   # a shape allowed in two colours
        shapes = sorted({s for _, s in combos if sum(s == t for _, t in combos) >= 2})
        if not shapes:
            raise ValueError("no shape has two allowed colours, so no actor can turn from one to the other")
        shape = rng.choice(shapes)
        colour, new = rng.sample([c for c, s in combos if s == shape], 2)
    else:
        colour, shape = rng.choice(combos)
    size = rng.randrange(2)   # small or medium: a big actor could brush its neighbour
    if event.startswith("moves"):
        ux, uy = DIRECTIONS[event.split()[1]]
        line = rng.randrange(3)                                    # the row (or column) it slides along
        cell = 3 * line + 1 if ux else 3 + line                    # the middle of that row (or column)
        busy = {3 * line + k for k in range(3)} if ux else {3 * k + line for k in range(3)}
    else:
        cell = rng.randrange(9)
        neighbours = {c for c in range(9) if abs(c // 3 - cell // 3) + abs(c % 3 - cell % 3) == 1}
        busy = {cell} | (neighbours if event in ("grows", "shrinks") else set())
    still = None
    if rng.random() < 0.5:
        others = [cs for cs in combos if cs != (colour, shape) and (event != "turns" or cs != (new, shape))]
        c, s = rng.choice(others)
        still = Obj(s, c, rng.randrange(2), rng.choice([x for x in range(9) if x not in busy]))

    out = []
    for k in range(frames):
        t, late = k / (frames - 1), 2 * k >= frames                # time in [0, 1]; in the second half
        actor = Obj(shape, colour, size, cell)
        if event.startswith("moves"):
            actor = replace(actor, dx=ux * SPAN * (2 * t - 1), dy=uy * SPAN * (2 * t - 1))
        elif event in ("grows", "shrinks"):
            grown = t if event == "grows" else 1 - t
            actor = replace(actor, size=0, scale=1 + (GROWTH - 1) * grown)
        elif event == "turns" and late:
            actor = replace(actor, colour=new)
        shown = not (event == "appears" and not late or event == "disappears" and late)
        out.append(Frame(((actor,) if shown else ()) + ((still,) if still else ())))
    said = f"turns {COLOURS[new]}" if event == "turns" else event
    return Clip(tuple(out), colour, shape, said)


def render_clip_groups(groups, size=IMAGE_SIZE, jitter=0.06, colour_jitter=COLOUR_JITTER, noise=NOISE, device=None):
    """As shapes.render_groups, for groups of (clips, generator): one (B_g, F, 3, size, size) tensor per group."""
    flat = [([f for clip in clips for f in clip.frames], generator, False) for clips, generator in groups]
    pictures = render_groups(flat, size, jitter, colour_jitter, noise, device)
    return [p.unflatten(0, (len(clips), -1)) for p, (clips, _) in zip(pictures, groups)]


def render_media(items, size=IMAGE_SIZE, generator=None, **kwargs):
    """Scenes -> (B, 3, H, W) as shapes.render does; clips -> (B, F, 3, H, W). Not both in one call."""
    if all(isinstance(x, Clip) for x in items) and items:
        return render_clip_groups([(items, generator)], size, **kwargs)[0]
    if any(isinstance(x, Clip) for x in items):
        raise ValueError("render stills and clips in separate calls: they make tensors of different shapes")
    return render_groups([(items, generator, False)], size, **kwargs)[0]


def clip_candidates(clip, rng):
    """The true caption and three distractors: the clip played backwards (only frame order tells it apart), another
    event, and the same event by an actor of another colour or shape."""
    others = [e for e in EVENTS if e != "turns" and e not in (clip.event, OPPOSITE.get(clip.event))]
    taken = {w for w in clip.caption.split() if w in COLOURS}                     # a turning actor has two colours
    if rng.random() < 0.5:
        actor = f"a {rng.choice([c for c in COLOURS if c not in taken])} {SHAPES[clip.shape]}"
    else:
        actor = f"a {COLOURS[clip.colour]} {rng.choice([s for s in SHAPES if s != SHAPES[clip.shape]])}"
    chosen = [clip.caption, reverse(clip).caption, f"a {COLOURS[clip.colour]} {SHAPES[clip.shape]} "
              f"{rng.choice(others)}", f"{actor} {clip.event}"]
    rng.shuffle(chosen)
    return chosen
