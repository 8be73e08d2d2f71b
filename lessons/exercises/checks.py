"""What each exercise must do. Each check takes the function to test and raises AssertionError with a message that
says what went wrong in the exercise's own terms: which rows, which tokens (as words), which property (or
NotImplementedError, passed through, for an untouched stub). Reference behaviour comes from the real modules in
flamingo_min/ and toy_data/, which the rest of the project is tested against.

A message describes the pattern of the difference (which rows, which positions, which kind), then the first place it
shows. When a failing submission behaves like one of the usual mistakes (mistakes.py), the checker names that mistake
above it. tests/exercise_mutants.py holds further wrong versions that every check must catch without naming them."""
import contextlib
import random

import torch
import torch.nn.functional as F
from einops import rearrange

from flamingo_min import Flamingo, cross_attention_mask as real_mask, phi as real_phi
from flamingo_min.config import ModelConfig
from flamingo_min.encoder import contrastive_loss as real_contrastive
from flamingo_min.resampler import FrameInput, ResamplerLayer
from flamingo_min.train import next_token_loss as real_loss
from flamingo_min.xattn import GatedCrossAttention
from toy_data import TOKENIZER, DataConfig, DocumentStream, build_prompt as real_prompt, make_episode

IMG, EOC, PAD = TOKENIZER.image_id, TOKENIZER.eoc_id, TOKENIZER.pad_id
BANNED = {TOKENIZER.pad_id: "<pad>", TOKENIZER.bos_id: "<bos>", IMG: "<image>"}
ROWS = [  # no image, image first, image last, consecutive images, padding
    "a big red circle at top", "<image> a big red circle at", "a big red circle at <image>",
    "a <image> <image> red <image> circle", "<image> red circle <image> <pad> <pad>"]


def _ids(rows):
    return torch.tensor([TOKENIZER.encode(r) for r in rows])


def _word(token_id):
    return TOKENIZER.words[int(token_id)]


def _words(ids):
    return repr(TOKENIZER.decode(ids)) if len(ids) else "nothing"


def _same(a, b, atol=1e-5):
    return a.shape == b.shape and torch.allclose(a.float(), b.float(), atol=atol)


def _tensor(got, shape, what):
    assert isinstance(got, torch.Tensor), f"{what} must be a tensor, got {type(got).__name__}"
    assert tuple(got.shape) == tuple(shape), f"{what}: shape {tuple(got.shape)}, expected {tuple(shape)}"
    assert torch.isfinite(got).all(), f"{what}: NaN or inf in the output"


def _first_diff(got, want, atol=1e-5):
    """Index (a tuple) of the first entry where got and want differ, and the size of the largest difference."""
    diff = (got.float() - want.float()).abs()
    return tuple((diff > atol).nonzero()[0].tolist()), diff.max().item()


def _spread(bad, what, extent=""):
    """How many of a grid's entries differ, in words: "every one of the 12 latents (3 x 4) differs" or "3 of the 12
    latents (3 x 4) differ"."""
    n, total = int(bad.sum()), bad.numel()
    return f"every one of the {total} {what}{extent} differs" if n == total else \
        f"{n} of the {total} {what}{extent} differ"


def _listed(items):
    items = [str(i) for i in items]
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


@contextlib.contextmanager
def _reference(fn, name, value):
    """Run with the global `name` of fn's module set to `value`, so that a bug in one exercise (the student's phi)
    does not fail another that calls it (the student's mask)."""
    scope = getattr(fn, "__globals__", {})
    old = scope.get(name)
    if callable(old):
        scope[name] = value
    try:
        yield
    finally:
        if callable(old):
            scope[name] = old


