"""The model's required behaviour: zero cross-attention before the first image, locality, identity at
init, causality, batch independence, resampler invariances, cached generation, clear errors, freezing."""
import pytest
import torch
from hypothesis import assume, given
from hypothesis import strategies as st

from conftest import TINY, open_gates
from flamingo_min import Flamingo
from flamingo_min.lm import Cache
from flamingo_min.masking import cross_attention_mask, phi
from flamingo_min.resampler import PerceiverResampler
from flamingo_min.xattn import GatedCrossAttention
from strategies import BOS, IMG, PAD, TEXT, batch, row
from toy_data import TOKENIZER


def model_for(cfg=TINY, seed=0, gates=True, only_immediate=True):
    torch.manual_seed(seed)
    from dataclasses import replace
    m = Flamingo(replace(cfg, only_immediate=only_immediate)).eval()
    return open_gates(m, seed) if gates else m


def images_for(ids, seed=0, size=16):
    g = torch.Generator().manual_seed(seed)
    n = max(1, int((ids == IMG).sum(1).max()))
    return torch.rand(ids.shape[0], n, 3, size, size, generator=g)


def counts_of(ids):
    return (ids == IMG).sum(1)


@pytest.mark.parametrize("only_immediate", [True, False])
def test_no_image_yet_gives_exact_zero(only_immediate):
    torch.manual_seed(0)
    layer = GatedCrossAttention(16, 2)
    ids = torch.tensor([[5, 6, IMG, 7, 8, IMG, 9], [5, 6, 7, 8, 9, 10, 11]])
    mask = cross_attention_mask(ids, IMG, 2, 3, only_immediate)
    out = layer.attend(torch.randn(2, 7, 16), torch.randn(2, 6, 16), mask)
    assert torch.isfinite(out).all()
    assert (out[0, :2] == 0).all() and (out[1] == 0).all()   # exact zeros, not NaN, not attention to every image
    assert (out[0, 2:].abs().sum(-1) > 0).all()


@given(batch(max_rows=3, pad=False), st.integers(0, 3), st.booleans())
def test_locality_in_cross_attention(ids, j, only_immediate):
    n = int(counts_of(ids).max())
    assume(n > 0)
    j = j % n + 1
    torch.manual_seed(0)
    layer = GatedCrossAttention(16, 2)
    x = torch.randn(*ids.shape, 16)
    media = torch.randn(ids.shape[0], n, 3, 16)
    changed = media.clone()
    changed[:, j - 1] = torch.randn_like(changed[:, j - 1])  # (a constant shift would vanish in LayerNorm)
    mask = cross_attention_mask(ids, IMG, n, 3, only_immediate)
    a = layer.attend(x, media.flatten(1, 2), mask)
    b = layer.attend(x, changed.flatten(1, 2), mask)
    differs = (a - b).abs().amax(-1) > 1e-6
    p = phi(ids, IMG)
    allowed = (p == j) if only_immediate else (p >= j)
    assert not (differs & ~allowed).any()
    assert differs[allowed].all()


@given(batch(max_rows=2, pad=False), st.integers(0, 3), st.booleans())
def test_image_j_changes_the_logits_from_its_tag_on_and_never_before(ids, j, only_immediate):
    n = int(counts_of(ids).max())
    assume(n > 0)
    j = j % n + 1
    m = model_for(only_immediate=only_immediate)
    imgs = images_for(ids)
    other = imgs.clone()
    other[:, j - 1] = torch.rand_like(other[:, j - 1])
    with torch.no_grad():
        a = m(ids, images=imgs)
        b = m(ids, images=other)
    differs = (a - b).abs().amax(-1) > 1e-5                      # (B, T)
    p = phi(ids, IMG)
    assert not (differs & (p < j)).any()                         # nothing before the j-th <image> moves ...
    sees = (p == j) if only_immediate else (p >= j)
    assert differs[sees].all()                                   # ... and every token that reads image j does


@given(batch(max_rows=3))
def test_identity_at_init(ids):
    m = model_for(gates=False)
    with torch.no_grad():
        got = m(ids, images=images_for(ids))
        want = m.lm(ids, embed_weight=m.embed_weight())   # the LM, reading <image> as zero and <EOC> as '.'
    assert torch.allclose(got, want, atol=1e-6)


