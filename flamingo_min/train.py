"""Training, the paper's recipe in three stages (paper section 2.4, App. B.1.2):

1. `lm`: pretrain the LM on the text-only corpus (next-token loss), including text-only binding episodes, so it can
   copy in context before it ever sees an image.
2. `vision`: pretrain the vision encoder contrastively against a small text encoder on image-caption pairs.
3. `flamingo`: freeze both; train the resampler, the gated layers and the new token embeddings. Each update sums every
   stream's weighted loss (M3W-like documents x 1.0, pairs x 0.2: gradient accumulation across datasets, which the paper
   found clearly better than round-robin). AdamW, linear warm-up then constant LR, global-norm clipping at 1.

Which tokens are scored is decided by the streams (toy_data/documents.py): never `<image>`, padding, or text before a
document's first image. The frozen encoder runs without autograd, once per image per step (its features are the cache
the bridge reads); the frozen LM runs inside autograd only because gradients must flow *through* it to the gated layers
below, never *into* its weights, which are out of the optimiser.

Every stage is one flat loop (`run_stage`): batch, loss, backward, clip, step, log, checkpoint. Sample i of every stream
is a pure function of (seed, i) and step s reads samples [s*B, (s+1)*B), so a resumed run replays exactly.
"""
import json
import math
import os
import time

import torch
import torch.nn.functional as F
from tqdm import tqdm

from toy_data import TOKENIZER, DocumentStream, PairStream, TextCorpus
from toy_data.documents import collate

from .config import from_dict, to_dict
from .encoder import ContrastiveModel
from .flamingo import Flamingo
from .lm import LM

STAGES = ("lm", "vision", "flamingo")


# --- files ---------------------------------------------------------------------------------------------------------
def atomic_save(obj, path):
    """Write to a temporary file, then rename: a kill mid-write never leaves a half-written checkpoint."""
    tmp = f"{path}.tmp"
    torch.save(obj, tmp)
    os.replace(tmp, path)


def atomic_text(text, path):
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def load_checkpoint(path):
    return torch.load(path, map_location="cpu", weights_only=True)


def ckpt_path(run, stage):
    return os.path.join(run, f"{stage}.pt")


def stage_done(run, stage):
    path = ckpt_path(run, stage)
    return os.path.exists(path) and load_checkpoint(path)["done"]


def _comparable(cfg_dict):
    d = json.loads(json.dumps(cfg_dict))  # tuples -> lists, as they come back from a checkpoint
    for k in ("eval_episodes", "eval_shots"):  # evaluation settings do not change what was trained
        d["train"].pop(k, None)
    return d


def check_config(saved, cfg, path):
    """Stop with a clear message if a checkpoint was made with a different configuration."""
    a, b = _comparable(saved), _comparable(to_dict(cfg))
    diffs = [f"{part}.{k}: {a[part].get(k)!r} in the checkpoint, {b[part].get(k)!r} now"
             for part in b for k in b[part] if a[part].get(k) != b[part].get(k)]
    if diffs:
        raise SystemExit(f"error: {path} was made with a different configuration ({'; '.join(diffs)}). Use a new "
                         "--out folder, or the same --preset and --set values that made this run (see config.json).")


def log_metrics(run, record):
    with open(os.path.join(run, "metrics.jsonl"), "a") as f:
        f.write(json.dumps(record) + "\n")


def trim_metrics(run, stage, step):
    """On resume, forget log lines this stage wrote after its last checkpoint: they will be written again."""
    path = os.path.join(run, "metrics.jsonl")
    if not os.path.exists(path):
        return
    stale = lambda m: m["stage"] == stage and m["step"] >= step
    keep = [line for line in open(path) if not stale(json.loads(line))]
    atomic_text("".join(keep), path)


def read_metrics(run):
    path = os.path.join(run, "metrics.jsonl")
    return [json.loads(line) for line in open(path)] if os.path.exists(path) else []


# --- losses and batches ------------------------------------------------------------------------------------------
def next_token_loss(logits, ids, loss_mask):
    """Mean cross-entropy of the scored targets: position t-1 predicts token t where loss_mask[t]."""
    scored = loss_mask[:, 1:]
    return F.cross_entropy(logits[:, :-1][scored].float(), ids[:, 1:][scored])


def batch(stream, step, size, device):
    ids, mask, images, counts = collate([stream[i] for i in range(step * size, (step + 1) * size)])
    return ids.to(device), mask.to(device), images.to(device), counts.to(device)


