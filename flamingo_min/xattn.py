"""GATED XATTN-DENSE, the layer Flamingo inserts before a frozen LM block (paper section 2.2, Fig. 4).

    y = y + tanh(alpha_xattn) * CrossAttention(q = LN(y), kv = LN(visual tokens), mask)
    y = y + tanh(alpha_dense) * FFW(LN(y))            FFW: Linear -> squared ReLU -> Linear

Both alphas are scalars initialised at 0, so a freshly inserted layer is the identity and Flamingo starts as exactly
the frozen LM; training opens the gates (paper Fig. 6).

A text token with no image before it (mask row all False) gets an exact zero from the cross-attention branch: not the
NaN that softmax over nothing gives, and not uniform attention over every image (a bug several public implementations
shipped when they filled masked scores with a large negative number). The paper is silent on this case; zero is the
common reading. The gated feed-forward still applies to every token.

Two variants for the paper's ablations (Table 3), `kind`:
- "ungated": the same layer without tanh(alpha): y = y + CrossAttention(...), y = y + FFW(...). At initialisation it
  already writes into the frozen LM's stream, so the model does not start as the LM.
- "vanilla": the original Transformer decoder's cross-attention, y = y + CrossAttention(...), ungated and with no
  feed-forward of its own. (The paper inserts it inside the frozen block, after self-attention; we insert it before
  the block like every other variant, so that only the layer differs.)

Shapes: B batch, T text length, M visual tokens (N images x R latents), D width, H heads.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange


KINDS = ("gated", "ungated", "vanilla")


class GatedCrossAttention(nn.Module):
    def __init__(self, d_model, n_heads=4, ff_mult=4, kind="gated"):
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"unknown cross-attention kind {kind!r}: choose from {', '.join(KINDS)}")
        self.n_heads, self.kind = n_heads, kind
        self.ln_q, self.ln_kv = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.q = nn.Linear(d_model, d_model, bias=False)
        self.kv = nn.Linear(d_model, 2 * d_model, bias=False)
        self.out = nn.Linear(d_model, d_model, bias=False)   # no bias: a zero attention output stays zero
        if kind != "vanilla":
            self.ln_ff = nn.LayerNorm(d_model)
            self.ff_in, self.ff_out = nn.Linear(d_model, ff_mult * d_model), nn.Linear(ff_mult * d_model, d_model)
        if kind == "gated":
            self.alpha_xattn = nn.Parameter(torch.zeros(()))
            self.alpha_dense = nn.Parameter(torch.zeros(()))
        # The size of the residual stream this layer writes into (Flamingo.calibrate measures it on the frozen LM).
        self.register_buffer("scale", torch.ones(()))

    def attend(self, x, media, mask):
        """Masked cross-attention, before its gate: x (B, T, D), media (B, M, D), mask (B, T, M) -> (B, T, D)."""
        sees = mask.any(dim=-1, keepdim=True)                                     # (B, T, 1): any image before t?
        if media.shape[1] == 0:
            return torch.zeros_like(x)
        q = rearrange(self.q(self.ln_q(x)), "b t (h d) -> b h t d", h=self.n_heads)
        k, v = rearrange(self.kv(self.ln_kv(media)), "b m (two h d) -> two b h m d", two=2, h=self.n_heads)
        # Rows that see nothing would softmax over an empty set (NaN); let them attend anywhere, then zero them.
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=(mask | ~sees)[:, None])   # (B, H, T, Dh)
        return self.out(rearrange(y, "b h t d -> b t (h d)") * sees)

    def forward(self, x, media, mask):
        gated = self.kind == "gated"
        x = x + (torch.tanh(self.alpha_xattn) if gated else 1) * self.scale * self.attend(x, media, mask)
        if self.kind == "vanilla":
            return x
        dense = self.ff_out(F.relu(self.ff_in(self.ln_ff(x))) ** 2)
        return x + (torch.tanh(self.alpha_dense) if gated else 1) * self.scale * dense
