"""Benchmarks: speed, memory and scaling, measured side by side in one run (`python main.py bench`).

1. The Flamingo-stage training step (frozen encoder forward, then forward, backward and AdamW over the bridge) at the
   default configuration: tokens/s and images/s. Beside it, the same dimensions built from flamingo-pytorch 0.1.2's
   PerceiverResampler and GatedCrossAttentionBlock around the same frozen LM (optional extra: `pip install
   flamingo-pytorch==0.1.2`); without it that column is left out.
2. Scaling: step time and activation memory against image resolution, images per sequence and text length.
   "Activation memory" is the bytes autograd saves for backward (exact on any device); on CUDA the peak allocated
   memory is reported too.
3. Utilisation: model FLOPs per second (torch's FLOP counter) over the dense matrix-multiply throughput measured on
   the same machine in the same run.
4. Inference: latency of one k-shot captioning episode, with the KV cache and by recomputing the prefix.
5. Compiled: the training step of section 1 again, ours and the peer's, after torch.compile of every repeated block
   (train.compile_blocks; the peer's resampler and gated blocks), with the time the first call took to compile.
6. The recipe: 12 real steps of each stage (data, forward, backward, AdamW: `train.run_stage` on a scratch folder),
   eager and compiled, and the whole default recipe's training time projected from them, compile time included.
7. Where a real step goes (`bench --profile` runs this section alone, and prints torch.profiler's operator table of
   the bridge's step): each stage's real step at the default configuration split into data (drafting, rendering,
   collating, moving), forward, backward and optimiser, beside section 1's model-only step.
8. Contention: a few LM steps alone, then two such processes at once, for three ways idle OpenMP threads wait (ours:
   spin briefly, then sleep; sleep at once; OpenMP's default, a long spin): what a lesson beside a training run costs.

Every timing is a median over interleaved repeats after warm-up; ratios compare numbers from the same run. Sections 5
and 6 compile (minutes on a small CPU); `--no-compile` leaves them out.
"""
import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager, nullcontext

import torch
import torch.nn as nn
from einops import rearrange
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from toy_data import TOKENIZER, build_prompt, make_episode, render

from .. import train
from ..batches import Bridge, bridge_batch, to_device
from ..config import ModelConfig, make_config
from ..evaluate import left_pad
from ..flamingo import FF_MULT, Flamingo
from ..lm import Cache
from ..masking import cross_attention_mask
from .. import runs


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device, repeats, warmup=2, summary=statistics.median):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        sync(device)
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return summary(times)