def caption_ids(ids):
    """Pair-stream tokens -> the caption's words only (no <bos>, <image>, <EOC>), left-aligned and padded."""
    specials = torch.tensor([TOKENIZER.bos_id, TOKENIZER.image_id, TOKENIZER.eoc_id], device=ids.device)
    words = [row[~torch.isin(row, specials) & (row != TOKENIZER.pad_id)] for row in ids]
    return torch.nn.utils.rnn.pad_sequence(words, batch_first=True, padding_value=TOKENIZER.pad_id)


def autocast(device):
    return torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")


# --- the three stages: what to build, and the loss of one step -------------------------------------------------------
def setup_lm(run, cfg, device, seed):
    m = cfg.model
    model = LM(len(TOKENIZER), m.d_model, m.n_layers, m.n_heads, m.context).to(device)
    corpus, t = TextCorpus(cfg.data, seed), cfg.train

    def step_loss(step):
        ids, mask, _, _ = batch(corpus, step, t.lm_batch, device)
        with autocast(device):
            loss = next_token_loss(model(ids), ids, mask)
        return loss, {}

    return model, list(model.parameters()), step_loss, t.lm_steps, t.lm_lr, True


def setup_vision(run, cfg, device, seed):
    model = ContrastiveModel(len(TOKENIZER), cfg.model.vision_width, cfg.model.embed_dim, TOKENIZER.pad_id).to(device)
    pairs, t = PairStream(cfg.data, seed), cfg.train

    def step_loss(step):
        # A quarter random pairs, a quarter their minimal-pair twins (one attribute changed: hard negatives), half
        # colourless pairs (colour augmentation: shape must be read from the outline). See toy_data/documents.py.
        q = t.vision_batch // 4
        quarter = range(step * q, (step + 1) * q)
        grey = range(step * 2 * q, (step + 1) * 2 * q)
        samples = [pairs[i] for i in quarter] + [pairs.twin(i) for i in quarter] + [pairs.grey(i) for i in grey]
        ids, _, images, _ = (x.to(device) for x in collate(samples))
        with autocast(device):
            loss = model.loss(images[:, 0], caption_ids(ids))
        return loss, {"temperature": 1 / model.logit_scale.exp().item()}

    return model, list(model.parameters()), step_loss, t.vision_steps, t.vision_lr, True


def build_flamingo(run, cfg, device):
    """Flamingo with the LM and the encoder from their finished stages, frozen."""
    for stage in ("lm", "vision"):
        if not stage_done(run, stage):
            raise SystemExit(f"error: stage flamingo needs a finished {stage!r} stage in {run}: run "
                             f"`python main.py train --out {run}` (all stages) or `--stage {stage}` first")
        check_config(load_checkpoint(ckpt_path(run, stage))["config"], cfg, ckpt_path(run, stage))
    model = Flamingo(cfg.model)
    model.lm.load_state_dict(load_checkpoint(ckpt_path(run, "lm"))["model"])
    vision = {k[len("vision."):]: v for k, v in load_checkpoint(ckpt_path(run, "vision"))["model"].items()
              if k.startswith("vision.")}
    model.vision.load_state_dict(vision)
    model.reset_new_embeddings()
    return model.freeze().to(device)


def setup_flamingo(run, cfg, device, seed):
    model = build_flamingo(run, cfg, device)
    docs, pairs, t = DocumentStream(cfg.data, seed), PairStream(cfg.data, seed + 1), cfg.train

    def stream_loss(stream, size, step):
        ids, mask, images, counts = batch(stream, step, size, device)
        features = model.encode(images, counts)            # frozen: computed without autograd, once per image
        with autocast(device):
            return next_token_loss(model(ids, features=features, counts=counts), ids, mask)

    def step_loss(step):  # one batch from each dataset, weighted losses summed: accumulation across datasets
        doc, pair = stream_loss(docs, t.doc_batch, step), stream_loss(pairs, t.pair_batch, step)
        return t.doc_weight * doc + t.pair_weight * pair, {"loss_doc": doc.item(), "loss_pair": pair.item(),
                                                            **model.gates()}

    # The gates start at 0, so nothing behind them gets a gradient until they move, and Adam moves a scalar by about
    # lr per step: at toy scale (hundreds of steps, not the paper's 500k) they would barely open. The gate scalars
    # alone get a larger learning rate (train.gate_lr_mult); they still start at exactly 0, so the model still starts
    # as the LM.
    named = model.trainable_parameters()
    gates = [p for n, p in named if n.endswith(("alpha_xattn", "alpha_dense"))]
    rest = [p for n, p in named if not n.endswith(("alpha_xattn", "alpha_dense"))]
    groups = [{"params": rest}, {"params": gates, "lr_mult": t.gate_lr_mult, "weight_decay": 0.0}]
    return model, groups, step_loss, t.flamingo_steps, t.flamingo_lr, False


