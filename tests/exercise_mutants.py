"""Wrong versions of each exercise that a student plausibly writes, and a fragment of the message its check must give.

tests/test_exercises.py proves that every check fails every mutant here (status "failing", with the fragment in the
message) and passes the reference solution. A mutant is the reference solution with one mistake, so the check has to
catch that mistake and not some other difference."""
import torch
import torch.nn.functional as F
from einops import rearrange

from lessons.exercises import solutions
from toy_data import TOKENIZER


# --- phi -------------------------------------------------------------------------------------------------------------
def phi_no_running_count(input_ids, image_token_id):
    return (input_ids == image_token_id).long()


def phi_zero_based(input_ids, image_token_id):
    return (input_ids == image_token_id).long().cumsum(-1) - 1


def phi_image_not_counted_at_itself(input_ids, image_token_id):
    is_image = (input_ids == image_token_id).long()
    return is_image.cumsum(-1) - is_image


def phi_counts_the_whole_row(input_ids, image_token_id):
    return (input_ids == image_token_id).long().sum(-1, keepdim=True).expand_as(input_ids)


def phi_float(input_ids, image_token_id):
    return (input_ids == image_token_id).float().cumsum(-1)


# --- cross_attention_mask --------------------------------------------------------------------------------------------
def _image_of(num_images, tokens_per_image):
    return torch.arange(num_images * tokens_per_image) // tokens_per_image + 1


def mask_always_all_previous(input_ids, image_token_id, num_images, tokens_per_image, only_immediate=True):
    p = solutions.phi(input_ids, image_token_id)[..., None]
    return _image_of(num_images, tokens_per_image) <= p


def mask_always_only_immediate(input_ids, image_token_id, num_images, tokens_per_image, only_immediate=True):
    p = solutions.phi(input_ids, image_token_id)[..., None]
    return _image_of(num_images, tokens_per_image) == p


def mask_zero_based_images(input_ids, image_token_id, num_images, tokens_per_image, only_immediate=True):
    p = solutions.phi(input_ids, image_token_id)[..., None]
    image_of = torch.arange(num_images * tokens_per_image) // tokens_per_image     # forgot the + 1
    return (image_of == p) if only_immediate else (image_of <= p)


def mask_tokens_interleaved(input_ids, image_token_id, num_images, tokens_per_image, only_immediate=True):
    p = solutions.phi(input_ids, image_token_id)[..., None]
    image_of = torch.arange(num_images * tokens_per_image) % num_images + 1       # image of token j, wrongly
    return (image_of == p) if only_immediate else (image_of <= p)


def mask_strictly_before(input_ids, image_token_id, num_images, tokens_per_image, only_immediate=True):
    p = solutions.phi(input_ids, image_token_id)[..., None]
    image_of = _image_of(num_images, tokens_per_image)
    return (image_of == p) if only_immediate else (image_of < p)


# --- gated_xattn_forward ---------------------------------------------------------------------------------------------
def _heads(layer, x, media):
    q = rearrange(layer.q(layer.ln_q(x)), "b t (h d) -> b h t d", h=layer.n_heads)
    k, v = rearrange(layer.kv(layer.ln_kv(media)), "b m (two h d) -> two b h m d", two=2, h=layer.n_heads)
    return q, k, v


def _dense(layer, x, a=None, square=True):
    h = F.relu(layer.ff_in(layer.ln_ff(x)))
    return x + (torch.tanh(layer.alpha_dense) if a is None else a) * layer.scale * layer.ff_out(h ** 2 if square else h)


def xattn_no_empty_row_rule(layer, x, media, mask):
    q, k, v = _heads(layer, x, media)
    y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None])      # rows that see nothing: NaN or 0
    x = x + torch.tanh(layer.alpha_xattn) * layer.scale * layer.out(rearrange(y, "b h t d -> b t (h d)"))
    return _dense(layer, x)


