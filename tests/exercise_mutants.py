"""Wrong versions of the exercises that the checker does not know as mistakes, and a fragment of the message its check
must give for each.

The usual mistakes live with the exercises (lessons/exercises/mistakes.py), and the checker names one when a result
behaves like it. These are held back from it, so that tests/test_exercises.py can prove that every check also fails a
wrong version it cannot name: with a message that describes the difference (the fragment here) and says that no
known mistake matched. Each is the reference solution with one mistake."""
import torch
import torch.nn.functional as F
from einops import rearrange

from lessons.exercises import solutions
from lessons.exercises.mistakes import _clip, _decode, _dense, _frames, _heads, _own, _score
from toy_data import TOKENIZER


def phi_counts_the_whole_row(input_ids, image_token_id):
    return (input_ids == image_token_id).long().sum(-1, keepdim=True).expand_as(input_ids)


def mask_strictly_before(input_ids, image_token_id, num_images, tokens_per_image, only_immediate=True):
    p = solutions.phi(input_ids, image_token_id)[..., None]
    image_of = torch.arange(num_images * tokens_per_image) // tokens_per_image + 1
    return (image_of == p) if only_immediate else (image_of < p)


def xattn_large_negative_fill(layer, x, media, mask):
    q, k, v = _heads(layer, x, media)
    s = (q @ k.transpose(-2, -1) / q.shape[-1] ** 0.5).masked_fill(~mask[:, None], -1e9)
    y = torch.softmax(s, -1) @ v                                                # empty rows: uniform over every image
    x = x + torch.tanh(layer.alpha_xattn) * layer.scale * layer.out(rearrange(y, "b h t d -> b t (h d)"))
    return _dense(layer, x)


def xattn_dense_not_normalised(layer, x, media, mask):
    sees = mask.any(-1, keepdim=True)
    q, k, v = _heads(layer, x, media)
    y = F.scaled_dot_product_attention(q, k, v, attn_mask=(mask | ~sees)[:, None])
    x = x + torch.tanh(layer.alpha_xattn) * layer.scale * layer.out(rearrange(y, "b h t d -> b t (h d)") * sees)
    return x + torch.tanh(layer.alpha_dense) * layer.scale * layer.ff_out(F.relu(layer.ff_in(x)) ** 2)   # no ln_ff


def resampler_raw_features(layer, x, latents):
    lat = layer.ln_latents(latents)
    kv_in = torch.cat([x, lat], dim=1)                                          # forgot ln_media
    q = rearrange(layer.q(lat), "b r (h d) -> b h r d", h=layer.n_heads)
    k, v = rearrange(layer.kv(kv_in), "b s (two h d) -> two b h s d", two=2, h=layer.n_heads)
    latents = latents + layer.out(rearrange(F.scaled_dot_product_attention(q, k, v), "b h r d -> b r (h d)"))
    return latents + layer.ff(layer.ln_ff(latents))


def resampler_queries_not_normalised(layer, x, latents):
    lat = layer.ln_latents(latents)
    kv_in = torch.cat([layer.ln_media(x), lat], dim=1)
    q = rearrange(layer.q(latents), "b r (h d) -> b h r d", h=layer.n_heads)      # the queries skip ln_latents
    k, v = rearrange(layer.kv(kv_in), "b s (two h d) -> two b h s d", two=2, h=layer.n_heads)
    latents = latents + layer.out(rearrange(F.scaled_dot_product_attention(q, k, v), "b h r d -> b r (h d)"))
    return latents + layer.ff(layer.ln_ff(latents))


def contrastive_normalised_over_the_batch(image_emb, text_emb, logit_scale):
    return _clip(F.normalize(image_emb, dim=0), F.normalize(text_emb, dim=0), logit_scale, normalise=False)


def contrastive_targets_reversed(image_emb, text_emb, logit_scale):
    logits = logit_scale.exp() * F.normalize(image_emb, dim=-1) @ F.normalize(text_emb, dim=-1).T
    t = torch.arange(len(logits)).flip(0)
    return (F.cross_entropy(logits, t) + F.cross_entropy(logits.T, t)) / 2


def prompt_query_scene_first(support, query, text_examples=()):
    text, scenes = solutions.build_prompt(support, query, text_examples)
    return text, scenes[-1:] + scenes[:-1]


@torch.no_grad()
def decode_one_too_many(model, ids, images, max_new_tokens=10):
    return _decode(model, ids, images, max_new_tokens, steps=1)


def loss_ignores_padding_only(logits, ids, loss_mask):
    scored = ids[:, 1:] != TOKENIZER.pad_id                                     # scores <image> and unscored labels
    return F.cross_entropy(logits[:, :-1][scored], ids[:, 1:][scored])


@torch.no_grad()
def score_probabilities(model, ids, images, candidates):
    return _score(model, ids, images, candidates, lambda lg, full, T: _own(lg, full, T).exp().sum())


def frames_all_clips_in_one_row(module, features):
    x = module.proj(_frames(features))
    return rearrange(x + module.time[:x.shape[2], None], "b n f s d -> b (n f s) d")


def frames_time_twice(module, features):
    x = module.proj(_frames(features))
    return rearrange(x + 2 * module.time[:x.shape[2], None], "b n f s d -> (b n) (f s) d")


HELD_BACK = {
    "phi": [(phi_counts_the_whole_row, "in rows 2, 3 and 4 of 5: at 3 <image> tokens")],
    "cross_attention_mask": [(mask_strictly_before, "only_immediate=False: 36 cells of the mask are wrong, in rows "
                                                    "1, 2, 3 and 4: 36 hide the token's own image")],
    "gated_xattn_forward": [(xattn_large_negative_fill, "must add exactly 0 there"),
                            (xattn_dense_not_normalised, "the dense branch alone")],
    "resampler_attention": [(resampler_raw_features, "latents (3 batch rows x 4) differs"),
                            (resampler_queries_not_normalised, "latents (3 batch rows x 4) differs")],
    "contrastive_loss": [(contrastive_normalised_over_the_batch, "must not depend on embedding norm"),
                         (contrastive_targets_reversed, "times it")],
    "build_prompt": [(prompt_query_scene_first, "in order")],
    "greedy_decode": [(decode_one_too_many, "must return exactly 1 token, got 2")],
    "next_token_loss": [(loss_ignores_padding_only, "not a scored target (loss_mask")],
    "score_candidates": [(score_probabilities, "candidates score wrong")],
    "frame_input": [(frames_all_clips_in_one_row, "shape"), (frames_time_twice, "in frames 0, 1 and 2")],
}