# --- phi --------------------------------------------------------------------------------------------------------------
def phi(fn):
    ids = _ids(ROWS)
    got = fn(ids, IMG)
    assert isinstance(got, torch.Tensor), f"phi must return a tensor, got {type(got).__name__}"
    assert got.shape == ids.shape, f"phi must give one value per token, shape {tuple(ids.shape)} (B, T), got " \
                                   f"{tuple(got.shape)}"
    assert got.dtype == torch.long, f"phi must return a LongTensor (image indices), got {got.dtype}"
    want = real_phi(ids, IMG)
    bad = got != want
    if bad.any():
        rows = [r for r in range(len(ROWS)) if bad[r].any()]
        image = ids == IMG
        kinds = {"<image> tokens": bad & image, "text tokens after an image": bad & ~image & (want > 0),
                 "text tokens before any image": bad & ~image & (want == 0)}
        where = _listed(f"{int(m.sum())} {k}" for k, m in kinds.items() if m.any())
        r = rows[0]
        t = int(bad[r].nonzero()[0])
        raise AssertionError(
            f"phi differs at {int(bad.sum())} positions, in row{'s' * (len(rows) > 1)} {_listed(rows)} of "
            f"{len(ROWS)}: at {where}\n" +
            "".join(f"row {i} '{ROWS[i]}': phi is {got[i].tolist()}, expected {want[i].tolist()}\n" for i in rows) +
            f"e.g. position {t} of row {r} ('{ROWS[r].split()[t]}') has {int(want[r, t])} <image> at or before it, "
            f"so its phi is {int(want[r, t])}, not {int(got[r, t])}")


# --- the cross-attention mask -----------------------------------------------------------------------------------------
def cross_attention_mask(fn):
    ids, N, R = _ids(ROWS), 3, 2
    p = real_phi(ids, IMG)
    for only in (True, False):
        with _reference(fn, "phi", real_phi):   # the student's own phi is checked on its own
            got = fn(ids, IMG, N, R, only)
        want = real_mask(ids, IMG, N, R, only)
        assert isinstance(got, torch.Tensor) and got.dtype == torch.bool, \
            f"the mask must be a boolean tensor, got {getattr(got, 'dtype', type(got).__name__)}"
        assert got.shape == want.shape, f"mask shape {tuple(got.shape)}, expected {tuple(want.shape)} (B, T, N*R)"
        bad = got != want
        if bad.any():
            raise AssertionError(_mask_difference(got, bad, p, R, only))


def _mask_difference(got, bad, p, R, only):
    """What a wrong mask gets wrong: which kinds of visual tokens it shows or hides, in which rows, then one cell."""
    kinds = {}
    for b, t, j in bad.nonzero().tolist():
        n, pt = j // R + 1, int(p[b, t])
        whose = "visual tokens to text before any image (phi 0)" if pt == 0 else "a later image" if n > pt else \
            "the token's own image (phi)" if n == pt else "an earlier image"
        key = ("show" if got[b, t, j] else "hide", whose)
        kinds[key] = kinds.get(key, 0) + 1
    rows = sorted({b for b, _, _ in bad.nonzero().tolist()})
    b, t, j = bad.nonzero()[0].tolist()
    n, pt = j // R + 1, int(p[b, t])
    rule = "it has seen no image yet (phi 0), so it attends nothing" if pt == 0 else \
        f"image {n} comes after it" if n > pt else \
        f"only image phi = {pt} is visible" if only else f"every image 1..phi = 1..{pt} is visible"
    return (f"only_immediate={only}: {int(bad.sum())} cells of the mask are wrong, in row{'s' * (len(rows) > 1)} "
            f"{_listed(rows)}: " + _listed(f"{k} {verb} {whose}" for (verb, whose), k in kinds.items()) + "\n"
            f"e.g. row {b} '{ROWS[b]}', position {t} ('{ROWS[b].split()[t]}', phi {pt}) "
            f"{'may' if got[b, t, j] else 'may not'} attend visual token {j} (token {j % R + 1} of image {n}), "
            f"expected the opposite: {rule}")