SETUP = {"lm": setup_lm, "vision": setup_vision, "flamingo": setup_flamingo}


# --- the loop ------------------------------------------------------------------------------------------------------
def run_stage(run, stage, cfg, seed=0, device=torch.device("cpu"), progress=True, stop_after=None):
    """Train one stage to its end, resuming from its checkpoint if there is one. Returns its final checkpoint dict.

    stop_after: stop (without marking the stage done) once this many steps are finished; tests use it.
    """
    path = ckpt_path(run, stage)
    saved = load_checkpoint(path) if os.path.exists(path) else None
    if saved is not None:
        check_config(saved["config"], cfg, path)
        if saved["done"]:
            return saved
    torch.manual_seed(seed + STAGES.index(stage))
    model, params, step_loss, steps, lr, decay = SETUP[stage](run, cfg, device, seed)
    t = cfg.train
    opt = torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.95), weight_decay=t.weight_decay)
    params = [p for g in opt.param_groups for p in g["params"]]
    start, elapsed = 0, 0.0
    if saved is not None:
        model.load_state_dict(saved["model"])
        opt.load_state_dict(saved["optim"])
        torch.set_rng_state(saved["rng"])
        start, elapsed = saved["step"], saved["elapsed"]
        trim_metrics(run, stage, start)

    def checkpoint(step, done):
        atomic_save({"stage": stage, "step": step, "done": done, "config": to_dict(cfg), "seed": seed,
                     "model": model.state_dict(), "optim": opt.state_dict(), "rng": torch.get_rng_state(),
                     "elapsed": elapsed + time.perf_counter() - t0}, path)

    model.train()
    t0 = time.perf_counter()
    bar = tqdm(range(start, steps), desc=f"{stage:>8}", initial=start, total=steps, disable=not progress,
               unit="step", dynamic_ncols=True, leave=True)
    for step in bar:
        # Linear warm-up, then constant: the bridge's schedule in the paper. The pretraining stages (our choice) also
        # cool down over their last fifth, cosine to 10%. A long constant phase matters for the LM: its induction
        # heads (in-context copying) appear suddenly after ~600 steps, and an early decay can stall them.
        frac = min(1.0, (step + 1) / t.warmup)
        cool = int(0.8 * steps)
        if decay and step >= cool:
            frac = 0.1 + 0.45 * (1 + math.cos(math.pi * (step - cool) / max(1, steps - cool)))
        for g in opt.param_groups:
            g["lr"] = lr * frac * g.get("lr_mult", 1.0)
        loss, extra = step_loss(step)
        if not torch.isfinite(loss):
            raise SystemExit(f"error: stage {stage}: the loss became {loss.item()} at step {step}. The last good "
                             f"checkpoint ({path}) is intact; lower train.{stage}_lr or check the data settings.")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, t.clip)
        opt.step()
        if step % t.log_every == 0 or step == steps - 1:
            bar.set_postfix(loss=f"{loss.item():.3f}")
            log_metrics(run, {"stage": stage, "step": step, "loss": loss.item(), "lr": lr * frac,
                              "time": round(elapsed + time.perf_counter() - t0, 2), **extra})
        if stop_after is not None and step + 1 >= stop_after:
            checkpoint(step + 1, done=False)
            return load_checkpoint(path)
        if (step + 1) % t.ckpt_every == 0 and step + 1 < steps:
            checkpoint(step + 1, done=False)
    bar.close()
    checkpoint(steps, done=True)
    return load_checkpoint(path)


def load_run(run, device=torch.device("cpu")):
    """The trained Flamingo of a finished run folder, in eval mode, and its Config."""
    path = ckpt_path(run, "flamingo")
    if not os.path.isdir(run):
        raise SystemExit(f"error: no run folder {run!r}: train one with `python main.py train --out {run}`")
    if not os.path.exists(path) or not load_checkpoint(path)["done"]:
        raise SystemExit(f"error: {run} has no finished flamingo checkpoint ({path}): finish it with "
                         f"`python main.py train --out {run}`")
    saved = load_checkpoint(path)
    cfg = from_dict(saved["config"])
    model = Flamingo(cfg.model)
    model.load_state_dict(saved["model"])
    return model.freeze().to(device).eval(), cfg