@given(row(pad=False), st.integers(0, 30), st.sampled_from(TEXT + [IMG]))
def test_causality(r, t, new):
    ids = torch.tensor([r])
    t = t % len(r)
    assume((r[t] == IMG) == (new == IMG))  # keep the image count (and so the images) the same
    changed = ids.clone()
    changed[0, t] = new
    m = model_for()
    imgs = images_for(ids)
    with torch.no_grad():
        a = m(ids, images=imgs)
        b = m(changed, images=imgs)
    assert torch.allclose(a[0, :t], b[0, :t], atol=1e-5)


@given(batch(max_rows=4, pad=False), st.booleans())
def test_batch_independence(ids, left):
    """Each row alone equals that row inside a batch of rows with other lengths and image counts."""
    m = model_for()
    rows = [r[r != PAD] for r in ids]
    imgs = [images_for(r[None], seed=i)[0][: int(counts_of(r[None]))] for i, r in enumerate(rows)]
    T, N = max(len(r) for r in rows), max(1, max(len(i) for i in imgs))
    padded = torch.full((len(rows), T), PAD)
    stack = torch.zeros(len(rows), N, 3, 16, 16)
    for b, (r, im) in enumerate(zip(rows, imgs)):
        sl = slice(T - len(r), T) if left else slice(0, len(r))
        padded[b, sl] = r
        stack[b, : len(im)] = im
    with torch.no_grad():
        together = m(padded, images=stack)
        for b, (r, im) in enumerate(zip(rows, imgs)):
            alone = m(r[None], images=im[None] if len(im) else None)
            sl = slice(T - len(r), T) if left else slice(0, len(r))
            assert torch.allclose(alone[0], together[b, sl], atol=1e-4)


@given(st.integers(1, 40), st.integers(1, 3), st.integers(1, 2), st.integers(1, 3))
def test_resampler_shape_and_permutation_invariance(S, F, B, N):
    torch.manual_seed(0)
    r = PerceiverResampler(d_in=8, d_model=16, n_latents=5, n_layers=2, n_heads=2, max_frames=3)
    x = torch.randn(B, N, F, S, 8)
    out = r(x)
    assert out.shape == (B, N, 5, 16)
    perm = torch.randperm(S)
    assert torch.allclose(r(x[:, :, :, perm]), out, atol=1e-5)
    assert r(x[:, :, 0]).shape == (B, N, 5, 16)                 # images: (B, N, S, Dv)


def test_resampler_rejects_too_many_frames():
    r = PerceiverResampler(d_in=8, d_model=16, max_frames=2)
    with pytest.raises(ValueError, match="3 frames but only 2"):
        r(torch.randn(1, 1, 3, 4, 8))


def test_cached_decoding_equals_recomputing():
    m = model_for()
    torch.manual_seed(1)
    prompt = torch.tensor([[TOKENIZER.bos_id, IMG, 20, 21, TOKENIZER.eoc_id, IMG]])
    imgs = images_for(prompt)
    media = m.perceive(m.encode(imgs))
    cache = Cache.empty(len(m.lm.blocks), 1)
    ids = prompt
    with torch.no_grad():
        logits = m(prompt, media=media, cache=cache)[:, -1]
        for _ in range(5):
            nxt = logits.argmax(-1, keepdim=True)
            full = m(torch.cat([ids, nxt], 1), media=media)[:, -1]
            logits = m(nxt, media=media, cache=cache, history=ids)[:, -1]
            ids = torch.cat([ids, nxt], 1)
            assert torch.allclose(logits, full, atol=1e-5)


def test_generate_matches_full_recompute_and_beam1_is_greedy():
    m = model_for(seed=3)
    prompts = [[TOKENIZER.bos_id, IMG, 20, TOKENIZER.eoc_id, IMG], [TOKENIZER.bos_id, 30, IMG]]
    from flamingo_min.evaluate import left_pad
    ids = left_pad(prompts)
    imgs = torch.rand(2, 2, 3, 16, 16)
    counts = counts_of(ids)
    greedy = m.generate(ids, images=imgs, max_new_tokens=6, num_beams=1)
    assert greedy == m.generate(ids, images=imgs, max_new_tokens=6, num_beams=1)
    for b, p in enumerate(prompts):   # recompute each step from scratch, no cache, no padding
        seq = torch.tensor([p])
        out = []
        for _ in range(6):
            logits = m(seq, images=imgs[b: b + 1, : counts[b]])[0, -1]
            logits[[TOKENIZER.pad_id, TOKENIZER.bos_id, IMG]] = float("-inf")
            tok = int(logits.argmax())
            if tok == TOKENIZER.eoc_id:
                break
            out.append(tok)
            seq = torch.cat([seq, torch.tensor([[tok]])], 1)
        assert greedy[b] == out