# --- the gated cross-attention layer ----------------------------------------------------------------------------------
def _plain_sdpa(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, **_):
    """softmax(q k^T / sqrt(d)) v as the math says: a row that may attend nothing gives NaN (softmax over an empty
    set). Some fused kernels return 0 there instead, which would hide a missing empty-row rule."""
    s = q @ k.transpose(-2, -1) * (q.shape[-1] ** -0.5 if scale is None else scale)
    if is_causal:
        s = s.masked_fill(torch.ones(s.shape[-2:], dtype=torch.bool).triu(1), float("-inf"))
    if attn_mask is not None:
        s = s.masked_fill(~attn_mask, float("-inf")) if attn_mask.dtype == torch.bool else s + attn_mask
    return torch.softmax(s, -1) @ v


@contextlib.contextmanager
def plain_attention(fn):
    """Every call of F.scaled_dot_product_attention made by fn (F.x, torch.nn.functional.x or an imported name)
    runs the plain math, so that the check does not depend on what this machine's fused kernel does."""
    fused, scope = F.scaled_dot_product_attention, getattr(fn, "__globals__", {})
    names = [n for n, v in scope.items() if v is fused]
    F.scaled_dot_product_attention = _plain_sdpa
    scope.update({n: _plain_sdpa for n in names})
    try:
        yield
    finally:
        F.scaled_dot_product_attention = fused
        scope.update({n: fused for n in names})


def gated_xattn_forward(fn):
    torch.manual_seed(0)
    layer = GatedCrossAttention(16, 2).requires_grad_(False)
    ids, R = _ids(ROWS[:4]), 2
    mask = real_mask(ids, IMG, 3, R)
    sees, p = mask.any(-1), real_phi(ids, IMG)
    x, media = torch.randn(4, 6, 16), torch.randn(4, 6, 16)

    def at(b, t):
        where = f"row {b} '{ROWS[b]}', position {t} ('{ROWS[b].split()[t]}'"
        return where + (f", sees image {int(p[b, t])})" if sees[b, t] else ", sees no image)")

    def run(a_x, a_d, scale):
        layer.alpha_xattn.fill_(a_x), layer.alpha_dense.fill_(a_d), layer.scale.fill_(scale)
        want = layer(x, media, mask)
        with plain_attention(fn):
            got = fn(layer, x, media, mask)
        assert isinstance(got, torch.Tensor) and got.shape == x.shape, \
            f"the layer must return a tensor shaped like x {tuple(x.shape)} (B, T, D), got " \
            f"{tuple(getattr(got, 'shape', ()))}"
        for b, t in (~torch.isfinite(got).all(-1)).nonzero().tolist():
            raise AssertionError(f"NaN or inf at {at(b, t)}" + (
                ": its mask row is all False, and softmax over nothing is NaN. Tokens that see no image must get an "
                "exact 0 from the attention branch (attend with mask | ~sees, then multiply by sees)"
                if not sees[b, t] else ""))
        return got, want

    def differs(got, want, what):
        bad = ((got - want).abs() > 1e-5).any(-1)                                     # (B, T)
        b, t = bad.nonzero()[0].tolist()
        seeing = int((bad & sees).sum())
        return (f"{what}: {_spread(bad, 'positions')} ({seeing} that see an image, {int(bad.sum()) - seeing} "
                f"that see none), by up to {(got - want).abs().max().item():.3g}; the first at {at(b, t)}")

    got, _ = run(0.0, 0.0, 2.5)
    assert _same(got, x), differs(got, x, "with both gates at 0 the layer must return x unchanged (tanh(0) = 0 "
                                          "closes both branches), but it changed it")

    # The attention branch alone (alpha_dense = 0).
    got, want = run(0.7, 0.0, 2.5)
    for b, t in (~sees).nonzero().tolist():
        added = (got[b, t] - x[b, t]).abs().max().item()
        assert added < 1e-6, f"{at(b, t)}: the attention branch must add exactly 0 there (there is nothing to " \
            f"attend to), but it added up to {added:.3g}; a large negative fill instead of -inf attends uniformly " \
            "to every image"
    assert _same(got, want), differs(got, want, "the attention branch alone (alpha_dense = 0) is not the real "
                                     "layer's") + f"\nexpected: queries q(ln_q(x)), keys and values " \
        f"kv(ln_kv(media)) split into {layer.n_heads} heads, layer.out, times tanh(alpha_xattn) * layer.scale, " \
        "added to x"

    # The dense branch alone (alpha_xattn = 0).
    got, want = run(0.0, -0.4, 2.5)
    assert _same(got, want), differs(got, want, "the dense branch alone (alpha_xattn = 0) is not the real layer's") + \
        "\nexpected: ff_out(relu(ff_in(ln_ff(x))) ** 2) times tanh(alpha_dense) * layer.scale, added to x"

    # Both branches: the dense one reads x after the attention branch.
    got, want = run(0.7, -0.4, 2.5)
    assert _same(got, want), differs(got, want, "with both gates open the layer is not the real one") + \
        "\nexpected: the attention branch added to x first, then the dense branch reading that sum"