def xattn_large_negative_fill(layer, x, media, mask):
    q, k, v = _heads(layer, x, media)
    s = (q @ k.transpose(-2, -1) / q.shape[-1] ** 0.5).masked_fill(~mask[:, None], -1e9)
    y = torch.softmax(s, -1) @ v                                                # empty rows: uniform over every image
    x = x + torch.tanh(layer.alpha_xattn) * layer.scale * layer.out(rearrange(y, "b h t d -> b t (h d)"))
    return _dense(layer, x)


def xattn_no_tanh(layer, x, media, mask):
    sees = mask.any(-1, keepdim=True)
    q, k, v = _heads(layer, x, media)
    y = F.scaled_dot_product_attention(q, k, v, attn_mask=(mask | ~sees)[:, None])
    x = x + layer.alpha_xattn * layer.scale * layer.out(rearrange(y, "b h t d -> b t (h d)") * sees)
    return _dense(layer, x, a=layer.alpha_dense)


def xattn_no_scale(layer, x, media, mask):
    sees = mask.any(-1, keepdim=True)
    q, k, v = _heads(layer, x, media)
    y = F.scaled_dot_product_attention(q, k, v, attn_mask=(mask | ~sees)[:, None])
    x = x + torch.tanh(layer.alpha_xattn) * layer.out(rearrange(y, "b h t d -> b t (h d)") * sees)
    return x + torch.tanh(layer.alpha_dense) * layer.ff_out(F.relu(layer.ff_in(layer.ln_ff(x))) ** 2)


def xattn_relu_not_squared(layer, x, media, mask):
    sees = mask.any(-1, keepdim=True)
    q, k, v = _heads(layer, x, media)
    y = F.scaled_dot_product_attention(q, k, v, attn_mask=(mask | ~sees)[:, None])
    x = x + torch.tanh(layer.alpha_xattn) * layer.scale * layer.out(rearrange(y, "b h t d -> b t (h d)") * sees)
    return _dense(layer, x, square=False)


def xattn_dense_reads_the_input(layer, x, media, mask):
    sees = mask.any(-1, keepdim=True)
    q, k, v = _heads(layer, x, media)
    y = F.scaled_dot_product_attention(q, k, v, attn_mask=(mask | ~sees)[:, None])
    attended = x + torch.tanh(layer.alpha_xattn) * layer.scale * layer.out(rearrange(y, "b h t d -> b t (h d)") * sees)
    return attended + _dense(layer, x) - x


def xattn_no_dense_branch(layer, x, media, mask):
    sees = mask.any(-1, keepdim=True)
    q, k, v = _heads(layer, x, media)
    y = F.scaled_dot_product_attention(q, k, v, attn_mask=(mask | ~sees)[:, None])
    return x + torch.tanh(layer.alpha_xattn) * layer.scale * layer.out(rearrange(y, "b h t d -> b t (h d)") * sees)


# --- resampler_attention ---------------------------------------------------------------------------------------------
def _resample(layer, x, latents, with_latents=True, heads=None, residual=True, ln_ff=True):
    lat = layer.ln_latents(latents)
    kv_in = torch.cat([layer.ln_media(x), lat], dim=1) if with_latents else layer.ln_media(x)
    h = heads or layer.n_heads
    q = rearrange(layer.q(lat), "b r (h d) -> b h r d", h=h)
    k, v = rearrange(layer.kv(kv_in), "b s (two h d) -> two b h s d", two=2, h=h)
    y = layer.out(rearrange(F.scaled_dot_product_attention(q, k, v), "b h r d -> b r (h d)"))
    latents = latents + y if residual else y
    return latents + layer.ff(layer.ln_ff(latents) if ln_ff else latents)


def resampler_features_only(layer, x, latents):
    return _resample(layer, x, latents, with_latents=False)


def resampler_one_head(layer, x, latents):
    return _resample(layer, x, latents, heads=1)


def resampler_no_residual(layer, x, latents):
    return _resample(layer, x, latents, residual=False)


def resampler_ff_without_norm(layer, x, latents):
    return _resample(layer, x, latents, ln_ff=False)


