"""Shared test settings: hypothesis profiles and a small model configuration.

Profiles: `ci` (derandomized, bounded examples, no deadline: repeatable on a shared 2-core machine) is used when CI is
set; `dev` explores more. Choose one with HYPOTHESIS_PROFILE=dev|ci.
"""
import os
import sys

import torch
from hypothesis import HealthCheck, settings

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

settings.register_profile("ci", derandomize=True, max_examples=30, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("dev", max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))
torch.set_num_threads(min(2, torch.get_num_threads()))


from flamingo_min.config import ModelConfig  # noqa: E402

# A model small enough for property tests: every part present, every shape exercised.
TINY = ModelConfig(d_model=32, n_layers=2, n_heads=2, context=96, vision_width=16, embed_dim=16, latents=3,
                   resampler_layers=1, xattn_every=1, xattn_ff_mult=2)


def open_gates(model, seed=0):
    """Give every gate a non-zero value so the bridge actually changes the output."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in model.xattn:
            layer.alpha_xattn.fill_(0.5 + torch.rand((), generator=g).item())
            layer.alpha_dense.fill_(0.5 + torch.rand((), generator=g).item())
    return model
