"""Shared test settings: hypothesis profiles, a small model configuration and a tiny trained run.

Profiles: `ci` (derandomized, bounded examples, no deadline: repeatable on a shared 2-core machine) is used when CI is
set; `dev` explores more. Choose one with HYPOTHESIS_PROFILE=dev|ci.
"""
import os
import signal
import subprocess
import time

# Idle OpenMP threads sleep soon, so that the test workers share the cores; set before torch loads OpenMP, unless the
# environment chose already (docs/performance.md: two jobs on one machine).
if "OMP_WAIT_POLICY" not in os.environ:
    os.environ.setdefault("GOMP_SPINCOUNT", "1000")
import pytest
import torch
from hypothesis import HealthCheck, settings

from flamingo_min import train
from flamingo_min.config import ModelConfig, make_config
from flamingo_min import runs

settings.register_profile("ci", derandomize=True, max_examples=30, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("dev", max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))
# pytest-xdist runs the files in several worker processes (pytest.ini): the cores are shared out between them.
WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
torch.set_num_threads(max(1, min(2, torch.get_num_threads()) // WORKERS))


# A model small enough for property tests: every part present, every shape exercised.
TINY = ModelConfig(d_model=32, n_layers=2, n_heads=2, context=96, vision_width=16, embed_dim=16, latents=3,
                   resampler_layers=1, xattn_every=1)


def open_gates(model, seed=0):
    """Give every gate a non-zero value so the bridge actually changes the output."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in model.xattn:
            layer.alpha_xattn.fill_(0.5 + torch.rand((), generator=g).item())
            layer.alpha_dense.fill_(0.5 + torch.rand((), generator=g).item())
    return model


# A whole run (every stage) small enough to train in seconds: the command line and the evaluation are tested on it.
TINY_RUN = ["model.d_model=32", "model.n_layers=2", "model.n_heads=2", "model.vision_width=16", "model.embed_dim=16",
            "model.latents=3", "model.resampler_layers=1", "model.context=240", "data.text_len=64",
            "train.lm_steps=12", "train.vision_steps=8", "train.flamingo_steps=12", "train.lm_batch=4",
            "train.vision_batch=16", "train.doc_batch=4", "train.pair_batch=4", "train.ckpt_every=4",
            "train.log_every=1", "train.warmup=4", "train.eval_episodes=3"]


def train_all(run, seed=0):
    cfg = make_config("quick", TINY_RUN)
    runs.start_run(run, cfg)
    return [train.run_stage(run, s, cfg, seed, progress=False) for s in runs.STAGES]


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    run = str(tmp_path_factory.mktemp("run"))
    train_all(run)
    return run


def kill_when_written(cmd, path, env, timeout=300):
    """Start cmd, SIGKILL it (and every process it started: torchrun's workers) the moment `path` exists; assert it
    was killed, not finished."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                            start_new_session=True)
    deadline = time.time() + timeout
    while not os.path.exists(path) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.005)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:   # it had already finished
        pass
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, f"{cmd[2]} finished before it could be killed"
