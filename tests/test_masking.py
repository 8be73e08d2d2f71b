"""phi and the cross-attention mask against plain-Python loop references (paper section 2.3): the backbone."""
import torch
from hypothesis import given
from hypothesis import strategies as st

from flamingo_min.masking import cross_attention_mask, phi
from strategies import IMG, PAD, batch
from toy_data import TOKENIZER


def phi_reference(ids):
    out = []
    for r in ids.tolist():
        last, row = 0, []
        for tok in r:
            if tok == IMG:
                last += 1
            row.append(last)
        out.append(row)
    return torch.tensor(out)


def mask_reference(ids, num_images, per_image, only_immediate):
    p = phi_reference(ids).tolist()
    B, T = ids.shape
    mask = torch.zeros(B, T, num_images * per_image, dtype=torch.bool)
    for b in range(B):
        for t in range(T):
            for j in range(num_images * per_image):
                image = j // per_image + 1
                if p[b][t] and (image == p[b][t] if only_immediate else image <= p[b][t]):
                    mask[b, t, j] = True
    return mask


@given(batch())
def test_phi_matches_loop(ids):
    assert torch.equal(phi(ids, IMG), phi_reference(ids))


def test_phi_corner_cases():
    T = 7
    text, pad = 20, PAD
    cases = {
        "no image": ([text] * T, [0] * T),
        "image first": ([IMG] + [text] * 6, [1] * T),
        "image last": ([text] * 6 + [IMG], [0] * 6 + [1]),
        "consecutive": ([text, IMG, IMG, text, IMG, text, pad], [0, 1, 2, 2, 3, 3, 3]),
    }
    for name, (ids, want) in cases.items():
        assert phi(torch.tensor([ids]), IMG).tolist() == [want], name


@given(batch(), st.integers(1, 3), st.booleans())
def test_mask_matches_loop(ids, per_image, only_immediate):
    n = int((ids == IMG).sum(1).max())
    got = cross_attention_mask(ids, IMG, n, per_image, only_immediate)
    assert got.shape == (*ids.shape, n * per_image)
    assert torch.equal(got, mask_reference(ids, n, per_image, only_immediate))


@given(batch(), st.booleans())
def test_mask_never_sees_a_later_image_and_nothing_before_the_first(ids, only_immediate):
    n = max(1, int((ids == IMG).sum(1).max()))
    m = cross_attention_mask(ids, IMG, n, 2, only_immediate)
    p = phi(ids, IMG)
    image_of = torch.arange(2 * n) // 2 + 1
    assert not (m & (image_of > p[..., None])).any()       # never a later image
    assert not m[p == 0].any()                              # text before any image sees nothing
    assert m[p > 0].any(-1).all()                           # text after an image sees something
    if only_immediate:
        assert (m.sum(-1) == 2 * (p > 0)).all()             # exactly one image's tokens


def test_document_starts_at_each_bos_and_after_left_padding():
    from flamingo_min.masking import document_starts
    B, P, I, x = TOKENIZER.bos_id, TOKENIZER.pad_id, TOKENIZER.image_id, 20
    ids = torch.tensor([[B, I, x, B, x, I, x, P, P],        # two documents packed, right padding
                        [P, P, B, I, x, x, B, x, x],        # left padding, then two documents
                        [P, P, I, x, x, x, x, x, x]])       # left padding, a document without <bos>
    assert document_starts(ids, B, P).tolist() == [[0, 0, 0, 3, 3, 3, 3, 3, 3],
                                                   [0, 0, 2, 2, 2, 2, 6, 6, 6],
                                                   [0, 0, 2, 2, 2, 2, 2, 2, 2]]
    starts = document_starts(ids, B, P)
    for only_immediate in (True, False):   # the second document of row 0 never sees the first's image
        mask = cross_attention_mask(ids, I, 2, 1, only_immediate, starts)
        assert not mask[0, 3:5].any() and mask[0, 5:7, 1].all() and not mask[0, 5:, 0].any()
        assert mask[0, 1:3, 0].all() and not mask[0, :1].any()
        assert not mask[1, 6:].any() and mask[1, 3:6, 0].all()