# --- one Perceiver Resampler layer ------------------------------------------------------------------------------------
def resampler_attention(fn):
    torch.manual_seed(0)
    layer = ResamplerLayer(16, 2).requires_grad_(False)
    x, latents = torch.randn(3, 10, 16), torch.randn(3, 4, 16)
    got, want = fn(layer, x, latents), layer(x, latents)
    _tensor(got, want.shape, "the new latents (B, R, D): one row per latent, the queries")
    if not _same(got, want):
        (b, r, _), big = _first_diff(got, want)
        bad = ((got - want).abs() > 1e-5).any(-1)                                     # (B, R)
        raise AssertionError(f"{_spread(bad, 'latents', ' (3 batch rows x 4)')} from the real layer's, by up to "
                             f"{big:.3g}; the first is latent {r} of batch row {b}\nexpected: queries from "
                             "ln_latents(latents), keys and values from [ln_media(x); ln_latents(latents)], "
                             f"{layer.n_heads} heads, layer.out and a residual, then latents + "
                             "layer.ff(layer.ln_ff(latents))")


# --- the contrastive loss ---------------------------------------------------------------------------------------------
def contrastive_loss(fn):
    torch.manual_seed(0)
    img, txt, scale = torch.randn(8, 5), torch.randn(8, 5), torch.tensor(2.0)
    got, want = fn(img, txt, scale), real_contrastive(img, txt, scale)
    _tensor(got, (), "the loss (one scalar for the batch)")
    sizes = torch.rand(8, 1) * 3 + 0.2                       # every embedding its own length
    rescaled = fn(img * sizes, txt * sizes.flip(0), scale)
    assert _same(rescaled, got), f"the loss must not depend on embedding norm: with each embedding rescaled it is " \
        f"{rescaled.item():.4f}, not {got.item():.4f}. Normalise each embedding (F.normalize(emb, dim=-1)): " \
        "the logits are cosine similarities"
    swapped = fn(txt, img, scale)
    assert _same(swapped, got), f"the loss must be symmetric: swapping images and texts gives {swapped.item():.4f}, " \
        f"not {got.item():.4f}. Average the image->text and the text->image cross-entropy"
    ratio = got.item() / want.item()
    assert _same(got, want), f"the loss is {got.item():.4f}, expected {want.item():.4f} ({ratio:.2f} times it)" \
        ": logits = logit_scale.exp() * (normalised images @ normalised texts.T), targets arange(B), the " \
        "mean of both directions"