def resampler_raw_features(layer, x, latents):
    lat = layer.ln_latents(latents)
    kv_in = torch.cat([x, lat], dim=1)                                          # forgot ln_media
    q = rearrange(layer.q(lat), "b r (h d) -> b h r d", h=layer.n_heads)
    k, v = rearrange(layer.kv(kv_in), "b s (two h d) -> two b h s d", two=2, h=layer.n_heads)
    latents = latents + layer.out(rearrange(F.scaled_dot_product_attention(q, k, v), "b h r d -> b r (h d)"))
    return latents + layer.ff(layer.ln_ff(latents))


# --- contrastive_loss ------------------------------------------------------------------------------------------------
def _clip(img, txt, scale, normalise=True, directions=2, exp=True, reduce=2):
    if normalise:
        img, txt = F.normalize(img, dim=-1), F.normalize(txt, dim=-1)
    logits = (scale.exp() if exp else scale) * img @ txt.T
    t = torch.arange(len(logits))
    loss = F.cross_entropy(logits, t) + (F.cross_entropy(logits.T, t) if directions == 2 else 0)
    return loss / reduce


def contrastive_unnormalised(image_emb, text_emb, logit_scale):
    return _clip(image_emb, text_emb, logit_scale, normalise=False)


def contrastive_one_direction(image_emb, text_emb, logit_scale):
    return _clip(image_emb, text_emb, logit_scale, directions=1, reduce=1)


def contrastive_scale_not_exponentiated(image_emb, text_emb, logit_scale):
    return _clip(image_emb, text_emb, logit_scale, exp=False)


def contrastive_sum_of_directions(image_emb, text_emb, logit_scale):
    return _clip(image_emb, text_emb, logit_scale, reduce=1)


def contrastive_normalised_over_the_batch(image_emb, text_emb, logit_scale):
    return _clip(F.normalize(image_emb, dim=0), F.normalize(text_emb, dim=0), logit_scale, normalise=False)


# --- build_prompt ----------------------------------------------------------------------------------------------------
def prompt_no_bos(support, query, text_examples=()):
    text, scenes = solutions.build_prompt(support, query, text_examples)
    return text[len("<bos> "):], scenes


def prompt_ignores_text_examples(support, query, text_examples=()):
    return solutions.build_prompt(support, query, ())


def prompt_text_examples_with_image(support, query, text_examples=()):
    chunks = [e.chunk() for e in support] if support else [e.chunk() for e in text_examples]
    text = " ".join(["<bos>", *chunks, "<image>", query.prefix]).strip()
    return text, [e.scene for e in support] + [query.scene]


def prompt_not_stripped(support, query, text_examples=()):
    chunks = [e.chunk() for e in support] if support else [e.chunk(with_image=False) for e in text_examples]
    return " ".join(["<bos>", *chunks, "<image>", query.prefix]), [e.scene for e in support] + [query.scene]


def prompt_query_scene_missing(support, query, text_examples=()):
    text, scenes = solutions.build_prompt(support, query, text_examples)
    return text, scenes[:-1]


def prompt_query_scene_first(support, query, text_examples=()):
    text, scenes = solutions.build_prompt(support, query, text_examples)
    return text, scenes[-1:] + scenes[:-1]


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
    return _decode(model, ids, images, max_new_tokens, banned=())


@torch.no_grad()
def decode_bans_only_pad(model, ids, images, max_new_tokens=10):
    return _decode(model, ids, images, max_new_tokens, banned=(TOKENIZER.pad_id,))


@torch.no_grad()
def decode_keeps_eoc(model, ids, images, max_new_tokens=10):
    return _decode(model, ids, images, max_new_tokens, keep_eoc=True)


@torch.no_grad()
def decode_never_stops(model, ids, images, max_new_tokens=10):
    return _decode(model, ids, images, max_new_tokens, stop=False)


@torch.no_grad()
def decode_bans_eoc_too(model, ids, images, max_new_tokens=10):
    return _decode(model, ids, images, max_new_tokens, banned=(0, 1, TOKENIZER.image_id, TOKENIZER.eoc_id))


@torch.no_grad()
def decode_never_extends(model, ids, images, max_new_tokens=10):
    return _decode(model, ids, images, max_new_tokens, extend=False)


