"""The toy world and its renderer: coloured shapes drawn with signed-distance functions, in pure torch.

A scene is 1 to 4 objects on a 3x3 grid. Each object has a shape, a colour, a size and a grid cell. The renderer turns
a batch of scenes into RGB images in one call: every object's signed distance d (negative inside) is evaluated on a
coordinate grid and turned into coverage with a one-pixel linear ramp, `alpha = clamp(0.5 - d / pixel, 0, 1)`, which is
the anti-aliasing. Randomness (position jitter, colour jitter, pixel noise) comes from a `torch.Generator`, so the same
seed gives the same pixels.

Shapes: B scenes, M objects in all, H = W image size, coordinates in [-1, 1] (y grows downwards).

Held-out split (see HELD_OUT): 12 of the 36 colour x shape combinations are never rendered by a training stream; the
evaluation episodes use only them, so few-shot accuracy measures composition, not memory.
"""
from dataclasses import dataclass

import torch

SHAPES = ("circle", "square", "triangle", "diamond", "cross", "ring")
PLURALS = ("circles", "squares", "triangles", "diamonds", "crosses", "rings")
COLOURS = ("red", "orange", "yellow", "green", "blue", "purple")
RGB = torch.tensor([
    [0.90, 0.12, 0.12],  # red
    [1.00, 0.55, 0.05],  # orange
    [0.95, 0.90, 0.15],  # yellow
    [0.15, 0.75, 0.20],  # green
    [0.15, 0.35, 0.95],  # blue
    [0.65, 0.20, 0.85],  # purple
])
SIZES = ("small", "medium", "big")
RADII = (0.20, 0.27, 0.34)  # half-widths in [-1, 1] units: a big shape is ~11 px wide at 32 px
POSITIONS = ("top-left", "top", "top-right", "left", "center", "right", "bottom-left", "bottom", "bottom-right")
COUNTS = ("one", "two", "three", "four")
BACKGROUND = 0.08
GREY = 0.7  # objects drawn colourless (render(grey=True)): a shape that carries no colour
CELL = 0.6  # grid-cell centres at -0.6, 0, 0.6
# What every stream and every evaluation episode draws: 32-px pictures with a little colour jitter and pixel noise, so
# that no two pictures of one scene are identical.
IMAGE_SIZE = 32
COLOUR_JITTER = 0.04  # per-object RGB offset
NOISE = 0.02          # per-pixel Gaussian std

# Each colour keeps two shapes out of training, three apart, so every colour and every shape is held out exactly twice:
# the model has seen every word, never these pairings.
HELD_OUT = frozenset((c, (c + o) % len(SHAPES)) for c in range(len(COLOURS)) for o in (0, 3))
TRAIN_COMBOS = tuple((c, s) for c in range(len(COLOURS)) for s in range(len(SHAPES)) if (c, s) not in HELD_OUT)
EVAL_COMBOS = tuple(sorted(HELD_OUT))


@dataclass(frozen=True)
class Obj:
    shape: int
    colour: int
    size: int
    cell: int  # 0..8, row-major from top-left
    # Where a frame of a clip has the object between cells or between sizes (toy_data/clips.py): an offset from its
    # cell's centre in [-1, 1] units, and a factor on its size's radius. Stills keep the defaults.
    dx: float = 0.0
    dy: float = 0.0
    scale: float = 1.0


@dataclass(frozen=True)
class Scene:
    objects: tuple  # of Obj, 1 to 4, in distinct cells

    def __post_init__(self):
        if not 1 <= len(self.objects) <= 4:
            raise ValueError(f"a scene holds 1 to 4 objects, got {len(self.objects)}")
        if len({o.cell for o in self.objects}) != len(self.objects):
            raise ValueError("two objects of one scene share a grid cell; give each its own cell (0..8)")


# Signed distances in the object's own frame, unit half-width: negative inside, ~1 unit = 1 half-width.
def _box(x, y, bx, by):
    qx, qy = x.abs() - bx, y.abs() - by
    outside = torch.sqrt(qx.clamp(min=0) ** 2 + qy.clamp(min=0) ** 2)
    return outside + torch.maximum(qx, qy).clamp(max=0)


def _triangle(x, y):  # equilateral, pointing up (Inigo Quilez's exact SDF)
    k = 3 ** 0.5
    y = -y + 0.35  # image rows grow downwards; the shift centres the triangle's mass in its cell
    x = x.abs() - 1.0
    y = y + 1.0 / k
    flip = x + k * y > 0
    x, y = torch.where(flip, (x - k * y) / 2, x), torch.where(flip, (-k * x - y) / 2, y)
    x = x - x.clamp(-2.0, 0.0)
    return -torch.sqrt(x * x + y * y) * torch.sign(y)


SDF = (
    lambda x, y: torch.sqrt(x * x + y * y) - 1.0,                              # circle
    lambda x, y: _box(x, y, 0.85, 0.85),                                        # square
    _triangle,                                                                  # triangle
    lambda x, y: (x.abs() + y.abs() - 1.0) * 0.7071,                            # diamond
    lambda x, y: torch.minimum(_box(x, y, 1.0, 0.32), _box(x, y, 0.32, 1.0)),  # cross
    lambda x, y: (torch.sqrt(x * x + y * y) - 0.68).abs() - 0.30,               # ring
)


