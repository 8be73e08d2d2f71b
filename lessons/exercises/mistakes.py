"""The usual mistakes in each exercise, as code, and how the checker recognises one in a failing submission.

Each mistake is the reference solution with one thing done wrong. Its docstring is what the checker says when a
submission behaves like it: the mistake, then why it is wrong. "Behaves like" is measured on the check's own inputs:
while a check runs, `Recorder` keeps a copy of every call it makes to the student's function and of what came back;
when the check fails, `recognise` runs every mistake of that exercise on the same calls, and names the first one that
gives the same results (or fails the same way) on all of them. Where none does, the check's own message stands, with a
line saying that no known mistake matched.

Like solutions.py, this file gives answers away: read it only when stuck. tests/exercise_mutants.py holds a few more
wrong versions that are deliberately left out of here, so that every check is also tested on mistakes it cannot name.
"""
import copy
import math

import torch
import torch.nn.functional as F
from einops import rearrange

from . import solutions
from toy_data import TOKENIZER


# --- phi -------------------------------------------------------------------------------------------------------------
def phi_marks_instead_of_counting(input_ids, image_token_id):
    """phi marks the <image> tokens instead of counting them. phi(t) is the number of <image> tokens at or before t
    (a running count, cumsum): the text after an image must keep that image's index until the next one."""
    return (input_ids == image_token_id).long()


def phi_zero_based(input_ids, image_token_id):
    """phi counts images from 0. Images are numbered from 1, and phi = 0 means "no image yet": with a 0-based count
    the first image's text reads as image-less and text before any image gets -1."""
    return (input_ids == image_token_id).long().cumsum(-1) - 1


def phi_image_not_counted_at_itself(input_ids, image_token_id):
    """phi leaves each <image> token out of its own count. The count is of the images AT or before t: an <image>
    token belongs to its own image (phi = its index), not to the previous one."""
    is_image = (input_ids == image_token_id).long()
    return is_image.cumsum(-1) - is_image


def phi_float(input_ids, image_token_id):
    """phi returns floats. phi is an image index, used to index and compare: return a LongTensor (.long() before the
    cumsum, or keep the integer dtype)."""
    return (input_ids == image_token_id).float().cumsum(-1)


# --- cross_attention_mask --------------------------------------------------------------------------------------------
def _image_of(num_images, tokens_per_image):
    return torch.arange(num_images * tokens_per_image) // tokens_per_image + 1


def mask_always_all_previous(input_ids, image_token_id, num_images, tokens_per_image, only_immediate=True):
    """The mask ignores only_immediate and always lets text see every earlier image (<=). With only_immediate=True
    (the paper's choice) a token sees only image phi(t) (==); all previous images is the ablation."""
    p = solutions.phi(input_ids, image_token_id)[..., None]
    return _image_of(num_images, tokens_per_image) <= p


def mask_always_only_immediate(input_ids, image_token_id, num_images, tokens_per_image, only_immediate=True):
    """The mask ignores only_immediate and always lets text see only image phi(t) (==). With only_immediate=False a
    token sees every image 1..phi(t) (<=)."""
    p = solutions.phi(input_ids, image_token_id)[..., None]
    return _image_of(num_images, tokens_per_image) == p


def mask_zero_based_images(input_ids, image_token_id, num_images, tokens_per_image, only_immediate=True):
    """The visual tokens' image indices start at 0 (the + 1 is missing). phi is 1-based, so compared with 0-based
    indices every text token sees the image AFTER its own, and text before any image (phi 0) sees image 1."""
    p = solutions.phi(input_ids, image_token_id)[..., None]
    image_of = torch.arange(num_images * tokens_per_image) // tokens_per_image
    return (image_of == p) if only_immediate else (image_of <= p)