# --- the few-shot prompt ----------------------------------------------------------------------------------------------
def build_prompt(fn):
    for task in ("infer", "question", "caption", "bind"):
        ep = make_episode(task, 3)
        for k in (0, 1, 4):
            got = fn(ep.support(k), ep.query, ep.text_examples)
            want = real_prompt(ep.support(k), ep.query, ep.text_examples)
            where = f"{task}, {k} shots"
            assert isinstance(got, tuple) and len(got) == 2, f"{where}: return (text, scenes), got {type(got).__name__}"
            if got[0] != want[0]:
                g, w = str(got[0]).split(), want[0].split()
                i = next((i for i, (a, b) in enumerate(zip(g, w)) if a != b), min(len(g), len(w)))
                why = "the prompt ends with a space: strip it (an empty query prefix leaves one)" if got[0].strip() == \
                    want[0] else "the prompt starts with '<bos>'" if w[0] == "<bos>" and g[:1] != ["<bos>"] else \
                    "with no support the text examples' chunks stand in, without '<image>'" if k == 0 else \
                    f"word {i} is {g[i] if i < len(g) else 'missing'!r}, expected {w[i] if i < len(w) else 'nothing'!r}"
                raise AssertionError(f"{where}: {why}\n  yours:    {got[0]!r}\n  expected: {want[0]!r}")
            scenes = list(got[1])
            assert len(scenes) == len(want[1]), f"{where}: {len(scenes)} scenes for {len(want[1])} <image> tokens: " \
                "one scene per <image>, the query's last"
            assert scenes == list(want[1]), f"{where}: the scenes must follow the <image> tokens in order, the " \
                "supports' then the query's"


# --- greedy decoding --------------------------------------------------------------------------------------------------
def _peaky_flamingo():
    """A random Flamingo with open gates and large embeddings: varied, decisive next tokens."""
    torch.manual_seed(0)
    cfg = ModelConfig(d_model=32, n_layers=2, n_heads=2, context=64, vision_width=16, latents=3, resampler_layers=1)
    model = Flamingo(cfg).eval()
    with torch.no_grad():
        for layer in model.xattn:
            layer.alpha_xattn.fill_(1.0), layer.alpha_dense.fill_(1.0)
        model.lm.embed.weight.normal_(0, 1, generator=torch.Generator().manual_seed(1))
    return model


class _Scripted(torch.nn.Module):
    """A stand-in for a Flamingo whose next token is set by the last token of its input, through `follows`. At each
    step a special token that must be banned scores highest, and the scripted word next: only a decoder that bans
    them, feeds its choice back and stops at <EOC> reads the script out."""
    def __init__(self, images, follows):
        super().__init__()
        self.cfg, self.weight = ModelConfig(), torch.nn.Parameter(torch.zeros(()))   # as a Flamingo has
        self.images, self.follows = images, follows

    def forward(self, ids, images=None, **_):
        assert images is self.images, "the model was called without the prompt's images: pass images=images " \
                                      "at every step"
        logits = torch.zeros(*ids.shape, len(TOKENIZER))
        last = int(ids[0, -1])
        logits[0, -1, self.follows.get(last, EOC)] = 5.0
        logits[0, -1, list(BANNED)[(ids.shape[1] + last) % len(BANNED)]] = 9.0   # a different special each step
        return logits


def _scripted_run(fn, prompt, follows, max_new_tokens):
    ids = torch.tensor([TOKENIZER.encode(prompt)])
    images = torch.zeros(1, prompt.split().count("<image>"), 3, 16, 16)
    model = _Scripted(images, {TOKENIZER.ids[a]: TOKENIZER.ids[b] for a, b in follows.items()})
    got = fn(model, ids.clone(), images, max_new_tokens=max_new_tokens)
    assert isinstance(got, (list, tuple)), f"return a list of token ids, got {type(got).__name__}"
    return [int(t) for t in got]