def render(scenes, size=IMAGE_SIZE, generator=None, jitter=0.06, colour_jitter=COLOUR_JITTER, noise=NOISE,
           grey=False):
    """Render a list of Scenes to a float tensor (B, 3, size, size) in [0, 1].

    jitter: position jitter in [-1, 1] units; colour_jitter: per-object RGB offset; noise: per-pixel Gaussian std.
    grey: draw every object in one neutral grey, so the image shows shapes and no colour at all.
    """
    return render_groups([(scenes, generator, grey)], size, jitter, colour_jitter, noise)[0]


def render_groups(groups, size=IMAGE_SIZE, jitter=0.06, colour_jitter=COLOUR_JITTER, noise=NOISE, device=None):
    """Render several groups of scenes in one batched call: groups is a list of (scenes, generator, grey). A scene is
    anything with `objects`, which may be empty: a frame of a clip may show nothing (clips.Frame).

    Each group draws its randomness from its own generator, in the order `render` would, so a group's pixels are the
    same whether it is rendered alone or with others (a training sample stays a pure function of its seed). Returns
    one (B_g, 3, size, size) tensor per group.

    device: where the pixels are computed (default the CPU). The random draws are always made on the CPU, from the
    groups' generators, so a sample's picture is the same on every device up to float rounding; on a GPU only those
    few numbers cross over, and the signed distances, coverage and noise are computed there.
    """
    if size < 16:
        raise ValueError(f"image size {size} is too small to tell shapes apart; use 16 or more")
    # One row per object (M in all) and the image it belongs to: no padding, no wasted SDF evaluations.
    objs, draws, owner_base = [], [], 0
    for scenes, generator, grey in groups:
        rows = [(owner_base + b, o.shape, o.colour, o.size, o.cell, grey, o.dx, o.dy, o.scale)
                for b, sc in enumerate(scenes) for o in sc.objects]
        m = len(rows)
        draws.append((torch.rand(m, generator=generator), torch.rand(m, generator=generator),
                      torch.rand(m, 3, generator=generator),
                      torch.randn(len(scenes), 3, size, size, generator=generator) if noise > 0 else None))
        objs += rows
        owner_base += len(scenes)
    M, B = len(objs), owner_base
    dev = torch.device("cpu") if device is None else torch.device(device)
    owner, _, colour, sz, cell, colourless = torch.tensor([o[:6] for o in objs], dtype=torch.long).view(
        M, 6).to(dev).unbind(-1)                                                 # each (M,)
    dx, dy, scale = torch.tensor([o[6:] for o in objs], dtype=torch.float).view(M, 3).to(dev).unbind(-1)
    jx, jy, jc = (torch.cat([d[k] for d in draws]).to(dev) for k in range(3))  # (M,), (M,), (M, 3)
    r = torch.tensor(RADII, device=dev)[sz] * scale                              # (M,)
    cx = ((cell % 3).float() - 1) * CELL + jitter * (2 * jx - 1) + dx
    cy = ((cell // 3).float() - 1) * CELL + jitter * (2 * jy - 1) + dy
    rgb = torch.where(colourless.bool()[:, None], torch.full((M, 3), GREY, device=dev), RGB.to(dev)[colour])  # (M, 3)
    rgb = rgb + colour_jitter * (2 * jc - 1)

    axis = (torch.arange(size, device=dev) + 0.5) / size * 2 - 1                             # pixel centres in [-1, 1]
    x = ((axis.view(1, 1, size) - cx.view(M, 1, 1)) / r.view(M, 1, 1)).expand(M, size, size)  # (M, H, W), unit frame
    y = ((axis.view(1, size, 1) - cy.view(M, 1, 1)) / r.view(M, 1, 1)).expand(M, size, size)
    d = torch.empty(M, size, size, device=dev)
    for s, sdf in enumerate(SDF):  # evaluate each shape's SDF only on the objects that have that shape
        rows = [m for m, o in enumerate(objs) if o[1] == s]   # found on the host: no read of the device
        if rows:
            idx = torch.tensor(rows).to(dev, non_blocking=True)
            d[idx] = sdf(x[idx], y[idx])
    pixel = 2.0 / size
    alpha = (0.5 - d * r.view(M, 1, 1) / pixel).clamp(0, 1)                      # (M, H, W) coverage

    # Objects sit in distinct cells and do not overlap, so coverage and paint simply add up per image.
    cover = torch.zeros(B, size, size, device=dev).index_add_(0, owner, alpha)  # (B, H, W)
    paint = torch.zeros(B, 3, size, size, device=dev).index_add_(0, owner, alpha[:, None] * rgb[:, :, None, None])
    img = BACKGROUND * (1 - cover.clamp(max=1))[:, None] + paint                # (B, 3, H, W)
    if noise > 0:
        img = img + noise * torch.cat([d[3] for d in draws]).to(dev)
    return list(img.clamp(0, 1).split([len(g[0]) for g in groups]))


def describe(scene):
    """The attribute words of a scene: colour, shape, size, position of its first object, and the count."""
    o = scene.objects[0]
    return {"colour": COLOURS[o.colour], "shape": SHAPES[o.shape], "size": SIZES[o.size],
            "position": POSITIONS[o.cell], "count": COUNTS[len(scene.objects) - 1]}