@torch.no_grad()
def decode_one_too_many(model, ids, images, max_new_tokens=10):
    return _decode(model, ids, images, max_new_tokens, steps=1)


@torch.no_grad()
def decode_without_images(model, ids, images, max_new_tokens=10):
    return _decode(model, ids, images, max_new_tokens, with_images=False)


# --- next_token_loss -------------------------------------------------------------------------------------------------
def loss_not_shifted(logits, ids, loss_mask):
    return F.cross_entropy(logits[loss_mask], ids[loss_mask])


def loss_mask_of_the_predictor(logits, ids, loss_mask):
    scored = loss_mask[:, :-1]                                                  # the mask lined up with the wrong side
    return F.cross_entropy(logits[:, :-1][scored], ids[:, 1:][scored])


def loss_ignores_the_mask(logits, ids, loss_mask):
    return F.cross_entropy(logits[:, :-1].transpose(1, 2), ids[:, 1:])


def loss_mean_over_every_position(logits, ids, loss_mask):
    each = F.cross_entropy(logits[:, :-1].transpose(1, 2), ids[:, 1:], reduction="none")
    return (each * loss_mask[:, 1:]).sum() / each.numel()


def loss_sum(logits, ids, loss_mask):
    scored = loss_mask[:, 1:]
    return F.cross_entropy(logits[:, :-1][scored], ids[:, 1:][scored], reduction="sum")


def loss_ignores_padding_only(logits, ids, loss_mask):
    scored = ids[:, 1:] != TOKENIZER.pad_id                                     # scores <image> and unscored labels
    return F.cross_entropy(logits[:, :-1][scored], ids[:, 1:][scored])


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
    return _score(model, ids, images, candidates, lambda lg, full, T: _own(lg, full, T).mean())


@torch.no_grad()
def score_not_shifted(model, ids, images, candidates):
    return _score(model, ids, images, candidates,
                  lambda lg, full, T: F.log_softmax(lg, -1)[T:].gather(-1, full[T:, None]).sum())


@torch.no_grad()
def score_raw_logits(model, ids, images, candidates):
    return _score(model, ids, images, candidates, lambda lg, full, T: lg[T - 1:-1].gather(-1, full[T:, None]).sum())


@torch.no_grad()
def score_includes_the_prompt(model, ids, images, candidates):
    return _score(model, ids, images, candidates,
                  lambda lg, full, T: F.log_softmax(lg[:-1], -1).gather(-1, full[1:, None]).sum())


@torch.no_grad()
def score_first_token_only(model, ids, images, candidates):
    return _score(model, ids, images, candidates, lambda lg, full, T: _own(lg, full, T)[0])


@torch.no_grad()
def score_probabilities(model, ids, images, candidates):
    return _score(model, ids, images, candidates, lambda lg, full, T: _own(lg, full, T).exp().sum())


# --- frame_input -----------------------------------------------------------------------------------------------------
def _frames(features):
    return features[:, :, None] if features.dim() == 4 else features


def frames_no_time(module, features):
    return rearrange(module.proj(_frames(features)), "b n f s d -> (b n) (f s) d")


def frames_time_per_feature(module, features):
    x = module.proj(_frames(features))
    return rearrange(x + module.time[:x.shape[3]], "b n f s d -> (b n) (f s) d")


def frames_interleaved(module, features):
    x = module.proj(_frames(features))
    return rearrange(x + module.time[:x.shape[2], None], "b n f s d -> (b n) (s f) d")


def frames_time_from_the_end(module, features):
    x = module.proj(_frames(features))
    return rearrange(x + module.time[-x.shape[2]:, None], "b n f s d -> (b n) (f s) d")


def frames_video_only(module, features):
    x = module.proj(features) + module.time[:features.shape[2], None]          # an image's S taken for frames
    return rearrange(x, "b n f s d -> (b n) (f s) d")


def frames_all_clips_in_one_row(module, features):
    x = module.proj(_frames(features))
    return rearrange(x + module.time[:x.shape[2], None], "b n f s d -> b (n f s) d")


