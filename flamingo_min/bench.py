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

Every timing is a median over interleaved repeats after warm-up; ratios compare numbers from the same run. Sections 5
and 6 compile (minutes on a small CPU); `--no-compile` leaves them out.
"""
import statistics
import tempfile
import time
from contextlib import contextmanager

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from toy_data import TOKENIZER, DataConfig, DocumentStream, build_prompt, make_episode, render
from toy_data.documents import collate

from . import train
from .config import ModelConfig, make_config
from .evaluate import left_pad
from .flamingo import Flamingo
from .lm import Cache
from .masking import cross_attention_mask


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
                                                            ff_mult=cfg.xattn_ff_mult) for _ in model.xattn)

    def forward(self, ids, features):
        media = self.resampler(self.proj(features))                  # (B, N, S, Dv) -> (B, N, R, D)
        locations = ids == TOKENIZER.image_id
        hook = lambda i, x: self.xattn[i](x, media, media_locations=locations)
        return self.model.lm(ids, before_block=hook, embed_weight=self.model.embed_weight())


def _batch(data_cfg, size, seed=0):
    stream = DocumentStream(data_cfg, seed)
    return collate([stream[i] for i in range(size)])


def synthetic_batch(B, T, N, image_size, device):
    """B rows of T tokens, each with N <image> tokens evenly spaced (the first at position 1)."""
    ids = torch.randint(5, 60, (B, T))
    ids[:, 0] = TOKENIZER.bos_id
    for j in range(N):
        ids[:, 1 + j * max(1, (T - 1) // N)] = TOKENIZER.image_id
    images = torch.rand(B, N, 3, image_size, image_size)
    return ids.to(device), images.to(device)


def train_step_fn(model, params, ids, images, forward=None):
    opt = torch.optim.AdamW(params, lr=1e-4)
    counts = (ids == TOKENIZER.image_id).sum(1)

    def step():
        features = model.encode(images, counts)
        logits = forward(ids, features) if forward else model(ids, features=features, counts=counts)
        loss = F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), ids[:, 1:].flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


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
def training_step(model, cfg, data, device, repeats, progress, batch=32):
    """Ours and (if installed) flamingo-pytorch's bridge around the same frozen LM, timed interleaved."""
    params = [p for _, p in model.trainable_parameters()]
    ids, _, images, counts = (x.to(device) for x in _batch(data, batch))
    tokens, n_img = int((ids != TOKENIZER.pad_id).sum()), int(counts.sum())
    fns = {"ours": train_step_fn(model, params, ids, images)}
    peer = None
    try:
        peer = PeerBridge(model, cfg).to(device).train()
        fns["flamingo-pytorch"] = train_step_fn(model, list(peer.proj.parameters()) + list(
            peer.resampler.parameters()) + list(peer.xattn.parameters()), ids, images, forward=peer)
    except ImportError:
        progress("flamingo-pytorch is not installed (pip install flamingo-pytorch==0.1.2): its column is left out")
    return step_table(fns, tokens, n_img, device, repeats, progress, "train step"), fns["ours"], (fns, tokens, n_img,
                                                                                                    peer)


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
        cfg = make_config("default", [f"train.{s}_steps={steps}" for s in train.STAGES] + [
            "train.log_every=1", f"train.ckpt_every={steps}", f"train.compile={mode}"])
        torch._dynamo.reset()
        with tempfile.TemporaryDirectory() as run:
            train.start_run(run, cfg)
            for stage in train.STAGES:
                progress(f"recipe: {stage} stage, compile={mode}")
                train.run_stage(run, stage, cfg, device=device, progress=False)
            times = {}
            for m in train.read_metrics(run):
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


def utilisation(step_fn, seconds, device):
    """Model FLOPs of one step over the dense matmul throughput measured here, now."""
    flops, peak = count_flops(step_fn), matmul_flops(device)
    return {"model_flops_per_step": flops, "model_flops_per_s": flops / seconds, "matmul_flops_per_s": peak,
            "fraction": flops / seconds / peak}


def scaling(model, cfg, device, repeats, sizes, counts, lengths):
    """Step time, gated-layer time and FLOPs, and activation memory, one knob at a time around B=8, T=48, N=4, 32 px."""
    params = [p for _, p in model.trainable_parameters()]

    def measure(B, T, N, size):
        ids, images = synthetic_batch(B, T, N, size, device)
        fn = train_step_fn(model, params, ids, images)
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


def inference(model, data, device, repeats, shots=8, new=8):
    """One k-shot captioning episode: `new` tokens decoded through the KV cache, and by recomputing the prefix. Both
    take the same greedy tokens (returned, so that a test can hold them equal)."""
    ep = make_episode("caption", 0)
    text, scenes = build_prompt(ep.support(shots), ep.query)
    pids, valid = left_pad([TOKENIZER.encode(text)])
    pids, valid = pids.to(device), valid.to(device)
    imgs = render(scenes, data.image_size)[None].to(device)
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


def run(device=torch.device("cpu"), repeats=7, quick=False, progress=print, cfg=None, batch=32, compile=True,
        recipe_steps=12):
    """Every section, at the default configuration (or `cfg`, e.g. a tiny one for tests). compile=False leaves out
    the compiled sections."""
    cfg, data = cfg or ModelConfig(), DataConfig()
    torch.manual_seed(0)
    model = Flamingo(cfg).to(device).train()
    out = {"device": str(device), "threads": torch.get_num_threads(), "torch": torch.__version__}
    out["train_step"], step_fn, eager = training_step(model, cfg, data, device, repeats, progress, batch)
    out["utilisation"] = utilisation(step_fn, out["train_step"]["ours"]["seconds"], device)
    out["scaling"] = scaling(model, cfg, device, repeats, sizes=(16, 32) if quick else (16, 32, 64),
                             counts=(1, 4) if quick else (1, 2, 4, 8, 16),
                             lengths=(32, 64) if quick else (32, 64, 128, 256))
    progress("scaling done")
    out["inference"] = inference(model, data, device, repeats)
    out["recipe"] = recipe(device, compile, recipe_steps, progress)
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
        lines.append(f"training step, default configuration (32 documents), {title}:")
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
            lines.append(f"  {mode:<9}" + "  ".join(f"{s} {row[s]['step_s'] * 1e3:5.0f} ms/step" for s in train.STAGES)
                         + f"  -> {row['total_s'] / 60:4.1f} min of training (first steps' extra time included)")
    if "speedup" in rc:
        lines.append(f"  the whole recipe compiled: {rc['speedup']:.2f}x eager")
    return "\n".join(lines)


def plot(r):
    """The scaling curves, as PNG bytes."""
    from . import plots
    fig, axes = plots.plt.subplots(1, 3, figsize=(12, 3.2))
    for ax, (knob, rows) in zip(axes, r["scaling"].items()):
        xs = list(rows)
        ax.plot(xs, [rows[x]["step_s"] * 1e3 for x in xs], "o-", label="training step")
        ax.plot(xs, [rows[x]["xattn_s"] * 1e3 for x in xs], "s-", label="gated layers (forward)")
        ax.set_xlabel(knob.replace("_", " ")), ax.set_ylabel("ms"), ax.set_yscale("log")
    axes[0].legend(fontsize=7)
    fig.suptitle(f"scaling on {r['device']} ({r['threads']} threads)", fontsize=10)
    return plots.png(fig)