def interleaved(fns, device, repeats, warmup=2):
    """Median time of each callable, alternating them so that machine noise hits all alike."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            sync(device)
            t0 = time.perf_counter()
            fn()
            sync(device)
            times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


@contextmanager
def saved_bytes():
    """Count the bytes of every tensor autograd saves for backward inside the block."""
    total = [0]

    def pack(t):
        total[0] += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        yield total


# --- the peer: flamingo-pytorch's modules around the same frozen LM ---------------------------------------------------
class PeerBridge(nn.Module):
    """flamingo-pytorch 0.1.2's PerceiverResampler and GatedCrossAttentionBlock at our dimensions, plugged into our
    frozen LM through the same before_block hook, so that only the bridge differs."""

    def __init__(self, model, cfg):
        super().__init__()
        from flamingo_pytorch import GatedCrossAttentionBlock, PerceiverResampler
        head = cfg.d_model // cfg.n_heads
        self.model = model
        self.proj = nn.Linear(cfg.vision_width, cfg.d_model)
        self.resampler = PerceiverResampler(dim=cfg.d_model, depth=cfg.resampler_layers, dim_head=head,
                                            heads=cfg.n_heads, num_latents=cfg.latents, num_media_embeds=1)
        self.xattn = nn.ModuleList(GatedCrossAttentionBlock(dim=cfg.d_model, dim_head=head, heads=cfg.n_heads,
                                                            ff_mult=FF_MULT) for _ in model.xattn)

    def forward(self, b):
        """A Bridge batch -> logits: its pictures laid out (B, N, 3, H, W), encoded, resampled by the peer."""
        grid = b.pictures[0].new_zeros(len(b.ids) * b.n_slots, *b.pictures[0].shape[1:])
        images = rearrange(grid.index_copy(0, b.slots[0], b.pictures[0]), "(b n) c h w -> b n c h w",
                           b=len(b.ids))
        media = self.resampler(self.proj(self.model.encode(images)))   # (B, N, S, Dv) -> (B, N, R, D)
        locations = b.ids == TOKENIZER.image_id
        hook = lambda i, x: self.xattn[i](x, media, media_locations=locations)
        return self.model.lm(b.ids, before_block=hook, embed_weight=self.model.embed_weight())


def bridge_batches(steps, device, overrides=()):
    """The real bridge step's batches of `steps` at the default recipe (every dataset packed into one batch:
    batches.py), as the training loop reads them."""
    data = train.datasets(make_config("default", list(overrides)), seed=0)
    return [bridge_batch(data, s, device) for s in steps]


def synthetic_batch(B, T, N, image_size, device):
    """A Bridge batch of B rows of T tokens, each with N <image> tokens evenly spaced (the first at position 1),
    every other target scored."""
    ids = torch.randint(5, 60, (B, T))
    ids[:, 0] = TOKENIZER.bos_id
    for j in range(N):
        ids[:, 1 + j * max(1, (T - 1) // N)] = TOKENIZER.image_id
    share = (ids != TOKENIZER.image_id).float()[None] / (B * T)
    pictures = torch.rand(B * N, 3, image_size, image_size)
    batch = Bridge(ids, share, (pictures,), (torch.arange(B * N),), N, torch.ones(1), ("synthetic",))
    return to_device(batch, device)


def train_step_fn(model, params, batches, forward=None, bf16=False):
    """The model-only training step, cycling through pre-drawn Bridge batches: encode and resample the pictures,
    forward, the mean loss over scored targets, backward, AdamW. No data drawing, no clipping, no logging: what the
    model itself costs. `forward(batch)` replaces ours (the peer's bridge); bf16: the forward under bf16 autocast
    (training runs in fp32, TF32 matrix products on a GPU: this measures what bf16 would buy)."""
    opt = torch.optim.AdamW(params, lr=1e-4, fused=True)
    turn = iter(range(10 ** 9))

    def step():
        b = batches[next(turn) % len(batches)]
        with torch.autocast(b.ids.device.type, dtype=torch.bfloat16, enabled=bf16):
            logits = forward(b) if forward else model(b.ids, media=train.visual_tokens(model, b))
        scored = b.share.sum(0) > 0                                                    # (B, T)
        loss = train.next_token_loss(logits, b.ids, scored)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


class OpCount(TorchDispatchMode):
    """Counts the device operations dispatched while active (forward, backward and optimiser alike)."""

    def __init__(self):
        super().__init__()
        self.n = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.n += 1
        return func(*args, **(kwargs or {}))


def ops_of(fn):
    """The number of device operations one call of fn dispatches, after a first call (AdamW makes its state then)."""
    fn()
    with OpCount() as count:
        fn()
    return count.n


def matmul_flops(device, n=1024, repeats=30):
    """The dense product's peak rate here and now: its fastest repeat (a peak, not a typical time)."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    t = timed(lambda: a @ b, device, repeats, warmup=3, summary=min)
    return 2 * n ** 3 / t


def count_flops(fn):
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


# --- the sections ----------------------------------------------------------------------------------------------------
def training_step(model, cfg, device, repeats, progress, overrides=(), steps=range(3, 11)):
    """Ours and (if installed) flamingo-pytorch's bridge around the same frozen LM, timed interleaved, on the real
    step's packed batches of `steps` (those step_split times). The peer has no notion of several documents in a row:
    its rows read across them, which costs the same."""
    params = [p for _, p in model.trainable_parameters()]
    batches = bridge_batches(steps, device, overrides)
    tokens = sum(int((b.ids != TOKENIZER.pad_id).sum()) for b in batches) / len(batches)
    n_img = sum(len(p) for b in batches for p in b.pictures) / len(batches)
    fns = {"ours": train_step_fn(model, params, batches),
           "ours, bf16": train_step_fn(model, params, batches, bf16=True)}
    peer = None
    try:
        peer = PeerBridge(model, cfg).to(device).train()
        fns["flamingo-pytorch"] = train_step_fn(model, list(peer.proj.parameters()) + list(
            peer.resampler.parameters()) + list(peer.xattn.parameters()), batches, forward=peer)
    except ImportError:
        progress("flamingo-pytorch is not installed (pip install flamingo-pytorch==0.1.2): its column is left out")
    table = step_table(fns, tokens, n_img, device, repeats, progress, "train step")
    fp32 = {k: fn for k, fn in fns.items() if k != "ours, bf16"}
    return table, fns["ours"], (fp32, tokens, n_img, peer)


def step_table(fns, tokens, n_img, device, repeats, progress, what):
    step = interleaved(fns, device, repeats)
    out = {k: {"seconds": t, "tokens_per_s": tokens / t, "images_per_s": n_img / t} for k, t in step.items()}
    if "flamingo-pytorch" in step:
        out["speedup"] = step["flamingo-pytorch"] / step["ours"]
    progress(f"{what}: " + ", ".join(f"{k} {v * 1e3:.0f} ms" for k, v in step.items()))
    return out


def compiled_step(model, fns, tokens, n_img, peer, device, repeats, progress):
    """Section 1's steps after torch.compile of every repeated block, ours and the peer's (the frozen LM and encoder
    they share are compiled once, for both); the seconds each step's first call took, compiling."""
    torch._dynamo.reset()   # forget graphs compiled earlier in this process: the first call compiles afresh
    train.compile_blocks(model)
    if peer is not None:
        for m in [peer.resampler, *peer.xattn]:
            m.compile()
    first = {}
    for k, fn in fns.items():
        progress(f"compiling {k} ...")
        t0 = time.perf_counter()
        fn()
        sync(device)
        first[k] = time.perf_counter() - t0
    out = step_table(fns, tokens, n_img, device, repeats, progress, "compiled train step")
    for k, t in first.items():
        out[k]["compile_s"] = t
    return out


def recipe(device, compile_too, steps=12, progress=print):
    """A few real steps of each stage of the default recipe, eager and (compile_too) compiled: seconds per step, the
    seconds the first steps took beyond that (compiling, warming up), and the whole recipe's training time projected
    from them. The default configuration's widths and batches, on a scratch folder that is deleted afterwards."""
    full = make_config("default").train
    counts = {"lm": full.lm_steps, "vision": full.vision_steps, "flamingo": full.flamingo_steps}
    modes = ("off", "default") if compile_too else ("off",)
    out = {}
    for mode in modes:
        cfg = make_config("default", [f"train.{s}_steps={steps}" for s in runs.STAGES] + [
            "train.log_every=1", f"train.ckpt_every={steps}", f"train.compile={mode}"])
        torch._dynamo.reset()
        with tempfile.TemporaryDirectory() as run:
            runs.start_run(run, cfg)
            for stage in runs.STAGES:
                progress(f"recipe: {stage} stage, compile={mode}")
                train.run_stage(run, stage, cfg, device=device, progress=False)
            times = {}
            for m in runs.read_metrics(run):
                times.setdefault(m["stage"], []).append(m["time"])
        row = {}
        for stage, t in times.items():   # "time": seconds since the stage began, at the end of each step
            per_step = (t[-1] - t[2]) / (len(t) - 3)
            row[stage] = {"step_s": per_step, "first_steps_extra_s": t[2] - 3 * per_step,
                          "projected_s": counts[stage] * per_step + max(0.0, t[2] - 3 * per_step)}
        row["total_s"] = sum(v["projected_s"] for v in row.values())
        out["eager" if mode == "off" else "compiled"] = row
    if "compiled" in out:
        out["speedup"] = out["eager"]["total_s"] / out["compiled"]["total_s"]
    return out


class Clock:
    """Seconds spent in each named phase, the device synchronised at every boundary so that its work is counted in the
    phase that queued it."""

    def __init__(self, device):
        self.device, self.seconds = device, {}

    @contextmanager
    def __call__(self, name):
        sync(self.device)
        t0 = time.perf_counter()
        yield
        sync(self.device)
        self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t0


DATA = ("data/draft", "data/render", "data/collate", "data/move")   # the loader's record_function labels (train.py)


def step_split(device, steps=8, warm=3, progress=print, overrides=(), table_rows=0):
    """Each stage's real training step (train.SETUP's model, batches and loss; train.run_stage's AdamW and clipping)
    at the default configuration: the whole step with nothing in between (`step_s`), then each phase with the device
    synchronised between them, and the data phase split by torch.profiler's record_function labels (its shares,
    scaled to the data phase's unprofiled time). table_rows > 0: also torch.profiler's table of the bridge step's
    most expensive operators, that many rows."""
    from torch.profiler import ProfilerActivity, profile
    n = warm + 3 * steps
    cfg = make_config("default", [f"train.{s}_steps={n}" for s in runs.STAGES] + list(overrides))
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    out = {}
    with tempfile.TemporaryDirectory() as run:
        runs.start_run(run, cfg)
        for stage in runs.STAGES:
            progress(f"step split: {stage} stage")
            torch.manual_seed(0)
            s = train.SETUP[stage](run, cfg, device, 0)
            model, load, step_loss = s.model.train(), s.load, s.loss
            opt = torch.optim.AdamW(s.groups, betas=(0.9, 0.95), fused=True)   # as train.run_stage
            params = [p for g in opt.param_groups for p in g["params"]]

            def step(i, clock=None, data=None):
                clock = clock or (lambda name: nullcontext())
                with clock("data"):
                    data = load(i, device) if data is None else data
                with clock("forward"):
                    loss, _ = step_loss(data)
                with clock("backward"):
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                with clock("optimiser"):
                    torch.nn.utils.clip_grad_norm_(params, train.GRAD_CLIP)
                    opt.step()

            for i in range(warm):
                step(i)
            sync(device)
            t0 = time.perf_counter()
            for i in range(warm, warm + steps):
                step(i)
            sync(device)
            row = {"step_s": (time.perf_counter() - t0) / steps}
            clock = Clock(device)
            for i in range(warm + steps, warm + 2 * steps):
                step(i, clock)
            row.update({k: v / steps for k, v in clock.seconds.items()})
            with profile(activities=activities) as prof:
                for i in range(warm + 2 * steps, n):
                    step(i)
                sync(device)
            host = {e.key: e.cpu_time_total for e in prof.key_averages() if e.key in DATA}
            total = sum(host.values()) or 1.0
            row.update({k: row["data"] * host.get(k, 0.0) / total for k in DATA})
            if stage == "flamingo":   # device operations of one step, its data drawn beforehand, and the model's own
                data = load(n, device)
                params_ = [p for _, p in model.trainable_parameters()]
                row["ops"] = {"real": ops_of(lambda: step(n, data=data)),
                              "model_only": ops_of(train_step_fn(model, params_, [data]))}
            if table_rows and stage == "flamingo":
                key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
                row["profile_table"] = prof.key_averages().table(sort_by=key, row_limit=table_rows)
            out[stage] = row
            train.run_stage(run, stage, cfg, device=device, progress=False)   # the next stage builds on this one
    return out


# How idle OpenMP threads wait, as `contention` compares them: ours (the entry points' default: main.py,
# lessons/own_checkout.py), sleeping at once, and OpenMP's own default.
WAITS = {"spin 1,000 rounds, then sleep (ours)": {"GOMP_SPINCOUNT": "1000"},
         "sleep at once (PASSIVE)": {"OMP_WAIT_POLICY": "PASSIVE"},
         "OpenMP's default": {}}


def contention(steps=24, timeout=120.0):
    """Seconds for `steps` LM training steps (quick preset, 2 threads) in a fresh process, alone and then two at once,
    for each way of waiting in WAITS. A run longer than `timeout` is stopped and reported as None."""
    code = ("import sys, tempfile, time\n"
            "import torch\n"          # first, so that OpenMP starts with the environment chosen below
            "from flamingo_min import train\nfrom flamingo_min.config import make_config\n"
            f"cfg = make_config('quick', ['train.lm_steps={steps}', 'train.ckpt_every={steps}'])\n"
            "run = tempfile.mkdtemp()\nt0 = time.perf_counter()\ntrain.run_stage(run, 'lm', cfg, progress=False)\n"
            "print(time.perf_counter() - t0)\n")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

    def together(wait, n):
        # .venv's start-up file has already chosen for the child: it forgets that choice, then takes `wait`
        choose = ("import os\nfor k in ('OMP_WAIT_POLICY', 'GOMP_SPINCOUNT'): os.environ.pop(k, None)\n"
                  f"os.environ.update({wait!r})\n")
        env = {**os.environ, "OMP_NUM_THREADS": "2"}
        procs = [subprocess.Popen([sys.executable, "-c", choose + code], cwd=root, env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL, text=True) for _ in range(n)]
        times = []
        for p in procs:
            try:
                times.append(float(p.communicate(timeout=timeout)[0]))
            except (subprocess.TimeoutExpired, ValueError):
                p.kill()
                p.communicate()
                times.append(None)
        return times

    out = {"steps": steps, "timeout_s": timeout}
    for name, wait in WAITS.items():
        out[name] = {"alone_s": together(wait, 1)[0], "two_at_once_s": together(wait, 2)}
    return out


def utilisation(step_fn, seconds, device):
    """Model FLOPs of one step over the dense matmul throughput measured here, now."""
    flops, peak = count_flops(step_fn), matmul_flops(device)
    return {"model_flops_per_step": flops, "model_flops_per_s": flops / seconds, "matmul_flops_per_s": peak,
            "fraction": flops / seconds / peak}


def scaling(model, cfg, device, repeats, sizes, counts, lengths):
    """Step time, gated-layer time and FLOPs, and activation memory, one knob at a time around B=8, T=48, N=4, 32 px."""
    params = [p for _, p in model.trainable_parameters()]

    def measure(B, T, N, size):
        b = synthetic_batch(B, T, N, size, device)
        ids, images = b.ids, rearrange(b.pictures[0], "(b n) c h w -> b n c h w", b=B)
        fn = train_step_fn(model, params, [b])
        t = timed(fn, device, max(3, repeats // 2))
        with saved_bytes() as saved:
            fn()
        visual = model.perceive(model.encode(images)).flatten(1, 2)                   # (B, N*R, D)
        mask = cross_attention_mask(ids, TOKENIZER.image_id, N, cfg.latents)
        gated = lambda: [layer(model.lm.embed(ids), visual, mask) for layer in model.xattn]
        row = {"step_s": t, "xattn_s": timed(gated, device, max(3, repeats // 2)), "xattn_flops": count_flops(gated),
               "activation_bytes": saved[0]}
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
            fn()
            row["peak_bytes"] = torch.cuda.max_memory_allocated()
        return row

    return {"resolution": {str(s): measure(8, 48, 4, s) for s in sizes},
            "images": {str(n): measure(8, max(48, 4 * n), n, 32) for n in counts},
            "text_length": {str(t): measure(8, t, 4, 32) for t in lengths}}


def inference(model, device, repeats, shots=8, new=8):
    """One k-shot captioning episode: `new` tokens decoded through the KV cache, and by recomputing the prefix. Both
    take the same greedy tokens (returned, so that a test can hold them equal)."""
    ep = make_episode("caption", 0)
    text, scenes = build_prompt(ep.support(shots), ep.query)
    pids = left_pad([TOKENIZER.encode(text)]).to(device)
    imgs = render(scenes)[None].to(device)
    model.eval()
    banned = [TOKENIZER.pad_id, TOKENIZER.bos_id, TOKENIZER.image_id, TOKENIZER.eoc_id]  # `new` text tokens, always

    def pick(logits):
        logits[:, banned] = float("-inf")
        return logits.argmax(-1, keepdim=True)

    @torch.no_grad()
    def recompute():
        seq, media = pids, model.perceive(model.encode(imgs))
        for _ in range(new):
            seq = torch.cat([seq, pick(model(seq, media=media)[:, -1])], 1)
        return seq[0, pids.shape[1]:].tolist()

    @torch.no_grad()
    def cached():
        media = model.perceive(model.encode(imgs))
        cache = Cache.empty(len(model.lm.blocks), 1, device)
        logits, hist, out = model(pids, media=media, cache=cache)[:, -1], pids, []
        for _ in range(new):
            tok = pick(logits)
            out.append(int(tok))
            logits = model(tok, media=media, cache=cache, history=hist)[:, -1]
            hist = torch.cat([hist, tok], 1)
        return out

    lat = interleaved({"kv_cache": cached, "recompute": recompute}, device, repeats)
    return {"shots": shots, "prompt_tokens": pids.shape[1], "new_tokens": new, "kv_cache_s": lat["kv_cache"],
            "recompute_s": lat["recompute"], "speedup": lat["recompute"] / lat["kv_cache"],
            "same_tokens": cached() == recompute()}


def run(device=torch.device("cpu"), repeats=7, quick=False, progress=print, cfg=None, compile=True,
        recipe_steps=12, split_overrides=(), contend=True, profile_only=False):
    """Every section, at the default configuration (or `cfg`, e.g. a tiny one for tests). compile=False leaves out
    the compiled sections; contend=False the contention section; profile_only runs sections 1 and 7 alone."""
    cfg = cfg or ModelConfig()
    torch.manual_seed(0)
    model = Flamingo(cfg).to(device).train()
    out = {"device": str(device), "threads": torch.get_num_threads(), "torch": torch.__version__}
    out["train_step"], step_fn, eager = training_step(model, cfg, device, repeats, progress, split_overrides)
    out["split"] = step_split(device, progress=progress, overrides=split_overrides,
                              table_rows=25 if profile_only else 0)
    if profile_only:
        return out
    out["utilisation"] = utilisation(step_fn, out["train_step"]["ours"]["seconds"], device)
    out["scaling"] = scaling(model, cfg, device, repeats, sizes=(16, 32) if quick else (16, 32, 64),
                             counts=(1, 4) if quick else (1, 2, 4, 8, 16),
                             lengths=(32, 64) if quick else (32, 64, 128, 256))
    progress("scaling done")
    out["inference"] = inference(model, device, repeats)
    out["recipe"] = recipe(device, compile, recipe_steps, progress)
    if contend:
        progress("contention: two processes side by side")
        out["contention"] = contention()
    if compile:   # last: it compiles the model in place
        out["compiled_step"] = compiled_step(model, *eager, device, repeats, progress)
        out["compiled_utilisation"] = out["utilisation"]["fraction"] * out["train_step"]["ours"]["seconds"] / \
            out["compiled_step"]["ours"]["seconds"]
    return out


def table(r):
    lines = [f"device {r['device']} ({r['threads']} threads), torch {r['torch']}", ""]
    for key, title in (("train_step", "eager"), ("compiled_step", "compiled (torch.compile of every block)")):
        if key not in r:
            continue
        lines.append(f"model-only training step, the default recipe's packed batches, {title}:")
        for k, v in r[key].items():
            if k != "speedup":
                lines.append(f"  {k:<18} {v['seconds'] * 1e3:8.1f} ms  {v['tokens_per_s']:9.0f} tokens/s  "
                             f"{v['images_per_s']:7.0f} images/s" + (f"  (first call {v['compile_s']:.0f} s)"
                                                                       if "compile_s" in v else ""))
        if "speedup" in r[key]:
            lines.append(f"  ours is {r[key]['speedup']:.2f}x flamingo-pytorch's throughput")
    if "compiled_step" in r:
        c, e = r["compiled_step"], r["train_step"]
        lines.append("  compiled over eager: " + ", ".join(f"{k} {e[k]['seconds'] / c[k]['seconds']:.2f}x"
                                                          for k in c if k != "speedup"))
    lines += ["", "where a real training step goes, ms (default configuration; data drawn in this process):",
              "  stage        step    draft  render collate    move   forward backward optimiser"]
    for stage, v in r["split"].items():
        lines.append(f"  {stage:<9} {v['step_s'] * 1e3:7.1f}  " + " ".join(f"{v[k] * 1e3:7.1f}" for k in DATA) +
                     f"  {v['forward'] * 1e3:7.1f}  {v['backward'] * 1e3:7.1f}  {v['optimiser'] * 1e3:7.1f}")
    model_only, ops = r["train_step"]["ours"]["seconds"], r["split"]["flamingo"]["ops"]
    lines.append(f"  the bridge's real step is {r['split']['flamingo']['step_s'] / model_only:.2f}x the model-only "
                 f"step above ({model_only * 1e3:.1f} ms, the same steps' batches); device operations, data apart: "
                 f"{ops['real']} against {ops['model_only']} ({ops['real'] / ops['model_only']:.2f}x)")
    if "profile_table" in r["split"]["flamingo"]:
        lines += ["", "torch.profiler, the bridge's step, operators by own time:",
                  r["split"]["flamingo"]["profile_table"]]
    if "utilisation" not in r:   # bench --profile
        return "\n".join(lines)
    u = r["utilisation"]
    lines += ["", f"utilisation: {u['model_flops_per_s'] / 1e9:.1f} GFLOP/s of model work, matmul peak "
              f"{u['matmul_flops_per_s'] / 1e9:.1f} GFLOP/s -> {u['fraction']:.1%} eager" +
              (f", {r['compiled_utilisation']:.1%} compiled" if "compiled_utilisation" in r else ""), ""]
    for knob, rows in r["scaling"].items():
        lines.append(f"scaling with {knob.replace('_', ' ')} (B=8; others at T=48, N=4, 32 px):")
        for k, v in rows.items():
            mem = f"  peak {v['peak_bytes'] / 2**20:6.1f} MiB" if "peak_bytes" in v else ""
            lines.append(f"  {k:>5}: step {v['step_s'] * 1e3:7.1f} ms  gated layers {v['xattn_s'] * 1e3:6.2f} ms  "
                         f"activations {v['activation_bytes'] / 2**20:6.1f} MiB{mem}")
    i = r["inference"]
    lines += ["", f"inference, {i['shots']}-shot caption episode ({i['prompt_tokens']} prompt tokens, "
              f"{i['new_tokens']} new): KV cache {i['kv_cache_s'] * 1e3:.1f} ms, recompute "
              f"{i['recompute_s'] * 1e3:.1f} ms ({i['speedup']:.1f}x)"]
    rc = r["recipe"]
    lines += ["", "the default recipe, from a few real steps of each stage (data, forward, backward, AdamW):"]
    for mode, row in rc.items():
        if mode != "speedup":
            lines.append(f"  {mode:<9}" + "  ".join(f"{s} {row[s]['step_s'] * 1e3:5.0f} ms/step" for s in runs.STAGES)
                         + f"  -> {row['total_s'] / 60:4.1f} min of training (first steps' extra time included)")
    if "speedup" in rc:
        lines.append(f"  the whole recipe compiled: {rc['speedup']:.2f}x eager")
    if "contention" in r:
        c = r["contention"]
        shown = lambda t: f"{t:5.1f} s" if t is not None else f">{c['timeout_s']:.0f} s"
        lines += ["", f"contention: {c['steps']} LM steps (quick preset) in a fresh process, alone and two at once, by "
                  "how idle OpenMP threads wait:"]
        for name in WAITS:
            lines.append(f"  {name:<38} alone {shown(c[name]['alone_s'])}, two at once " +
                         " and ".join(shown(t) for t in c[name]["two_at_once_s"]))
    return "\n".join(lines)


def plot(r):
    """The scaling curves, as PNG bytes."""
    from . import plots
    if "scaling" not in r:     # bench --profile: nothing to draw
        return None
    fig, axes = plots.plt.subplots(1, 3, figsize=(12, 3.2))
    for ax, (knob, rows) in zip(axes, r["scaling"].items()):
        xs = list(rows)
        ax.plot(xs, [rows[x]["step_s"] * 1e3 for x in xs], "o-", label="training step")
        ax.plot(xs, [rows[x]["xattn_s"] * 1e3 for x in xs], "s-", label="gated layers (forward)")
        ax.set_xlabel(knob.replace("_", " ")), ax.set_ylabel("ms"), ax.set_yscale("log")
    axes[0].legend(fontsize=7)
    fig.suptitle(f"scaling on {r['device']} ({r['threads']} threads)", fontsize=10)
    return plots.png(fig)