def mask_tokens_interleaved(input_ids, image_token_id, num_images, tokens_per_image, only_immediate=True):
    """The visual tokens are taken as interleaved (token j belongs to image j % num_images + 1). They come image by
    image: image 1's tokens_per_image tokens, then image 2's, so token j belongs to image j // tokens_per_image + 1."""
    p = solutions.phi(input_ids, image_token_id)[..., None]
    image_of = torch.arange(num_images * tokens_per_image) % num_images + 1
    return (image_of == p) if only_immediate else (image_of <= p)


# --- gated_xattn_forward ---------------------------------------------------------------------------------------------
def _heads(layer, x, media):
    q = rearrange(layer.q(layer.ln_q(x)), "b t (h d) -> b h t d", h=layer.n_heads)
    k, v = rearrange(layer.kv(layer.ln_kv(media)), "b m (two h d) -> two b h m d", two=2, h=layer.n_heads)
    return q, k, v


def _attended(layer, x, media, mask):
    """The attention branch, before its gate: zero for rows that see no image."""
    sees = mask.any(-1, keepdim=True)
    q, k, v = _heads(layer, x, media)
    y = F.scaled_dot_product_attention(q, k, v, attn_mask=(mask | ~sees)[:, None])
    return layer.out(rearrange(y, "b h t d -> b t (h d)") * sees)


def _dense(layer, x, gate=None, scale=None, square=True):
    h = F.relu(layer.ff_in(layer.ln_ff(x)))
    gate = torch.tanh(layer.alpha_dense) if gate is None else gate
    return x + gate * (layer.scale if scale is None else scale) * layer.ff_out(h ** 2 if square else h)


def xattn_returns_x(layer, x, media, mask):
    """The layer returns x unchanged. Both branches are residual additions, each open as far as its tanh gate:
    x + tanh(alpha_xattn) * scale * attention, then + tanh(alpha_dense) * scale * feed-forward."""
    return x


def xattn_no_empty_row_rule(layer, x, media, mask):
    """Tokens that see no image attend over an empty set. A mask row that is all False makes softmax over nothing
    (NaN with the plain math): attend with mask | ~sees, then multiply the branch by sees, so that those tokens get
    an exact 0 from it."""
    q, k, v = _heads(layer, x, media)
    y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None])
    x = x + torch.tanh(layer.alpha_xattn) * layer.scale * layer.out(rearrange(y, "b h t d -> b t (h d)"))
    return _dense(layer, x)


def xattn_no_tanh(layer, x, media, mask):
    """The branches are multiplied by alpha itself, not tanh(alpha). The gates are tanh(alpha_xattn) and
    tanh(alpha_dense) (paper section 2.2): bounded in (-1, 1), and 0 at initialisation."""
    x = x + layer.alpha_xattn * layer.scale * _attended(layer, x, media, mask)
    return _dense(layer, x, gate=layer.alpha_dense)


def xattn_no_scale(layer, x, media, mask):
    """The gated branches are not multiplied by layer.scale. layer.scale is the size of the LM's residual stream at
    this depth: without it an open gate writes far too little (or too much) into the LM."""
    x = x + torch.tanh(layer.alpha_xattn) * _attended(layer, x, media, mask)
    return _dense(layer, x, scale=1.0)


def xattn_relu_not_squared(layer, x, media, mask):
    """The feed-forward uses relu, not relu squared. This layer's feed-forward is ff_out(relu(ff_in(.)) ** 2), as the
    LM's own blocks are."""
    x = x + torch.tanh(layer.alpha_xattn) * layer.scale * _attended(layer, x, media, mask)
    return _dense(layer, x, square=False)


def xattn_dense_reads_the_input(layer, x, media, mask):
    """The feed-forward reads the layer's input, not x after the attention branch. The two residual steps come in
    order: y = x + attention, then y + feed-forward(ln_ff(y))."""
    attended = x + torch.tanh(layer.alpha_xattn) * layer.scale * _attended(layer, x, media, mask)
    return attended + _dense(layer, x) - x


