"""The language model: a small GPT-style decoder, pretrained on text and then frozen (paper section 2).

Pre-LayerNorm blocks with causal self-attention through `F.scaled_dot_product_attention`, a feed-forward, and an
output head tied to the token embedding. Three choices the paper leaves to us:

- Rotary position embeddings (RoFormer). Attention then depends only on the distance between tokens, never on absolute
  position, so a 16-shot prompt (longer than any interleaved training document) looks, locally, like the text the LM
  was pretrained on. Positions are counted from the start of each token's document, so left padding changes nothing
  and a row may pack several documents (`starts`).
- A "smeared key": each head mixes into its key at position t the key of position t-1, with a learned weight. An
  induction head needs to know which token came *before* a candidate; one layer with smeared keys can find "the
  position right after an earlier copy of me" and copy it (`red dax . blue wug . red` -> `dax`). A plain 4-layer
  LM plateaus at 35-50% on 3-way binding; with smeared keys it reaches 100% within ~100 steps.
- The tied head lets the LM copy a label it has only read: an attended embedding maps straight back to its logit.

`forward` takes a `before_block(i, x)` hook; Flamingo inserts its gated cross-attention layers through it, so the LM's
loop is written once. A `Cache` holds keys and values for generation.

Shapes: B batch, T text length (new tokens), P cached length, H heads, Dh head width, D width, V vocabulary.
"""
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange


def rotary(pos, dim, base=10_000.0):
    """The rotation of every position, computed once per forward: pos (B, T) -> cos, sin (B, 1, T, dim/4) for the
    rotated quarter pairs of a head of width `dim`."""
    half = dim // 4
    freq = base ** (-torch.arange(half, device=pos.device, dtype=torch.float32) / half)  # (dim/4,)
    angle = (pos[..., None].float() * freq)[:, None]                                      # (B, 1, T, dim/4)
    return angle.cos(), angle.sin()


def rotate(x, cos, sin):
    """Rotary embedding of the first half of x's channels, (B, H, T, Dh), by the angles of `rotary`.

    The other half carries no position at all: content-only channels in which a query can match a key at any
    distance, which is what copying from far back in a 16-shot prompt needs (partial rotary, as in GPT-NeoX).
    """
    half = cos.shape[-1]
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    x1, x2, rest = x[..., :half], x[..., half:2 * half], x[..., 2 * half:]
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos, rest], dim=-1)


@dataclass
class Cache:
    """Per-layer keys and values of every token so far, plus what the next tokens need to continue."""
    keys: list           # per layer (B, H, P, Dh), rotated and smeared
    values: list         # per layer (B, H, P, Dh)
    last_key: list       # per layer (B, H, 1, Dh): the raw key of the last position, for smearing the next one
    start: torch.Tensor  # (B,) long: where the document being continued starts
    length: int = 0      # P, the tokens cached so far

    @classmethod
    def empty(cls, n_layers, batch, device=None):
        return cls([None] * n_layers, [None] * n_layers, [None] * n_layers,
                   torch.zeros(batch, dtype=torch.long, device=device))

    def reorder(self, rows):
        """Keep the given batch rows (beam search)."""
        pick = lambda ts: [t.index_select(0, rows) for t in ts]
        self.keys, self.values, self.last_key = pick(self.keys), pick(self.values), pick(self.last_key)
        self.start = self.start.index_select(0, rows)


