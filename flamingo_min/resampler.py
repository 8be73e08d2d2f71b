"""The Perceiver Resampler: a variable number of visual features in, R visual tokens out (paper section 2.1, Fig. 5).

R learned latents are the queries. Keys and values are the concatenation of the visual features *and the latents*
(the paper found this slightly better than features alone). Each layer is residual attention, then a residual
feed-forward. Frames of a video get learned temporal embeddings; an image is a 1-frame video. There is no spatial
position embedding: our CNN writes position into its features itself (encoder.py), so the resampler is invariant to
the order of the spatial features, and the cost of the text's cross-attention no longer grows with image resolution.

Our choices where the paper is silent: pre-LayerNorm (on features and latents), a final LayerNorm, and a linear input
projection from the vision width to the LM width.

Shapes: B batch, N images, F frames, S spatial features per frame, R latents, Dv vision width, D width, H heads.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange, repeat


class ResamplerLayer(nn.Module):
    def __init__(self, d, n_heads, ff_mult=4):
        super().__init__()
        self.n_heads = n_heads
        self.ln_media, self.ln_latents, self.ln_ff = nn.LayerNorm(d), nn.LayerNorm(d), nn.LayerNorm(d)
        self.q = nn.Linear(d, d, bias=False)
        self.kv = nn.Linear(d, 2 * d, bias=False)
        self.out = nn.Linear(d, d, bias=False)
        self.ff = nn.Sequential(nn.Linear(d, ff_mult * d), nn.GELU(), nn.Linear(ff_mult * d, d))

    def forward(self, x, latents):
        """x (BN, FS, D) features, latents (BN, R, D) -> updated latents (BN, R, D)."""
        lat = self.ln_latents(latents)
        kv_in = torch.cat([self.ln_media(x), lat], dim=1)                           # (BN, FS+R, D)
        q = rearrange(self.q(lat), "b r (h d) -> b h r d", h=self.n_heads)
        k, v = rearrange(self.kv(kv_in), "b s (two h d) -> two b h s d", two=2, h=self.n_heads)
        y = rearrange(F.scaled_dot_product_attention(q, k, v), "b h r d -> b r (h d)")
        latents = latents + self.out(y)
        return latents + self.ff(self.ln_ff(latents))


class FrameInput(nn.Module):
    """Features of images or videos -> one row of D-wide inputs per image, each frame tagged with its time."""
    def __init__(self, d_in, d_model, max_frames):
        super().__init__()
        self.max_frames = max_frames
        self.proj = nn.Linear(d_in, d_model)
        self.time = nn.Parameter(torch.randn(max_frames, d_model) * 0.02)

    def forward(self, features):
        """features (B, N, S, Dv) for images or (B, N, F, S, Dv) for videos -> (B*N, F*S, D)."""
        if features.dim() == 4:
            features = features[:, :, None]                                         # (B, N, 1, S, Dv): 1-frame video
        if features.dim() != 5:
            raise ValueError(f"resampler input must be (B, N, S, Dv) or (B, N, F, S, Dv), got {tuple(features.shape)}")
        frames = features.shape[2]
        if frames > self.max_frames:
            raise ValueError(f"{frames} frames but only {self.max_frames} temporal embeddings: "
                             "raise model.max_frames or pass fewer frames")
        x = self.proj(features) + self.time[:frames, None]                          # (B, N, F, S, D)
        return rearrange(x, "b n f s d -> (b n) (f s) d")                            # each image on its own


class PerceiverResampler(nn.Module):
    def __init__(self, d_in, d_model, n_latents=8, n_layers=2, n_heads=4, max_frames=4):
        super().__init__()
        self.input = FrameInput(d_in, d_model, max_frames)
        self.latents = nn.Parameter(torch.randn(n_latents, d_model) * 0.02)
        self.layers = nn.ModuleList(ResamplerLayer(d_model, n_heads) for _ in range(n_layers))
        self.ln_out = nn.LayerNorm(d_model)

    def forward(self, features):
        """features (B, N, S, Dv) for images or (B, N, F, S, Dv) for videos -> visual tokens (B, N, R, D)."""
        x = self.input(features)                                                    # (BN, FS, D)
        latents = repeat(self.latents, "r d -> bn r d", bn=x.shape[0])
        for layer in self.layers:
            latents = layer(x, latents)
        return rearrange(self.ln_out(latents), "(b n) r d -> b n r d", b=features.shape[0])   # (B, N, R, D)
