"""Hypothesis strategies for interleaved token rows: no image, image first, image last, consecutive images, padding,
and batches whose rows hold different numbers of images."""
import torch
from hypothesis import strategies as st

from toy_data import TOKENIZER

IMG, PAD = TOKENIZER.image_id, TOKENIZER.pad_id
BOS = TOKENIZER.bos_id
TEXT = [i for i in range(len(TOKENIZER)) if i not in (IMG, PAD, BOS, TOKENIZER.eoc_id)]   # <bos> opens a document


@st.composite
def row(draw, max_len=24, max_images=4, pad=True):
    """One token row (a list of ids) with 0..max_images <image> tokens anywhere, then optional right padding."""
    n = draw(st.integers(1, max_len))
    kinds = draw(st.lists(st.sampled_from(["text", "text", "image"]), min_size=n, max_size=n))
    # Cap the number of images, keeping the first ones (so "image first" and "consecutive" survive).
    seen = 0
    ids = []
    for k in kinds:
        if k == "image" and seen < max_images:
            ids.append(IMG)
            seen += 1
        else:
            ids.append(draw(st.sampled_from(TEXT)))
    if pad:
        ids += [PAD] * draw(st.integers(0, 4))
    return ids


@st.composite
def batch(draw, max_rows=4, **kw):
    """A right-padded (B, T) LongTensor of rows with different lengths and image counts."""
    rows = draw(st.lists(row(**kw), min_size=1, max_size=max_rows))
    T = max(len(r) for r in rows)
    return torch.tensor([r + [PAD] * (T - len(r)) for r in rows])