def greedy_decode(fn):
    story = {"<image>": "red", "red": "circle", "circle": "at", "at": "top", "top": "<EOC>", "<EOC>": "blue"}
    got = _scripted_run(fn, "<bos> <image>", story, 8)
    want = TOKENIZER.encode("red circle at top")
    said = f"decoded {_words(got)}, expected {_words(want)}"
    for tok in got:
        assert tok not in BANNED, f"{said}: {BANNED[tok]} is a special token, never an answer: ban <pad>, <bos> and " \
                                  "<image> (set their logits to -inf) before taking the argmax"
    assert len(got) < 2 or len(set(got)) > 1, f"{said}: the decoder repeats its first word: append each chosen " \
        "token to the ids it feeds the model (it never extends the prompt)"
    assert EOC not in got, f"{said}: stop at <EOC>, and leave it out of the answer"
    assert not (got[:len(want)] == want and len(got) > len(want)), f"{said}: decoding must stop at <EOC>"
    assert got == want, f"{said}: take the most likely allowed token each step, append it, stop at <EOC>"
    # A script with no <EOC> in reach: exactly max_new_tokens tokens.
    loop = {"<image>": "red", "red": "circle", "circle": "red", ":": "red"}
    for n in (1, 4):
        got = _scripted_run(fn, "<bos> <image> :", loop, n)
        assert len(got) == n, f"with no <EOC> in sight and max_new_tokens={n} the decoder must return exactly {n} " \
            f"token{'s' * (n > 1)}, got {len(got)}: {_words(got)}"
    # And a real Flamingo: its answer against Flamingo.generate.
    model, g, rng = _peaky_flamingo(), torch.Generator().manual_seed(1), random.Random(0)
    for _ in range(2):
        ids = torch.tensor([[TOKENIZER.bos_id, IMG] + [rng.randrange(5, 60) for _ in range(3)] + [IMG]])
        images = torch.rand(1, 2, 3, 16, 16, generator=g)
        want = model.generate(ids, images=images, max_new_tokens=6)[0]
        got = fn(model, ids, images, max_new_tokens=6)
        assert [int(t) for t in got] == want, f"a Flamingo's prompt {_words(ids[0])}: decoded " \
            f"{_words(got)}, expected {_words(want)}"


# --- the next-token loss and its mask ---------------------------------------------------------------------------------
def _documents():
    """Three training documents (infer, bind, infer), right-padded: ids (3, T), loss_mask (3, T)."""
    stream = DocumentStream(DataConfig(), seed=0)
    drafts = [stream.draft(i) for i in (0, 7, 4)]
    T = max(len(d.tokens) for d in drafts)
    ids = torch.full((3, T), PAD)
    mask = torch.zeros(3, T, dtype=torch.bool)
    for b, d in enumerate(drafts):
        ids[b, :len(d.tokens)], mask[b, :len(d.tokens)] = d.tokens, d.loss_mask
    return ids, mask


def next_token_loss(fn):
    ids, mask = _documents()
    B, T = ids.shape
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(B, T, len(TOKENIZER), generator=g) * 2
    got, want = fn(logits, ids, mask), real_loss(logits, ids, mask)
    _tensor(got, (), "the loss (one scalar: the mean over scored targets)")
    # Logits that predict nothing scored must not move the loss: the last position of a row that fills the batch
    # (its last token, <EOC>, is scored: a loss without the shift reads it), and position t-1 wherever target t is
    # not scored.
    longest = int(mask[:, -1].nonzero()[0])
    for b, pos in [(longest, T - 1)] + [(b, t - 1) for b, t in (~mask).nonzero().tolist() if t > 0]:
        changed = logits.clone()
        changed[b, pos] += torch.randn(len(TOKENIZER), generator=g) * 3
        if abs(fn(changed, ids, mask).item() - got.item()) < 1e-6:
            continue
        if pos == T - 1 and b == longest:
            raise AssertionError("the loss changed with the logits at the last position, which predict nothing (no "
                                 "token follows): position t-1 predicts token t, so compare logits[:, :-1] with "
                                 "ids[:, 1:]")
        t = pos + 1
        raise AssertionError(f"row {b} {_words(ids[b][ids[b] != PAD])}: the loss changed with the logits at "
                             f"position {pos}, which predict token {t} ('{_word(ids[b, t])}'), not a scored target "
                             f"(loss_mask[{b}, {t}] is "
                             "False). loss_mask[t] marks target t, predicted from position t-1: use "
                             "logits[:, :-1][loss_mask[:, 1:]] against ids[:, 1:][loss_mask[:, 1:]]")
    n = int(mask[:, 1:].sum())
    ratio = got.item() / want.item()
    assert _same(got, want), f"the loss is {got.item():.4f}, expected {want.item():.4f} ({ratio:.3g} times it)" \
        f": cross-entropy of logits[:, :-1] against ids[:, 1:], averaged over the {n} targets where " \
        "loss_mask[:, 1:] is True"


