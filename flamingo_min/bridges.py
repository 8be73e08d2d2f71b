"""The simpler bridges the paper's Table 3 compares the Perceiver Resampler against, and the switch between them.

Each takes the frozen features of images (B, N, S, Dv) or videos (B, N, F, S, Dv) and returns visual tokens
(B, N, R', D), as the resampler does; only R' differs, and the gated layers and the mask (masking.py) take any R'.
- mlp: a residual MLP applied to every feature on its own; R' = F*S (64 for one of our images, against 8 latents).
- transformer: plain pre-LayerNorm self-attention layers over an image's features; R' = F*S. A Perceiver layer whose
  latents *are* the features is exactly a transformer layer (keys and values: the features, then the latents, which
  here are the features again, once more), so it reuses `ResamplerLayer` with no separate media.
- mean: the features' mean, one token per image (R' = 1): nothing can say where in the picture anything was.
The paper's MLP and Transformer keep every feature too; their step time (Table 3's column) grows with it.

Shapes: B batch, N images, F frames, S spatial features, R' visual tokens per image, Dv vision width, D width.
"""
import torch.nn as nn
from einops import rearrange

from .resampler import FrameInput, PerceiverResampler, ResamplerLayer


class MLPBridge(nn.Module):
    def __init__(self, d_in, d_model, n_layers=2, max_frames=1, ff_mult=4):
        super().__init__()
        self.input = FrameInput(d_in, d_model, max_frames)
        self.layers = nn.ModuleList(nn.Sequential(nn.LayerNorm(d_model), nn.Linear(d_model, ff_mult * d_model),
                                                  nn.GELU(), nn.Linear(ff_mult * d_model, d_model))
                                    for _ in range(n_layers))
        self.ln_out = nn.LayerNorm(d_model)

    def forward(self, features):
        x = self.input(features)                                                    # (BN, FS, D)
        for layer in self.layers:
            x = x + layer(x)
        return rearrange(self.ln_out(x), "(b n) s d -> b n s d", b=features.shape[0])  # (B, N, FS, D)


class TransformerBridge(nn.Module):
    def __init__(self, d_in, d_model, n_layers=2, n_heads=4, max_frames=1):
        super().__init__()
        self.input = FrameInput(d_in, d_model, max_frames)
        self.layers = nn.ModuleList(ResamplerLayer(d_model, n_heads) for _ in range(n_layers))
        self.ln_out = nn.LayerNorm(d_model)

    def forward(self, features):
        x = self.input(features)                                                    # (BN, FS, D)
        for layer in self.layers:
            x = layer(x[:, :0], x)                                                   # self-attention over FS
        return rearrange(self.ln_out(x), "(b n) s d -> b n s d", b=features.shape[0])  # (B, N, FS, D)


class MeanBridge(nn.Module):
    def __init__(self, d_in, d_model, max_frames=1):
        super().__init__()
        self.input = FrameInput(d_in, d_model, max_frames)
        self.ln_out = nn.LayerNorm(d_model)

    def forward(self, features):
        x = self.input(features).mean(1, keepdim=True)                              # (BN, 1, D)
        return rearrange(self.ln_out(x), "(b n) one d -> b n one d", b=features.shape[0])  # (B, N, 1, D)


def make_bridge(model_cfg):
    """The bridge model.resampler names, for a ModelConfig."""
    if model_cfg.resampler == "perceiver":
        return PerceiverResampler(model_cfg.vision_width, model_cfg.d_model, model_cfg.latents,
                                  model_cfg.resampler_layers, model_cfg.n_heads, model_cfg.max_frames)
    if model_cfg.resampler == "mlp":
        return MLPBridge(model_cfg.vision_width, model_cfg.d_model, model_cfg.resampler_layers, model_cfg.max_frames)
    if model_cfg.resampler == "transformer":
        return TransformerBridge(model_cfg.vision_width, model_cfg.d_model, model_cfg.resampler_layers,
                                 model_cfg.n_heads, model_cfg.max_frames)
    if model_cfg.resampler == "mean":
        return MeanBridge(model_cfg.vision_width, model_cfg.d_model, model_cfg.max_frames)
    raise ValueError(f"unknown model.resampler {model_cfg.resampler!r}: choose perceiver, mlp, transformer or mean")