MUTANTS = {
    "phi": [(phi_no_running_count, "has 1 <image> at or before it, so its phi is 1, not 0"),
            (phi_zero_based, "has 0 <image> at or before it"),
            (phi_image_not_counted_at_itself, "('<image>') has 1 <image> at or before it"),
            (phi_counts_the_whole_row, "has 0 <image> at or before it"),
            (phi_float, "LongTensor")],
    "cross_attention_mask": [(mask_always_all_previous, "only image phi = 2 is visible"),
                             (mask_always_only_immediate, "every image 1..phi = 1..2 is visible"),
                             (mask_zero_based_images, "seen no image yet (phi 0), so it attends nothing"),
                             (mask_tokens_interleaved, "token 2 of image 1"),
                             (mask_strictly_before, "every image 1..phi")],
    "gated_xattn_forward": [(xattn_no_empty_row_rule, "softmax over nothing is NaN"),
                            (xattn_large_negative_fill, "must add exactly 0 there"),
                            (xattn_no_tanh, "gate it with tanh(layer.alpha_xattn)"),
                            (xattn_no_scale, "multiplied by layer.scale"),
                            (xattn_relu_not_squared, "squares its ReLU"),
                            (xattn_dense_reads_the_input, "after the attention branch was added"),
                            (xattn_no_dense_branch, "the dense branch is missing")],
    "resampler_attention": [(resampler_features_only, "the features AND the latents"),
                            (resampler_one_head, "heads, not one"),
                            (resampler_no_residual, "the attention is residual"),
                            (resampler_ff_without_norm, "reads layer.ln_ff(latents)"),
                            (resampler_raw_features, "differs from the real layer")],
    "contrastive_loss": [(contrastive_unnormalised, "must not depend on embedding norm"),
                         (contrastive_one_direction, "must be symmetric"),
                         (contrastive_scale_not_exponentiated, "logit_scale.exp()"),
                         (contrastive_sum_of_directions, "not their sum"),
                         (contrastive_normalised_over_the_batch, "must not depend on embedding norm")],
    "build_prompt": [(prompt_no_bos, "starts with '<bos>'"),
                     (prompt_ignores_text_examples, "text examples' chunks stand in"),
                     (prompt_text_examples_with_image, "without '<image>'"),
                     (prompt_not_stripped, "ends with a space"),
                     (prompt_query_scene_missing, "one scene per <image>"),
                     (prompt_query_scene_first, "in order")],
    "greedy_decode": [(decode_bans_nothing, "ban <pad>, <bos> and <image>"),
                      (decode_bans_only_pad, "<image> is a special token"),
                      (decode_keeps_eoc, "leave it out"),
                      (decode_never_stops, "stop at <EOC>"),
                      (decode_bans_eoc_too, "decoding must stop at <EOC>"),
                      (decode_never_extends, "never extends the prompt"),
                      (decode_one_too_many, "must return 1 tokens, got 2"),
                      (decode_without_images, "without the prompt's images")],
    "next_token_loss": [(loss_not_shifted, "the last position, which predict nothing"),
                        (loss_mask_of_the_predictor, "not a scored target"),
                        (loss_ignores_the_mask, "not a scored target"),
                        (loss_ignores_padding_only, "not a scored target (loss_mask"),
                        (loss_mean_over_every_position, "not by every position"),
                        (loss_sum, "not their sum")],
    "score_candidates": [(score_mean, "the mean favours long candidates"),
                         (score_not_shifted, "expected"),
                         (score_raw_logits, "not from the raw logits"),
                         (score_includes_the_prompt, "the prompt's own tokens are scored"),
                         (score_first_token_only, "only the candidate's first token"),
                         (score_probabilities, "expected")],
    "frame_input": [(frames_no_time, "temporal embeddings are missing"),
                    (frames_time_per_feature, "per spatial feature"),
                    (frames_interleaved, "interleaved"),
                    (frames_time_from_the_end, "counted from the first frame"),
                    (frames_video_only, "an image is a 1-frame clip"),
                    (frames_all_clips_in_one_row, "shape")],
}
