"""Flamingo, assembled (paper section 2, Fig. 3): a frozen vision encoder and a frozen LM, bridged by a trained
Perceiver Resampler and gated cross-attention layers inserted before every `xattn_every`-th LM block (from block
`xattn_offset`). The switches of the paper's ablations (Table 3) are configuration: model.resampler (bridges.py),
model.xattn_block (xattn.py), model.only_immediate (masking.py).

    images --frozen CNN--> features --resampler--> visual tokens ----------.
                                                                          v (masked by phi)
    text ids --frozen embedding--> [GATED XATTN-DENSE -> frozen LM block] x L --> tied head --> logits

Trained: the resampler, the gated layers (gates included) and the embedding of `<EOC>`, a token the LM never saw (the
paper trains it too). It starts as the LM's `.`, which ends an example in the LM's text as `<EOC>` ends a chunk. The
`<image>` tag's embedding is a fixed zero vector: what the gated layers write at its position, from its own image, is
all it carries. (Our choice, measured: a trained `<image>` embedding grows to 3x a word's norm, and the frozen LM's
LayerNorms then drown the image content written there; docs/recipe.md.) Both replace their rows of the frozen table,
which stays untouched.
Everything else is frozen and out of autograd's parameter graph.

Also here: generation (greedy or beam search, stopping at `<EOC>`; media encoded once; the LM's KV cache) and
close-ended scoring by log-likelihood (paper App. A.2).

Shapes: B batch, T text length, N images per row (the most in the batch), F frames, S spatial features, R latents,
D width, V vocabulary, K beams.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange

from .encoder import VisionEncoder
from .lm import LM, Cache
from .bridges import make_bridge
from .masking import cross_attention_mask, document_starts
from .xattn import GatedCrossAttention

FF_MULT = 2   # the gated layers' feed-forward width over d_model: half the usual 4, a bridge small beside the LM


class Flamingo(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.lm = LM(cfg.vocab_size, cfg.d_model, cfg.n_layers, cfg.n_heads, cfg.context)
        self.vision = VisionEncoder(cfg.vision_width)
        self.resampler = make_bridge(cfg)
        self.xattn_at = {block: j for j, block in enumerate(cfg.xattn_blocks())}      # LM block -> its layer
        self.xattn = nn.ModuleList(GatedCrossAttention(cfg.d_model, cfg.n_heads, FF_MULT, cfg.xattn_block)
                                   for _ in self.xattn_at)
        self.register_buffer("new_ids", torch.tensor([cfg.image_id, cfg.eoc_id]), persistent=False)
        self.eoc_embed = nn.Parameter(torch.empty(cfg.d_model))
        self.reset_new_embeddings()
        self.freeze()

    # --- what trains and what does not -------------------------------------------------------------------------
    def reset_new_embeddings(self):
        """<EOC> starts as the LM's `.` (call this again after loading the LM's weights)."""
        with torch.no_grad():
            self.eoc_embed.copy_(self.lm.embed.weight[self.cfg.sep_id])

    def freeze(self):
        for p in [*self.lm.parameters(), *self.vision.parameters()]:
            p.requires_grad_(False)
        return self

    def train(self, mode=True):
        super().train(mode)
        self.lm.eval(), self.vision.eval()  # frozen parts stay in eval mode
        return self

    def trainable_parameters(self):
        """(name, parameter) pairs the bridge trains: resampler, gated layers, new token embeddings."""
        return [(n, p) for n, p in self.named_parameters() if n.startswith(("resampler.", "xattn.", "eoc_embed"))]

    def gate_values(self):
        """|tanh(alpha)| of every gate, as a dict name -> 0-dim tensor (paper Fig. 6)."""
        out = {}
        for i, layer in enumerate(self.xattn):
            if layer.kind == "gated":
                out[f"xattn{i}"] = layer.alpha_xattn.detach().tanh().abs()
                out[f"dense{i}"] = layer.alpha_dense.detach().tanh().abs()
        return out

    def gates(self):
        """|tanh(alpha)| of every gate, as a dict name -> float."""
        return {k: v.item() for k, v in self.gate_values().items()}

    @torch.no_grad()
    def calibrate(self, text_ids):
        """Set each gated layer's output scale to the RMS of the frozen LM's residual stream where it writes,
        measured on text (B, T). A trained LM's stream grows to norms of ~100 after its first block; a fresh layer
        writes vectors of norm ~1, which the LM's LayerNorms would drown until its weights grew 100-fold."""
        rms = {}

        def record(i, x):
            rms[i] = x.float().pow(2).mean().sqrt()
            return x

        self.lm(text_ids, before_block=record)
        for block, j in self.xattn_at.items():
            self.xattn[j].scale.fill_(rms[block])
        return self

    def embed_weight(self):
        new = torch.stack([torch.zeros_like(self.eoc_embed), self.eoc_embed])     # <image>: zero; <EOC>: trained
        return self.lm.embed.weight.index_put((self.new_ids,), new)                 # (V, D)

    # --- the forward pass --------------------------------------------------------------------------------------
    def encode(self, images):
        """images (..., [F,] 3, H, W) -> features (..., [F,] S, Dv), from the frozen encoder (without autograd, as
        nothing in it trains)."""
        if images.dim() < 4 or images.shape[-3] != 3:
            raise ValueError(f"images must be (B, N, 3, H, W) or (B, N, F, 3, H, W), got {tuple(images.shape)}")
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.vision.net[0].weight.requires_grad):
            feats = self.vision(images.reshape(-1, *images.shape[-3:]))            # (n, S, Dv): every picture
        return feats.view(*images.shape[:-3], *feats.shape[-2:])

    def perceive(self, features):
        """features (B, N, [F,] S, Dv) -> visual tokens (B, N, R, D): each image (or clip) resampled on its own."""
        return self.resampler(features)

    def forward(self, ids, images=None, media=None, cache=None, history=None):
        """ids (B, T) -> logits (B, T, V).

        Give the images as pixels (B, N, 3, H, W) or clips (B, N, F, 3, H, W), or already as visual tokens media
        (B, N, R, D); a row with fewer `<image>` tags than N leaves its last slots unread. A row may be left-padded
        or pack several documents, each from its `<bos>` (masking.document_starts). cache and history continue a
        prefix: history (B, P) holds the ids already in the cache.

        In eval mode the ids and the number of images are checked (prompts written by people). A training step's
        batches come from the streams, valid by construction (tests/test_toy_data.py), and a check there would make
        the host wait for the device every step.
        """
        B, T = ids.shape
        if media is None:
            media = self.perceive(self.encode(images)) if images is not None else self.eoc_embed.new_zeros(
                B, 0, 1, self.cfg.d_model)                                           # no images: (B, 0, 1, D)
        N, R = media.shape[1], media.shape[2]
        full = ids if history is None else torch.cat([history, ids], dim=1)          # (B, P+T)
        if not self.training and history is None:   # a cache's continuation was checked when its prompt entered
            self.check(full, N)
        starts = document_starts(full, self.cfg.bos_id, self.cfg.pad_id)              # (B, P+T)
        mask = cross_attention_mask(full, self.cfg.image_id, N, R, self.cfg.only_immediate, starts)[:, -T:]
        visual = rearrange(media, "b n r d -> b (n r) d")                              # all images' tokens in a row

        def before_block(i, x):
            return self.xattn[self.xattn_at[i]](x, visual, mask) if i in self.xattn_at else x

        return self.lm(ids, starts[:, -T:], cache, before_block, self.embed_weight())

    def check(self, ids, n_images):
        """A ValueError naming the problem if ids (B, T) hold a token outside the vocabulary, or a row names more
        images with `<image>` than the n_images given (reads the ids back from the device)."""
        V = self.lm.embed.num_embeddings
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= V):
            raise ValueError(f"token ids must lie in [0, {V}), got [{int(ids.min())}, {int(ids.max())}]")
        for row, n in enumerate((ids == self.cfg.image_id).sum(1).tolist()):
            if n > n_images:
                raise ValueError(f"row {row} has {n} <image> tokens but {n_images} images were given")

    # --- inference -----------------------------------------------------------------------------------------------
    @torch.no_grad()
    def sequence_logprob(self, ids, target_mask, **media):
        """Sum of log p(ids[t] | ids[:t], images) over positions where target_mask is True: (B, T) -> (B,)."""
        logits = self(ids, **media)[:, :-1].float()
        logp = F.log_softmax(logits, -1).gather(-1, ids[:, 1:, None]).squeeze(-1)  # (B, T-1)
        return (logp * target_mask[:, 1:]).sum(1)

    @torch.no_grad()
    def generate(self, ids, images=None, media=None, max_new_tokens=10, num_beams=1):
        """Continue left-padded prompts ids (B, T) until <EOC>: greedy (num_beams=1) or beam search.

        Media are encoded once and the LM's keys and values are cached; each step feeds one token. Returns the
        best continuation of each row as a list of token ids, without the <EOC>.
        """
        B, K = ids.shape[0], num_beams
        if media is None and images is not None:
            media = self.perceive(self.encode(images))
        cache = Cache.empty(len(self.lm.blocks), B, ids.device)
        logits = self(ids, media=media, cache=cache)[:, -1]                            # (B, V)
        rows = torch.arange(B, device=ids.device).repeat_interleave(K)                    # (B*K,): beams of a row
        cache.reorder(rows)
        history, logits = ids[rows], logits[rows]
        media = media[rows] if media is not None else None
        scores = torch.full((B, K), float("-inf"), device=ids.device)
        scores[:, 0] = 0                                                           # one live hypothesis to start
        scores = scores.flatten()                                                  # (B*K,)
        done = torch.zeros(B * K, dtype=torch.bool, device=ids.device)
        out = ids.new_zeros(B * K, 0)
        banned = [self.cfg.pad_id, self.cfg.bos_id, self.cfg.image_id]
        for _ in range(max_new_tokens):
            logp = F.log_softmax(logits.float(), -1)                               # (B*K, V)
            logp[:, banned] = float("-inf")
            logp[done] = float("-inf")
            logp[done, self.cfg.pad_id] = 0.0                                     # a finished beam idles at no cost
            V = logp.shape[-1]
            top, idx = (scores[:, None] + logp).view(B, K * V).topk(K, dim=-1)     # (B, K), best first
            src = (torch.arange(B, device=ids.device)[:, None] * K + idx // V).flatten()  # (B*K,) parent beam
            token = (idx % V).flatten()
            scores, out = top.flatten(), torch.cat([out[src], token[:, None]], 1)
            done = done[src] | (token == self.cfg.eoc_id)
            cache.reorder(src)
            if bool(done.all()):
                break
            logits = self(token[:, None], media=media, cache=cache, history=history[src])[:, -1]
            history = torch.cat([history[src], token[:, None]], 1)
        best = out.view(B, K, -1)[:, 0]                                            # (B, steps): top beam
        result = []
        for row in best.tolist():
            result.append(row[: row.index(self.cfg.eoc_id)] if self.cfg.eoc_id in row else row)
        return result