def xattn_no_dense_branch(layer, x, media, mask):
    """The dense branch is missing. After the attention branch comes the gated feed-forward:
    + tanh(alpha_dense) * scale * ff_out(relu(ff_in(ln_ff(x))) ** 2)."""
    return x + torch.tanh(layer.alpha_xattn) * layer.scale * _attended(layer, x, media, mask)


# --- resampler_attention ---------------------------------------------------------------------------------------------
def _resample(layer, x, latents, with_latents=True, heads=None, residual=True, ln_ff=True, ff=True):
    lat = layer.ln_latents(latents)
    kv_in = torch.cat([layer.ln_media(x), lat], dim=1) if with_latents else layer.ln_media(x)
    h = heads or layer.n_heads
    q = rearrange(layer.q(lat), "b r (h d) -> b h r d", h=h)
    k, v = rearrange(layer.kv(kv_in), "b s (two h d) -> two b h s d", two=2, h=h)
    y = layer.out(rearrange(F.scaled_dot_product_attention(q, k, v), "b h r d -> b r (h d)"))
    latents = latents + y if residual else y
    return latents + layer.ff(layer.ln_ff(latents) if ln_ff else latents) if ff else latents


def resampler_features_only(layer, x, latents):
    """Keys and values come from the features alone. They come from the features AND the latents,
    kv(cat([ln_media(x), ln_latents(latents)], 1)) (paper section 2.1): a latent may attend to the latents."""
    return _resample(layer, x, latents, with_latents=False)


def resampler_one_head(layer, x, latents):
    """The attention has one head. Split queries, keys and values into layer.n_heads heads
    ('b s (h d) -> b h s d'), attend in each, and merge them back before layer.out."""
    return _resample(layer, x, latents, heads=1)


def resampler_no_residual(layer, x, latents):
    """The attention is not residual. The new latents are latents + layer.out(attention): the attention adds to the
    latents, it does not replace them."""
    return _resample(layer, x, latents, residual=False)


def resampler_ff_without_norm(layer, x, latents):
    """The feed-forward reads the latents without layer.ln_ff. Like the attention, it reads a normalised input:
    latents + layer.ff(layer.ln_ff(latents))."""
    return _resample(layer, x, latents, ln_ff=False)


def resampler_no_feed_forward(layer, x, latents):
    """The feed-forward is missing. After the attention each layer adds latents + layer.ff(layer.ln_ff(latents))."""
    return _resample(layer, x, latents, ff=False)


# --- contrastive_loss ------------------------------------------------------------------------------------------------
def _clip(img, txt, scale, normalise=True, directions=2, exp=True, reduce=2):
    if normalise:
        img, txt = F.normalize(img, dim=-1), F.normalize(txt, dim=-1)
    logits = (scale.exp() if exp else scale) * img @ txt.T
    t = torch.arange(len(logits))
    loss = F.cross_entropy(logits, t) + (F.cross_entropy(logits.T, t) if directions == 2 else 0)
    return loss / reduce


def contrastive_unnormalised(image_emb, text_emb, logit_scale):
    """The embeddings are not normalised. The logits are cosine similarities: F.normalize(emb, dim=-1) first, or the
    loss depends on how long each embedding is rather than where it points."""
    return _clip(image_emb, text_emb, logit_scale, normalise=False)


def contrastive_one_direction(image_emb, text_emb, logit_scale):
    """Only image -> text is scored. The loss is symmetric: the mean of image -> text (rows) and text -> image
    (columns, logits.T) cross-entropy."""
    return _clip(image_emb, text_emb, logit_scale, directions=1, reduce=1)


def contrastive_scale_not_exponentiated(image_emb, text_emb, logit_scale):
    """The similarities are multiplied by logit_scale, not logit_scale.exp(). logit_scale is the log of the inverse
    temperature (CLIP's parametrisation, which keeps the temperature positive)."""
    return _clip(image_emb, text_emb, logit_scale, exp=False)


