"""Non-finite numbers in a training step. The bridge's step stays finite on the batches most likely to break it, in
fp32 (how it trains) and under bf16 autocast (what `bench` measures, and what a user may turn on); the masked
cross-attention's backward stays finite where every score of a row underflows (on a GPU, as main.py configures it:
docs/performance.md); and a gradient that turns non-finite under a finite loss is named at its own step."""
import pathlib

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from conftest import TINY, TINY_RUN, open_gates
from flamingo_min import Flamingo, train
from flamingo_min.batches import Bridge, to_device
from flamingo_min.config import make_config
from flamingo_min.errors import TrainingError
from flamingo_min.xattn import GatedCrossAttention
from flamingo_min import runs
from main import pick_device
from strategies import BOS, IMG, PAD, row

DEVICE = pick_device("cuda" if torch.cuda.is_available() else "cpu")


@st.composite
def bridge(draw):
    """A packed Bridge batch: each row holds 0 to 3 documents (0: a row of padding only), each from its <bos>: no
    image, an image first or last, several in a row, the longest rows, padding."""
    rows = []
    for _ in range(draw(st.integers(1, 3))):
        docs = draw(st.lists(row(max_len=30, pad=False), min_size=0, max_size=3))
        rows.append([t for d in docs for t in [BOS] + d])
    T = max(2, max(len(r) for r in rows) + draw(st.integers(0, 3)))
    ids = torch.tensor([r + [PAD] * (T - len(r)) for r in rows])                     # (B, T)
    counts = (ids == IMG).sum(1).tolist()
    N = max(1, max(counts))
    slots = torch.tensor([b * N + k for b, c in enumerate(counts) for k in range(c)], dtype=torch.long)
    pictures = torch.rand(len(slots), 3, 16, 16, generator=torch.Generator().manual_seed(len(slots)))
    scored = (ids != PAD) & (ids != IMG) & (ids != BOS)
    share = scored.float()[None] / scored.sum().clamp(min=1)
    return Bridge(ids, share, (pictures,), (slots,), N, torch.ones(1), ("doc",))


@given(bridge(), st.booleans(), st.sampled_from([1.0, 100.0]))
def test_the_bridge_step_is_finite_on_adversarial_batches(b, bf16, scale):
    """scale: the gated layers' calibrated size of the residual stream (about 100 for a trained LM's)."""
    torch.manual_seed(0)
    model = open_gates(Flamingo(TINY)).to(DEVICE).train()
    for layer in model.xattn:
        layer.scale.fill_(scale)
    b = to_device(b, DEVICE)
    with torch.autocast(DEVICE.type, dtype=torch.bfloat16, enabled=bf16):
        logits = model(b.ids, media=train.visual_tokens(model, b))
    loss = (b.weights * (b.share[:, :, 1:] * train.token_losses(logits, b.ids)).sum((1, 2))).sum()
    loss.backward()
    assert torch.isfinite(loss)
    grads = [p.grad for _, p in model.trainable_parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("images", [3, 4, 5, 12])     # 16 latents each: M = 48, 64, 80 and 192 keys
def test_cross_attention_backward_is_finite_when_every_score_of_a_row_underflows(images):
    """Every score below -88.7, where exp() underflows in fp32: a fused attention backward that recomputes the
    softmax from its log-sum-exp must still return finite gradients (cuDNN's did not, at 64 mod 128 keys)."""
    torch.manual_seed(0)
    R, D, T = 16, 64, 13
    layer = GatedCrossAttention(D, n_heads=2, ff_mult=2).to(DEVICE)
    with torch.no_grad():   # LayerNorms that output a constant, and projections that make every score -128
        layer.alpha_xattn.fill_(0.5), layer.alpha_dense.fill_(0.5)
        for ln in (layer.ln_q, layer.ln_kv):
            ln.weight.fill_(0.01), ln.bias.fill_(1.0)
        layer.q.weight.fill_(1.0 / D)
        layer.kv.weight.fill_(-128 * 32 ** 0.5 / D)
    x = torch.randn(2, T, D, device=DEVICE, requires_grad=True)
    media = torch.randn(2, images * R, D, device=DEVICE)
    mask = torch.zeros(2, T, images * R, dtype=torch.bool, device=DEVICE)
    mask[:, 3:, :R] = True                                             # rows 0-2 see no image
    with torch.autocast(DEVICE.type, dtype=torch.bfloat16):
        scores = layer.q(layer.ln_q(x))[..., :32] @ layer.kv(layer.ln_kv(media))[..., :32].mT / 32 ** 0.5
        assert scores.float().max() < -88.7
        layer(x, media, mask).float().square().sum().backward()
    grads = [x.grad] + [p.grad for p in layer.parameters() if p.grad is not None]
    assert all(torch.isfinite(g).all() for g in grads)


class NanGradient(torch.autograd.Function):
    """The identity forward; a NaN gradient backward (what a broken fused attention backward gives)."""
    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, g):
        return torch.full_like(g, float("nan"))


def test_a_non_finite_gradient_under_a_finite_loss_is_named_at_its_step(tmp_path, monkeypatch):
    cfg = make_config("quick", TINY_RUN)
    run = str(tmp_path)
    train.run_stage(run, "lm", cfg, progress=False, stop_after=4)
    before = pathlib.Path(runs.ckpt_path(run, "lm")).read_bytes()
    real, calls = train.next_token_loss, []

    def poisoned(*a, **k):
        calls.append(1)
        loss = real(*a, **k)
        return NanGradient.apply(loss) if len(calls) == 2 else loss   # step 5: a finite loss, a NaN gradient
    monkeypatch.setattr(train, "next_token_loss", poisoned)
    with pytest.raises(TrainingError, match=r"gradient became nan \(its loss was [0-9.]+\) at step 5.*intact"):
        train.run_stage(run, "lm", cfg, progress=False)
    assert pathlib.Path(runs.ckpt_path(run, "lm")).read_bytes() == before
