"""What each exercise must do. Each check takes the function to test and raises AssertionError with a message that
says what went wrong (or NotImplementedError, passed through, for an untouched stub). Reference behaviour comes from
the real modules in flamingo_min/ and toy_data/, which the rest of the project is tested against."""
import random

import torch

from flamingo_min import Flamingo, cross_attention_mask as real_mask, phi as real_phi
from flamingo_min.config import ModelConfig
from flamingo_min.encoder import contrastive_loss as real_contrastive
from flamingo_min.resampler import ResamplerLayer
from flamingo_min.xattn import GatedCrossAttention
from toy_data import TOKENIZER, build_prompt as real_prompt, make_episode

IMG = TOKENIZER.image_id
ROWS = [  # no image, image first, image last, consecutive images, padding
    [5, 6, 7, 8, 9, 10], [IMG, 5, 6, 7, 8, 9], [5, 6, 7, 8, 9, IMG], [5, IMG, IMG, 6, IMG, 7],
    [IMG, 5, 6, IMG, 0, 0],
]


def _close(a, b, what, atol=1e-5):
    assert a.shape == b.shape, f"{what}: shape {tuple(a.shape)}, expected {tuple(b.shape)}"
    assert torch.allclose(a.float(), b.float(), atol=atol), f"{what}: values differ (max |diff| " \
        f"{(a.float() - b.float()).abs().max().item():.3g})"


def phi(fn):
    ids = torch.tensor(ROWS)
    got = fn(ids, IMG)
    assert isinstance(got, torch.Tensor), "phi must return a tensor"
    assert got.dtype == torch.long, f"phi must return a LongTensor, got {got.dtype}"
    for r, (row, want) in enumerate(zip(got.tolist(), real_phi(ids, IMG).tolist())):
        assert row == want, f"phi of row {ROWS[r]} is {row}, expected {want}"


def cross_attention_mask(fn):
    ids = torch.tensor(ROWS)
    for only in (True, False):
        got, want = fn(ids, IMG, 3, 2, only), real_mask(ids, IMG, 3, 2, only)
        assert got.dtype == torch.bool, f"the mask must be boolean, got {got.dtype}"
        assert got.shape == want.shape, f"mask shape {tuple(got.shape)}, expected {tuple(want.shape)} (B, T, N*R)"
        bad = (got != want).nonzero()
        if len(bad):
            b, t, j = bad[0].tolist()
            raise AssertionError(f"only_immediate={only}: row {b} position {t} visual token {j} (image "
                                 f"{j // 2 + 1}) is {bool(got[b, t, j])}, expected {bool(want[b, t, j])}")


def gated_xattn_forward(fn):
    torch.manual_seed(0)
    layer = GatedCrossAttention(16, 2)
    with torch.no_grad():
        layer.alpha_xattn.fill_(0.7), layer.alpha_dense.fill_(-0.4), layer.scale.fill_(2.5)
    ids = torch.tensor(ROWS[:4])
    mask = real_mask(ids, IMG, 3, 2)
    x, media = torch.randn(4, 6, 16), torch.randn(4, 6, 16)
    got = fn(layer, x, media, mask)
    assert torch.isfinite(got).all(), "NaN or inf in the output: rows with no image before them need care"
    _close(got, layer(x, media, mask), "gated cross-attention output")
    with torch.no_grad():
        layer.alpha_xattn.zero_(), layer.alpha_dense.zero_()
    _close(fn(layer, x, media, mask), x, "with both gates at 0 the layer must be the identity")


def resampler_attention(fn):
    torch.manual_seed(0)
    layer = ResamplerLayer(16, 2)
    x, latents = torch.randn(3, 10, 16), torch.randn(3, 4, 16)
    _close(fn(layer, x, latents), layer(x, latents), "resampler layer output")


def contrastive_loss(fn):
    torch.manual_seed(0)
    img, txt = torch.randn(8, 5), torch.randn(8, 5)
    scale = torch.tensor(2.0)
    _close(fn(img, txt, scale), real_contrastive(img, txt, scale), "contrastive loss")
    _close(fn(img * 3, txt, scale), real_contrastive(img, txt, scale), "the loss must not depend on embedding norm")


def build_prompt(fn):
    for task in ("infer", "question", "caption", "bind"):
        ep = make_episode(task, 3)
        for k in (0, 1, 4):
            got, want = fn(ep.support(k), ep.query, ep.text_examples), real_prompt(ep.support(k), ep.query,
                                                                                   ep.text_examples)
            assert got[0] == want[0], f"{task}, {k} shots: prompt\n  {got[0]!r}\nexpected\n  {want[0]!r}"
            assert list(got[1]) == list(want[1]), f"{task}, {k} shots: scenes must follow the <image> tokens"


def greedy_decode(fn):
    torch.manual_seed(0)
    cfg = ModelConfig(d_model=32, n_layers=2, n_heads=2, context=64, vision_width=16, latents=3, resampler_layers=1)
    model = Flamingo(cfg).eval()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for layer in model.xattn:
            layer.alpha_xattn.fill_(1.0), layer.alpha_dense.fill_(1.0)
        model.lm.embed.weight.normal_(0, 1, generator=g)   # a peaky random model: varied, decisive next tokens
    rng = random.Random(0)
    for _ in range(3):
        ids = torch.tensor([[TOKENIZER.bos_id, IMG] + [rng.randrange(5, 60) for _ in range(3)] + [IMG]])
        images = torch.rand(1, 2, 3, 16, 16, generator=g)
        want = model.generate(ids, images=images, max_new_tokens=6)[0]
        got = fn(model, ids, images, max_new_tokens=6)
        assert list(got) == want, f"decoded {list(got)}, expected {want}"