def contrastive_sum_of_directions(image_emb, text_emb, logit_scale):
    """The two directions are added, not averaged. The loss is the mean of image -> text and text -> image: their sum
    is twice it, and doubles every gradient."""
    return _clip(image_emb, text_emb, logit_scale, reduce=1)


def contrastive_no_temperature(image_emb, text_emb, logit_scale):
    """logit_scale is not used. Cosine similarities lie in [-1, 1]: without the learnt inverse temperature
    (logit_scale.exp()) the softmax over them stays nearly uniform."""
    return _clip(image_emb, text_emb, torch.zeros(()))


# --- build_prompt ----------------------------------------------------------------------------------------------------
def prompt_no_bos(support, query, text_examples=()):
    """The prompt does not start with '<bos>'. Every document the model trained on starts with it."""
    text, scenes = solutions.build_prompt(support, query, text_examples)
    return text[len("<bos> "):], scenes


def prompt_ignores_text_examples(support, query, text_examples=()):
    """With no support, the text examples are left out. Zero-shot means two text-only examples (paper App. A.2), not
    the query alone: their chunks stand in for the support."""
    return solutions.build_prompt(support, query, ())


def prompt_text_examples_with_image(support, query, text_examples=()):
    """The text examples keep their '<image>'. They have no picture: chunk(with_image=False), or there would be more
    <image> tokens than scenes."""
    chunks = [e.chunk() for e in support] if support else [e.chunk() for e in text_examples]
    text = " ".join(["<bos>", *chunks, "<image>", query.prefix]).strip()
    return text, [e.scene for e in support] + [query.scene]


def prompt_not_stripped(support, query, text_examples=()):
    """The prompt ends with a space. A query with an empty prefix leaves one after '<image>': strip the text."""
    chunks = [e.chunk() for e in support] if support else [e.chunk(with_image=False) for e in text_examples]
    return " ".join(["<bos>", *chunks, "<image>", query.prefix]), [e.scene for e in support] + [query.scene]


def prompt_query_scene_missing(support, query, text_examples=()):
    """The query's scene is missing. There is one scene per <image> in the text, the query's last."""
    text, scenes = solutions.build_prompt(support, query, text_examples)
    return text, scenes[:-1]


# --- greedy_decode ---------------------------------------------------------------------------------------------------
def _decode(model, ids, images, max_new_tokens, banned=(TOKENIZER.pad_id, TOKENIZER.bos_id, TOKENIZER.image_id),
            keep_eoc=False, stop=True, extend=True, with_images=True, steps=0):
    out = []
    for _ in range(max_new_tokens + steps):
        logits = (model(ids, images=images) if with_images else model(ids))[0, -1].clone()
        logits[list(banned)] = float("-inf")
        tok = int(logits.argmax())
        if tok == TOKENIZER.eoc_id and stop:
            if keep_eoc:
                out.append(tok)
            break
        out.append(tok)
        if extend:
            ids = torch.cat([ids, torch.tensor([[tok]])], dim=1)
    return out


@torch.no_grad()
def decode_bans_nothing(model, ids, images, max_new_tokens=10):
    """No token is banned. <pad>, <bos> and <image> are special tokens, never part of an answer: set their logits to
    -inf before the argmax."""
    return _decode(model, ids, images, max_new_tokens, banned=())


@torch.no_grad()
def decode_bans_only_pad(model, ids, images, max_new_tokens=10):
    """Only <pad> is banned. <bos> and <image> are special tokens too: ban all three."""
    return _decode(model, ids, images, max_new_tokens, banned=(TOKENIZER.pad_id,))


@torch.no_grad()
def decode_keeps_eoc(model, ids, images, max_new_tokens=10):
    """The answer ends with <EOC>. <EOC> marks where the answer stops: stop there and leave it out."""
    return _decode(model, ids, images, max_new_tokens, keep_eoc=True)


@torch.no_grad()
def decode_never_stops(model, ids, images, max_new_tokens=10):
    """Decoding does not stop at <EOC>. The answer is the text before the first <EOC>; what follows belongs to a
    chunk the model imagines next."""
    return _decode(model, ids, images, max_new_tokens, stop=False)


