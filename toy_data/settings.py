"""Settings that know their allowed values: declared once, beside the default, and checked in one place.

    ways: int = knob(3, lo=2)           # a whole number, at least 2
    bind_redraw: float = knob(0.75, 0, 1)   # a finite number in [0, 1]
    bridge: str = choice("perceiver", ("perceiver", "mlp"))   # one of the names listed

`choice` declares a name from a list. Either may also record the one training stage that reads the setting
(`stage="flamingo"`): a checkpoint of an earlier stage does not depend on it (flamingo_min/train.py).

`knob` stores the range in the dataclass field's metadata; `check(settings, part)` checks every field of a settings
dataclass against its default's type and that range, and raises a ValueError that names the setting, the value and
what to give instead. The configuration's tests generate their bad values from the same declarations.
"""
import math
from dataclasses import field, fields


def knob(default, lo=None, hi=None, **metadata):
    """A dataclass field with a default and an allowed range (None: unbounded on that side)."""
    return field(default=default, metadata={"lo": lo, "hi": hi, **metadata})


def choice(default, options, **metadata):
    """A dataclass field whose value is one of a few names, the first of which is usually the paper's."""
    return field(default=default, metadata={"choices": tuple(options), **metadata})


def describe(f):
    """What a field accepts, in words: 'a whole number >= 1', 'a number in [0, 1]', 'true or false', ..."""
    kind = type(f.default)
    if kind is bool:
        return "true or false"
    if kind is str:
        return "one of " + ", ".join(f.metadata["choices"])
    if kind is tuple:
        return "a non-empty comma-separated list"
    lo, hi = f.metadata.get("lo"), f.metadata.get("hi")
    what = "a whole number" if kind is int else "a finite number"
    if lo is not None and hi is not None:
        return f"{what} in [{lo}, {hi}]"
    return what + (f" >= {lo}" if lo is not None else "") + (f" <= {hi}" if hi is not None else "")


def valid(f, value):
    """Does `value` fit field f's type and range?"""
    kind = type(f.default)
    if kind is bool:
        return isinstance(value, bool)
    if kind is str:
        return value in f.metadata["choices"]
    if kind is tuple:
        return isinstance(value, tuple) and len(value) > 0
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if kind is int and not isinstance(value, int):
        return False
    if not math.isfinite(value):
        return False
    lo, hi = f.metadata.get("lo"), f.metadata.get("hi")
    return (lo is None or value >= lo) and (hi is None or value <= hi)


def check(settings, part):
    """Raise ValueError for the first field of `settings` (a dataclass of section `part`) that is out of bounds."""
    for f in fields(settings):
        value = getattr(settings, f.name)
        if not valid(f, value):
            raise ValueError(f"{part}.{f.name}={value!r}: give {describe(f)}")