def test_generation_stops_at_eoc():
    m = model_for(gates=False)
    with torch.no_grad():  # make <EOC> the overwhelming next token everywhere
        m.eoc_embed.copy_(torch.randn(TINY.d_model) * 3)          # the <EOC> row, far from every other row
        m.lm.ln_f.weight.zero_()
        m.lm.ln_f.bias.copy_(m.eoc_embed * 10)              # every position's output points at <EOC>
    ids = torch.tensor([[TOKENIZER.bos_id, 20, 21]])
    assert m.generate(ids, max_new_tokens=5) == [[]]
    assert m.generate(ids, max_new_tokens=5, num_beams=3) == [[]]


def test_sequence_logprob_is_the_sum_of_one_forward():
    m = model_for()
    ids = torch.tensor([[TOKENIZER.bos_id, IMG, 20, 21, 22, TOKENIZER.eoc_id]])
    imgs = images_for(ids)
    target = torch.tensor([[False, False, False, True, True, True]])
    got = m.sequence_logprob(ids, target, images=imgs)
    with torch.no_grad():
        logp = torch.log_softmax(m(ids, images=imgs), -1)[0]
    want = sum(logp[t - 1, ids[0, t]] for t in (3, 4, 5))
    assert torch.allclose(got, want.reshape(1), atol=1e-5)


def test_clear_errors():
    m = model_for()
    ids = torch.tensor([[1, IMG, 20, IMG, 21], [1, IMG, 20, 21, 22]])
    imgs = torch.rand(2, 2, 3, 16, 16)
    with pytest.raises(ValueError, match="row 0 has 2 <image> tokens but 1 images were given"):
        m(ids, images=imgs[:, :1])
    with pytest.raises(ValueError, match=r"images must be \(B, N, 3, H, W\)"):
        m(ids, images=torch.rand(2, 2, 16, 16))
    with pytest.raises(ValueError, match="H, W >= 16"):
        m(ids, images=torch.rand(2, 2, 3, 8, 8))
    with pytest.raises(ValueError, match="exceeds the LM's context"):
        m(torch.full((1, TINY.context + 1), 20))
    with pytest.raises(ValueError, match="token ids must lie in"):
        m(torch.tensor([[1, 999]]))


def test_trainable_parameters_and_freezing():
    m = model_for()
    names = {n for n, _ in m.trainable_parameters()}
    assert names and all(n.startswith(("resampler.", "xattn.", "eoc_embed")) for n in names)
    assert not any(p.requires_grad for p in [*m.lm.parameters(), *m.vision.parameters()])
    frozen = {n: p.clone() for n, p in m.named_parameters() if n not in names}
    opt = torch.optim.AdamW([p for _, p in m.trainable_parameters()], lr=1e-2)
    ids = torch.tensor([[1, IMG, 20, 21, TOKENIZER.eoc_id, IMG, 22]])
    m.train()
    loss = m(ids, images=images_for(ids)).logsumexp(-1).mean()
    loss.backward()
    opt.step()
    for n, p in m.named_parameters():
        if n in frozen:
            assert torch.equal(p, frozen[n]), n
    assert m.lm.training is False and m.vision.training is False


@given(st.lists(row(pad=False), min_size=1, max_size=3), st.booleans(), st.integers(0, 3))
def test_a_packed_row_computes_what_its_documents_compute_alone(docs, only_immediate, pad):
    """Training packs several documents into one row, each from its <bos>: every document's logits are those it gets
    alone, whatever stands before it in the row (attention, positions, smeared keys, phi and the images)."""
    m = model_for(only_immediate=only_immediate)
    docs = [torch.tensor([BOS] + d) for d in docs]
    imgs = [images_for(d[None], seed=i)[0][: int(counts_of(d[None]))] for i, d in enumerate(docs)]
    packed = torch.cat(docs + [torch.full((pad,), PAD)])[None]                     # (1, T) right-padded
    pictures = torch.cat(imgs)[None]                                               # (1, N, 3, H, W) in tag order
    with torch.no_grad():
        together = m(packed, images=pictures if pictures.shape[1] else None)[0]
        at = 0
        for d, im in zip(docs, imgs):
            alone = m(d[None], images=im[None] if len(im) else None)[0]
            assert torch.allclose(alone, together[at: at + len(d)], atol=1e-4)
            at += len(d)