@torch.no_grad()
def decode_bans_eoc_too(model, ids, images, max_new_tokens=10):
    """<EOC> is banned with the special tokens. It must stay allowed: the model ends its answer by choosing it."""
    banned = (TOKENIZER.pad_id, TOKENIZER.bos_id, TOKENIZER.image_id, TOKENIZER.eoc_id)
    return _decode(model, ids, images, max_new_tokens, banned=banned)


@torch.no_grad()
def decode_never_extends(model, ids, images, max_new_tokens=10):
    """The chosen token is never fed back. Append each chosen token to the ids, so that the next step predicts the
    token after it; otherwise every step answers the same prompt again."""
    return _decode(model, ids, images, max_new_tokens, extend=False)


@torch.no_grad()
def decode_without_images(model, ids, images, max_new_tokens=10):
    """The model is called without the images. Pass images=images at every step: the answer is about them."""
    return _decode(model, ids, images, max_new_tokens, with_images=False)


# --- next_token_loss -------------------------------------------------------------------------------------------------
def loss_not_shifted(logits, ids, loss_mask):
    """The logits are not shifted. Position t-1 predicts token t: compare logits[:, :-1] with ids[:, 1:], and take the
    mask of those targets, loss_mask[:, 1:]; unshifted, each position is scored on the token it already reads."""
    return F.cross_entropy(logits[loss_mask], ids[loss_mask])


def loss_mask_of_the_predictor(logits, ids, loss_mask):
    """The mask is lined up with the predicting positions. loss_mask[t] marks TARGET t, which is predicted from
    position t-1: select with loss_mask[:, 1:], not loss_mask[:, :-1]."""
    scored = loss_mask[:, :-1]
    return F.cross_entropy(logits[:, :-1][scored], ids[:, 1:][scored])


def loss_ignores_the_mask(logits, ids, loss_mask):
    """The loss mask is not used. Only scored targets count: not <image>, not padding, not a label that the document
    could not have predicted (toy_data/documents.py)."""
    return F.cross_entropy(logits[:, :-1].transpose(1, 2), ids[:, 1:])


def loss_mean_over_every_position(logits, ids, loss_mask):
    """The loss is divided by every position, not by the scored ones. It is the mean over the scored targets: divide
    by how many are scored, or the loss shrinks as documents get more padding."""
    each = F.cross_entropy(logits[:, :-1].transpose(1, 2), ids[:, 1:], reduction="none")
    return (each * loss_mask[:, 1:]).sum() / each.numel()


def loss_sum(logits, ids, loss_mask):
    """The loss is the sum over the scored targets, not their mean. A sum grows with the batch, and the learning rate
    would have to follow it."""
    scored = loss_mask[:, 1:]
    return F.cross_entropy(logits[:, :-1][scored], ids[:, 1:][scored], reduction="sum")


# --- score_candidates ------------------------------------------------------------------------------------------------
def _score(model, ids, images, candidates, read):
    T, out = ids.shape[1], []
    for cand in candidates:
        full = torch.cat([ids, torch.tensor([cand])], dim=1)
        out.append(float(read(model(full, images=images)[0].float(), full[0], T)))
    return out


def _own(logits, full, T):
    """log p of each candidate token, read at the position before it."""
    return F.log_softmax(logits[:-1], -1)[T - 1:].gather(-1, full[T:, None])[:, 0]


@torch.no_grad()
def score_mean(model, ids, images, candidates):
    """A candidate's score is the mean of its tokens' log-probabilities. It is their SUM, the log of the probability
    of the whole candidate; the mean favours long candidates."""
    return _score(model, ids, images, candidates, lambda lg, full, T: _own(lg, full, T).mean())


