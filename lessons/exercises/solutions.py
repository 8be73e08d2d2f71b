"""Reference answers to the exercises. Try first; `python main.py check NAME --hint` helps before this does."""
import torch
import torch.nn.functional as F
from einops import rearrange

from toy_data import TOKENIZER


def phi(input_ids, image_token_id):
    return (input_ids == image_token_id).long().cumsum(-1)


def cross_attention_mask(input_ids, image_token_id, num_images, tokens_per_image, only_immediate=True):
    p = phi(input_ids, image_token_id)[..., None]
    image_of = torch.arange(num_images * tokens_per_image, device=input_ids.device) // tokens_per_image + 1
    return (image_of == p) if only_immediate else (image_of <= p)


def gated_xattn_forward(layer, x, media, mask):
    sees = mask.any(-1, keepdim=True)
    q = rearrange(layer.q(layer.ln_q(x)), "b t (h d) -> b h t d", h=layer.n_heads)
    k, v = rearrange(layer.kv(layer.ln_kv(media)), "b m (two h d) -> two b h m d", two=2, h=layer.n_heads)
    y = F.scaled_dot_product_attention(q, k, v, attn_mask=(mask | ~sees)[:, None])
    y = layer.out(rearrange(y, "b h t d -> b t (h d)") * sees)
    x = x + torch.tanh(layer.alpha_xattn) * layer.scale * y
    return x + torch.tanh(layer.alpha_dense) * layer.scale * layer.ff_out(F.relu(layer.ff_in(layer.ln_ff(x))) ** 2)


def resampler_attention(layer, x, latents):
    lat = layer.ln_latents(latents)
    kv_in = torch.cat([layer.ln_media(x), lat], dim=1)
    q = rearrange(layer.q(lat), "b r (h d) -> b h r d", h=layer.n_heads)
    k, v = rearrange(layer.kv(kv_in), "b s (two h d) -> two b h s d", two=2, h=layer.n_heads)
    latents = latents + layer.out(rearrange(F.scaled_dot_product_attention(q, k, v), "b h r d -> b r (h d)"))
    return latents + layer.ff(layer.ln_ff(latents))


def contrastive_loss(image_emb, text_emb, logit_scale):
    logits = logit_scale.exp() * F.normalize(image_emb, dim=-1) @ F.normalize(text_emb, dim=-1).T
    target = torch.arange(len(logits), device=logits.device)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


def build_prompt(support, query, text_examples=()):
    chunks = [e.chunk() for e in support] if support else [e.chunk(with_image=False) for e in text_examples]
    text = " ".join(["<bos>", *chunks, "<image>", query.prefix]).strip()
    return text, [e.scene for e in support] + [query.scene]


@torch.no_grad()
def greedy_decode(model, ids, images, max_new_tokens=10):
    out = []
    for _ in range(max_new_tokens):
        logits = model(ids, images=images)[0, -1].clone()
        logits[[TOKENIZER.pad_id, TOKENIZER.bos_id, TOKENIZER.image_id]] = float("-inf")
        tok = int(logits.argmax())
        if tok == TOKENIZER.eoc_id:
            break
        out.append(tok)
        ids = torch.cat([ids, torch.tensor([[tok]], device=ids.device)], dim=1)
    return out


def next_token_loss(logits, ids, loss_mask):
    scored = loss_mask[:, 1:]                          # target t is scored or not; position t-1 predicts it
    return F.cross_entropy(logits[:, :-1][scored], ids[:, 1:][scored])


@torch.no_grad()
def score_candidates(model, ids, images, candidates):
    T, scores = ids.shape[1], []
    for cand in candidates:
        full = torch.cat([ids, torch.tensor([cand], device=ids.device)], dim=1)
        logp = F.log_softmax(model(full, images=images)[0, :-1].float(), -1)   # row t: log p(token t+1)
        scores.append(logp[T - 1:].gather(-1, full[0, T:, None]).sum().item())
    return scores


def frame_input(module, features):
    if features.dim() == 4:
        features = features[:, :, None]                                   # an image is a 1-frame clip
    x = module.proj(features) + module.time[:features.shape[2], None]     # (B, N, F, S, D): time[f] on frame f
    return rearrange(x, "b n f s d -> (b n) (f s) d")