# --- close-ended scoring ----------------------------------------------------------------------------------------------
def score_candidates(fn):
    model = _peaky_flamingo()
    ids = torch.tensor([TOKENIZER.encode("<bos> <image> a big red circle <EOC> <image> a")])
    images = torch.rand(1, 2, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    words = ["big blue square", "small red circle at top", "red", "big red circle"]
    cands = [TOKENIZER.encode(w) for w in words]
    got = fn(model, ids.clone(), images, [list(c) for c in cands])
    assert isinstance(got, (list, tuple)) and len(got) == len(cands), \
        f"return one score per candidate ({len(cands)}), got {got!r}"
    got = torch.tensor([float(s) for s in got])
    with torch.no_grad():
        want = torch.tensor([float(F.log_softmax(model(torch.cat([ids, torch.tensor([c])], 1), images=images)[0, :-1]
                                                 .float(), -1)[ids.shape[1] - 1:].gather(-1, torch.tensor(c)[:, None])
                                   .sum()) for c in cands])
    wrong = [i for i in range(len(cands)) if abs(got[i] - want[i]) >= 1e-3]
    if wrong:
        ranked = lambda s: [words[i] for i in s.argsort(descending=True).tolist()]   # noqa: E731
        raise AssertionError(
            f"{len(wrong)} of the {len(cands)} candidates score wrong" +
            (f" (candidate{'s' * (len(wrong) > 1)} {_listed(wrong)})" if len(wrong) < len(cands) else "") +
            f": yours {[round(float(v), 3) for v in got]}, expected {[round(float(v), 3) for v in want]}; your "
            f"ranking {ranked(got)}, the reference's {ranked(want)}\nexpected: log p of each of the candidate's "
            "tokens given the prompt, the images and its earlier tokens (token i is read from the logits at the "
            "position before it), summed")


# --- a clip's temporal embeddings -------------------------------------------------------------------------------------
def frame_input(fn):
    torch.manual_seed(0)
    module = FrameInput(6, 8, max_frames=4).requires_grad_(False)
    module.time.normal_()                                    # large enough to see
    B, N, Fr, S = 2, 2, 3, 3                                 # as many frames as spatial features: a mix-up is silent
    clips = torch.randn(B, N, Fr, S, 6)
    got, want = fn(module, clips), module(clips)
    _tensor(got, want.shape, "a clip's input (B*N, F*S, D): each clip on its own, its frames' features in a row")
    if not _same(got, want):
        (row, k, _), big = _first_diff(got, want)
        bad = rearrange(((got - want).abs() > 1e-5).any(-1), "(b n) (f s) -> b n f s", n=N, s=S)
        frames = [f for f in range(Fr) if bad[:, :, f].any()]
        raise AssertionError(f"{_spread(bad, 'features', f' ({B} rows x {N} clips x {Fr} frames x {S} features)')}, "
                             f"by up to {big:.3g}, in frame{'s' * (len(frames) > 1)} {_listed(frames)}; the first is "
                             f"clip {row % N} of row {row // N}, frame {k // S} feature {k % S}\nexpected: "
                             "module.proj(features) + module.time[f], flattened frame by frame")
    images = torch.randn(B, N, S, 6)
    try:
        got = fn(module, images)
    except Exception as e:
        raise AssertionError(f"images (B, N, S, Dv) must work too: an image is a 1-frame clip "
                             f"({type(e).__name__}: {e})") from None
    want = module(images)
    _tensor(got, want.shape, "an image's input (B*N, S, D): a 1-frame clip")
    assert _same(got, want), "an image is a 1-frame clip: its features get time[0]"