@torch.no_grad()
def score_not_shifted(model, ids, images, candidates):
    """Each candidate token is read at its own position. The logits at position t predict token t+1: read token t
    at row t-1 (rows T-1.. for the candidate that starts at T)."""
    return _score(model, ids, images, candidates,
                  lambda lg, full, T: F.log_softmax(lg, -1)[T:].gather(-1, full[T:, None]).sum())


@torch.no_grad()
def score_raw_logits(model, ids, images, candidates):
    """The scores are raw logits. Take log_softmax over the vocabulary first: logits are not log-probabilities, and
    their sums do not compare across candidates."""
    return _score(model, ids, images, candidates, lambda lg, full, T: lg[T - 1:-1].gather(-1, full[T:, None]).sum())


@torch.no_grad()
def score_includes_the_prompt(model, ids, images, candidates):
    """The prompt's own tokens are scored too. Score only the candidate's tokens: the prompt is the same for every
    candidate, and it only adds noise."""
    return _score(model, ids, images, candidates,
                  lambda lg, full, T: F.log_softmax(lg[:-1], -1).gather(-1, full[1:, None]).sum())


@torch.no_grad()
def score_first_token_only(model, ids, images, candidates):
    """Only the candidate's first token is scored. Sum over all of its tokens: `big red circle` and `big blue square`
    share their first token."""
    return _score(model, ids, images, candidates, lambda lg, full, T: _own(lg, full, T)[0])


# --- frame_input -----------------------------------------------------------------------------------------------------
def _frames(features):
    return features[:, :, None] if features.dim() == 4 else features


def frames_no_time(module, features):
    """The temporal embeddings are missing. Add module.time[f] to every feature of frame f: without it the resampler
    sees a set of features, the same in any order of the frames."""
    return rearrange(module.proj(_frames(features)), "b n f s d -> (b n) (f s) d")


def frames_time_per_feature(module, features):
    """time[s] is added per spatial feature. Every feature of frame f gets time[f]: module.time[:F, None] broadcasts
    over the S features."""
    x = module.proj(_frames(features))
    return rearrange(x + module.time[:x.shape[3]], "b n f s d -> (b n) (f s) d")


def frames_interleaved(module, features):
    """The frames' features are interleaved. Keep each frame's S features together, frame by frame:
    'b n f s d -> (b n) (f s) d'."""
    x = module.proj(_frames(features))
    return rearrange(x + module.time[:x.shape[2], None], "b n f s d -> (b n) (s f) d")


def frames_time_from_the_end(module, features):
    """The temporal embeddings are taken from the end. Frame f gets time[f], counted from the first frame: an F-frame
    clip uses time[:F]."""
    x = module.proj(_frames(features))
    return rearrange(x + module.time[-x.shape[2]:, None], "b n f s d -> (b n) (f s) d")


def frames_video_only(module, features):
    """Images (B, N, S, Dv) are not handled. An image is a 1-frame clip: give it a frame axis (features[:, :, None])
    and it gets time[0]."""
    x = module.proj(features) + module.time[:features.shape[2], None]
    return rearrange(x, "b n f s d -> (b n) (f s) d")


MISTAKES = {
    "phi": [phi_marks_instead_of_counting, phi_zero_based, phi_image_not_counted_at_itself, phi_float],
    "cross_attention_mask": [mask_always_all_previous, mask_always_only_immediate, mask_zero_based_images,
                             mask_tokens_interleaved],
    "gated_xattn_forward": [xattn_returns_x, xattn_no_empty_row_rule, xattn_no_tanh, xattn_no_scale,
                            xattn_relu_not_squared, xattn_dense_reads_the_input, xattn_no_dense_branch],
    "resampler_attention": [resampler_features_only, resampler_one_head, resampler_no_residual,
                            resampler_ff_without_norm, resampler_no_feed_forward],
    "contrastive_loss": [contrastive_unnormalised, contrastive_one_direction, contrastive_scale_not_exponentiated,
                         contrastive_sum_of_directions, contrastive_no_temperature],
    "build_prompt": [prompt_no_bos, prompt_ignores_text_examples, prompt_text_examples_with_image, prompt_not_stripped,
                     prompt_query_scene_missing],
    "greedy_decode": [decode_bans_nothing, decode_bans_only_pad, decode_keeps_eoc, decode_never_stops,
                      decode_bans_eoc_too, decode_never_extends, decode_without_images],
    "next_token_loss": [loss_not_shifted, loss_mask_of_the_predictor, loss_ignores_the_mask,
                        loss_mean_over_every_position, loss_sum],
    "score_candidates": [score_mean, score_not_shifted, score_raw_logits, score_includes_the_prompt,
                         score_first_token_only],
    "frame_input": [frames_no_time, frames_time_per_feature, frames_interleaved, frames_time_from_the_end,
                    frames_video_only],
}


