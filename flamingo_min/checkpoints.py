"""Every file the project writes, written whole or not at all, and checkpoints read back with their provenance checked.

Writes go to a temporary file beside the target, then `os.replace` it, so a killed or failed command never leaves a
half-written or emptied file. Checkpoints carry the program's name, a format version and a SHA-256 fingerprint of
their contents: torch.load alone accepts most single-byte corruptions (measured: 255 of 300 flipped bytes loaded
silently, with wrong numbers). `load_checkpoint` turns an empty, truncated, corrupt, foreign or outdated file into a
CheckpointError that names the file and the fix.
"""
import ctypes
import hashlib
import io
import os

import torch

from .errors import CheckpointError, FlamingoError

PROGRAM = "flamingo-min"
FORMAT = 2  # bump when a checkpoint written by older code can no longer be read by this one
REQUIRED = ("stage", "step", "done", "config", "seed", "model", "optim", "rng", "elapsed")


def atomic_write(path, data: bytes):
    tmp = f"{path}.tmp"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except OSError as e:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise FlamingoError(f"cannot write {path}: {e.strerror or e}; choose another output path") from None


def write_text(text, path):
    atomic_write(path, text.encode())


def check_writable(path):
    """Fail early, before any work, if `path` cannot be written (its folder is created if missing)."""
    folder = os.path.dirname(path) or "."
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as e:
        raise FlamingoError(f"cannot create the folder of {path}: {e.strerror or e}; choose another path") from None
    if not os.access(folder, os.W_OK) or os.path.isdir(path):
        raise FlamingoError(f"cannot write {path}: choose another path")


def fingerprint(obj):
    """SHA-256 of a checkpoint's contents (dicts, lists, tuples, tensors, numbers, strings), independent of how
    torch lays them out on disk."""
    h = hashlib.sha256()

    def walk(x):
        if isinstance(x, dict):
            h.update(b"{")
            for k in sorted(x, key=str):
                walk(k), walk(x[k])
        elif isinstance(x, (list, tuple)):
            h.update(b"[")
            for v in x:
                walk(v)
        elif isinstance(x, torch.Tensor):
            t = x.detach().cpu().contiguous()
            h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
            h.update(ctypes.string_at(t.data_ptr(), t.numel() * t.element_size()))   # the raw bytes, no copy loop
        else:
            h.update(f"{type(x).__name__}:{x!r};".encode())

    walk(obj)
    return h.hexdigest()


def save_checkpoint(obj, path):
    obj = {"program": PROGRAM, "format": FORMAT, **obj}
    buf = io.BytesIO()
    torch.save({**obj, "sha256": fingerprint(obj)}, buf)
    atomic_write(path, buf.getvalue())


def retrain_hint(path):
    run, stage = os.path.dirname(path) or ".", os.path.basename(path).removesuffix(".pt")
    return f"delete it and retrain this stage with `python main.py train --out {run} --stage {stage}`"


def load_checkpoint(path):
    """A checkpoint dict, checked: written by this program, in this format, with every field present."""
    if not os.path.isfile(path):
        raise CheckpointError(f"{path} does not exist")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # any failure to parse is a damaged file: torch raises many kinds for many damages
        raise CheckpointError(f"{path} cannot be read ({type(e).__name__}): it is empty, truncated or corrupt; "
                              f"{retrain_hint(path)}") from None
    if not isinstance(obj, dict) or obj.get("program", PROGRAM if "stage" in obj else None) != PROGRAM:
        raise CheckpointError(f"{path} was not written by flamingo-min; {retrain_hint(path)}")
    if obj.get("format") != FORMAT:
        raise CheckpointError(f"{path} was written by another version of flamingo-min (checkpoint format "
                              f"{obj.get('format')}, this code reads {FORMAT}); {retrain_hint(path)}")
    missing = [k for k in REQUIRED + ("sha256",) if k not in obj]
    if missing:
        raise CheckpointError(f"{path} lacks {', '.join(missing)}; {retrain_hint(path)}")
    digest = obj.pop("sha256")
    if fingerprint(obj) != digest:
        raise CheckpointError(f"{path} is corrupt (its contents do not match their fingerprint); {retrain_hint(path)}")
    return obj