class SelfAttention(nn.Module):
    def __init__(self, d, n_heads):
        super().__init__()
        self.n_heads = n_heads
        self.qkv = nn.Linear(d, 3 * d, bias=False)
        self.out = nn.Linear(d, d, bias=False)
        self.smear = nn.Parameter(torch.zeros(n_heads, 1, 1))  # sigmoid(0) = 0.5: half the previous key

    def forward(self, x, rope, prev_same, mask, cache=None, layer=0):
        q, k, v = self.project(x, rope, prev_same, cache, layer)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=mask is None)
        return self.out(rearrange(y, "b h t d -> b t (h d)"))

    def project(self, x, rope, prev_same, cache=None, layer=0):
        """Queries, keys (rotated, smeared, cached ones first) and values, each (B, H, T or P+T, Dh). Apart from
        `forward` so that a probe can recompute the attention weights softmax(q k^T / sqrt(Dh)) that the fused
        kernel never shows (flamingo_min/lab/probes.py)."""
        q, k, v = rearrange(self.qkv(x), "b t (three h d) -> three b h t d", three=3, h=self.n_heads)
        prev = k[:, :, :-1]                                                   # (B, H, T-1, Dh): key of t-1
        cached = cache.last_key[layer] if cache is not None else None
        first = cached if cached is not None else torch.zeros_like(k[:, :, :1])
        prev = torch.cat([first, prev], dim=2) * prev_same[:, None, :, None]  # (B, H, T, Dh); never across documents
        lam = torch.sigmoid(self.smear)
        k_raw, k = k, rotate((1 - lam) * k + lam * prev, *rope)
        q = rotate(q, *rope)
        if cache is not None:
            if cache.keys[layer] is not None:
                k = torch.cat([cache.keys[layer], k], dim=2)                  # (B, H, P+T, Dh)
                v = torch.cat([cache.values[layer], v], dim=2)
            cache.keys[layer], cache.values[layer], cache.last_key[layer] = k, v, k_raw[:, :, -1:]
        return q, k, v


class Block(nn.Module):
    def __init__(self, d, n_heads):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = SelfAttention(d, n_heads)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

    def forward(self, x, rope, prev_same, mask, cache=None, layer=0):
        x = x + self.attn(self.ln1(x), rope, prev_same, mask, cache, layer)
        return x + self.mlp(self.ln2(x))


class LM(nn.Module):
    def __init__(self, vocab_size, d_model=128, n_layers=4, n_heads=4, context=256):
        super().__init__()
        self.context, self.head_dim = context, d_model // n_heads
        self.embed = nn.Embedding(vocab_size, d_model)
        self.blocks = nn.ModuleList(Block(d_model, n_heads) for _ in range(n_layers))
        self.ln_f = nn.LayerNorm(d_model)
        nn.init.normal_(self.embed.weight, std=0.02)

    def forward(self, ids, starts=None, cache=None, before_block=None, embed_weight=None):
        """ids (B, T) -> logits (B, T, V). cache continues a prefix of P tokens.

        starts (B, T) long: the position (counted from the cache's first token) where each token's document starts;
        a token attends to its own document only, from there to itself, and counts its position from there. This
        is how left padding (a document of its own before the prompt's first token) and rows that pack several
        documents are read (masking.document_starts). Default: each row is one document from position 0, or the
        cache's document continued.
        embed_weight replaces the embedding table (input and tied output), so Flamingo can train new token rows.
        """
        weight = self.embed.weight if embed_weight is None else embed_weight
        B, T = ids.shape
        P = cache.length if cache is not None else 0
        at = torch.arange(P, P + T, device=ids.device)                           # (T,) positions in the row
        plain = starts is None and cache is None                                 # one document: causal attention
        if starts is None:
            starts = (cache.start if cache is not None else at.new_zeros(B))[:, None].expand(B, T)
        pos = at - starts                                                        # (B, T): position in its document
        if P + T > self.context and int(pos.max()) >= self.context:              # the shape first: no device read
            raise ValueError(f"sequence of {int(pos.max()) + 1} tokens exceeds the LM's context of {self.context}: "
                             "use fewer shots or raise model.context (and retrain the LM)")
        rope = rotary(pos, self.head_dim)                                       # once, for every block
        prev_same = at - 1 >= starts                                             # (B, T): is t-1 in my document?
        mask = None
        if not plain:
            key = torch.arange(P + T, device=ids.device)                         # (P+T,)
            mask = (key <= at[:, None]) & (key >= starts[..., None])             # (B, T, P+T): my document, causal
            mask = mask[:, None]                                                 # (B, 1, T, P+T): every head
        x = F.embedding(ids, weight)
        for i, block in enumerate(self.blocks):
            if before_block is not None:
                x = before_block(i, x)
            x = block(x, rope, prev_same, mask, cache, i)
        if cache is not None:
            cache.start, cache.length = starts[:, -1], P + T
        return self.ln_f(x) @ weight.T