def named(mistake):
    """What the checker says of a mistake: its docstring on one line."""
    return " ".join(mistake.__doc__.split())


# --- recognising one -------------------------------------------------------------------------------------------------
def _kept(value):
    """A copy of a result that later calls cannot change: tensors detached and cloned."""
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if type(value) in (list, tuple):
        return type(value)(_kept(v) for v in value)
    return value


class Recorder:
    """Stands in for the student's function while its check runs: calls it, and keeps a copy of the arguments of
    every call and of what came of it (a result, or the kind of exception)."""

    def __init__(self, fn):
        self.fn, self.calls = fn, []
        self.__globals__ = getattr(fn, "__globals__", {})   # the checks swap names where fn looks them up

    def __call__(self, *args, **kwargs):
        given = copy.deepcopy((args, kwargs))   # before the call: a function may change its arguments in place
        try:
            out = self.fn(*args, **kwargs)
        except Exception as e:
            self.calls.append((given, ("raised", type(e))))
            raise
        self.calls.append((given, ("returned", _kept(out))))
        return out


def _alike(a, b, tol=1e-4):
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        return a.shape == b.shape and a.dtype.is_floating_point == b.dtype.is_floating_point and \
            torch.allclose(a.double(), b.double(), rtol=tol, atol=tol, equal_nan=True)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_alike(x, y, tol) for x, y in zip(a, b))
    numbers = (int, float, torch.Tensor)
    if isinstance(a, numbers) and isinstance(b, numbers) and not isinstance(a, bool) and not isinstance(b, bool):
        try:
            x, y = float(a), float(b)   # a 0-d tensor against a number
        except (TypeError, ValueError, RuntimeError):
            return False
        return (math.isnan(x) and math.isnan(y)) or math.isclose(x, y, rel_tol=tol, abs_tol=tol)
    return type(a) is type(b) and a == b


def _replay(mistake, given):
    from .checks import plain_attention   # the attention kernel the check gave the student's function
    args, kwargs = copy.deepcopy(given)
    try:
        with plain_attention(mistake):
            return "returned", _kept(mistake(*args, **kwargs))
    except Exception as e:
        return "raised", type(e)


def recognise(name, calls):
    """The first known mistake of exercise `name` that gives the recorded result of every recorded call, or None."""
    for mistake in MISTAKES.get(name, ()):
        if calls and all(_same(_replay(mistake, given), outcome) for given, outcome in calls):
            return mistake
    return None


def _same(ours, theirs):
    (how, value), (their_how, their_value) = ours, theirs
    return how == their_how and (value is their_value if how == "raised" else _alike(value, their_value))


def explain(name, calls, error):
    """A failing check's message: the known mistake first when the submission behaves like one, then what the
    check found; else what the check found, and that no known mistake matched."""
    found = str(error) if isinstance(error, AssertionError) else f"{type(error).__name__}: {error}"
    mistake = recognise(name, calls)
    if mistake is None:
        return f"{found}\n(no known mistake behaves like this)"
    return f"known mistake: {named(mistake)}\n" + "\n".join("  " + line for line in
                                                            f"The check found: {found}".splitlines())
