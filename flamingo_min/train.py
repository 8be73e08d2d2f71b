"""Training, the paper's recipe in three stages (paper section 2.4, App. B.1.2):

1. `lm`: pretrain the LM on the text-only corpus (next-token loss), including text-only binding episodes, so it can
   copy in context before it ever sees an image.
2. `vision`: pretrain the vision encoder contrastively against a small text encoder on image-caption pairs.
3. `flamingo`: freeze both; train the resampler, the gated layers and the `<EOC>` embedding. Each update sums every
   stream's weighted loss (M3W-like documents x 1.0, pairs x 0.2: gradient accumulation across datasets, which the paper
   found clearly better than round-robin), all of them packed into one batch and one forward pass (batches.py). AdamW,
   linear warm-up then constant LR (ours cools down over the last fifth: `train.flamingo_cool_down`), global-norm
   clipping at 1. Ours also orders the binding documents, one look per label first (`train.redraw_ramp`).

Every stage trains in fp32 (on a GPU its matrix products in TF32), the loss's softmax included: at these widths a step
is bound by how many operations it launches, not by their arithmetic, and bf16 autocast only added casts (bench).

Which tokens are scored is decided by the streams (toy_data/documents.py): never `<image>`, padding, or text before a
document's first image. The frozen encoder runs without autograd, once per image per step (its features are the cache
the bridge reads); the frozen LM runs inside autograd only because gradients must flow *through* it to the gated layers
below, never *into* its weights, which are out of the optimiser.

The paper's ablations (Table 3; `python main.py ablate`) are switches of this same recipe: train.lm_mode (frozen,
finetune, scratch), train.vision_mode (pretrained, random), train.vision_hard_pairs, train.mixing (accumulate,
round_robin), a dataset's weight 0 to leave it out. A stage's checkpoint is checked only against the settings it
depends on, so one pretrained LM and encoder serve every variant of the bridge.

Every stage is one flat loop (`run_stage`): batch, loss, backward, clip, step, log, checkpoint. Sample i of every stream
is a pure function of (seed, i) and step s reads samples [s*B, (s+1)*B), so a resumed run replays exactly. Under
torchrun each process reads its slice of those samples and DistributedDataParallel averages the gradients
(distributed.py): N processes train the model one process would, within float tolerance.
"""
import math
import os
import time
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from einops import rearrange
from torch.profiler import record_function
from tqdm import tqdm

from toy_data import DocumentStream, PairStream, TextCorpus
from toy_data.documents import VideoStream

from . import distributed as dist
from .batches import batches, bridge_batch, caption_ids, data_workers, text_batch, to_device
from .checkpoints import load_checkpoint, save_checkpoint
from .config import to_dict
from .encoder import ContrastiveModel, VisionEncoder
from .errors import TrainingError
from .lm import Block
from .resampler import ResamplerLayer
from .runs import STAGES, build_flamingo, check_config, ckpt_path, log_metrics, make_lm, trim_metrics
from .xattn import GatedCrossAttention

# The optimiser's settings that no experiment changes.
VISION_LR = 2e-3       # the contrastive encoder's learning rate (the LM's is train.lm_lr)
FLAMINGO_LR = 2e-3     # the bridge's learning rate
GATE_LR_MULT = 10.0    # the tanh gates' learning rate over FLAMINGO_LR: at toy scale they would barely open otherwise
WEIGHT_DECAY = 0.0     # the paper uses 0 for the resampler; we use 0 for every stage
GRAD_CLIP = 1.0        # the global gradient norm is clipped to 1 (paper App. B.1.2)


# --- losses and batches ------------------------------------------------------------------------------------------
def token_losses(logits, ids):
    """Cross-entropy of every next-token prediction, in fp32: logits (B, T, V), ids (B, T) -> (B, T-1), where
    position t-1 predicts token t. Weighting them, rather than picking the scored ones, keeps every shape independent
    of the data, so the host never waits for the device to say how many there are."""
    return F.cross_entropy(rearrange(logits[:, :-1].float(), "b t v -> b v t"), ids[:, 1:], reduction="none")


def next_token_loss(logits, ids, loss_mask, reduction="mean"):
    """Cross-entropy of the scored targets (mean, or sum): position t-1 predicts token t where loss_mask[t]."""
    total = (token_losses(logits, ids) * loss_mask[:, 1:]).sum()
    return total if reduction == "sum" else total / loss_mask[:, 1:].sum()


def visual_tokens(model, batch):
    """Every picture of a Bridge batch encoded and resampled once, laid out in its row's slots: (B, N, R, D), zeros
    in the slots of rows with fewer pictures (no `<image>` tag names them, so nothing reads them)."""
    grid = None
    for pictures, slots in zip(batch.pictures, batch.slots):
        tokens = model.perceive(model.encode(pictures[None]))[0]                         # (n, R, D)
        grid = tokens.new_zeros(len(batch.ids) * batch.n_slots, *tokens.shape[1:]) if grid is None else grid
        grid = grid.index_copy(0, slots, tokens)
    return rearrange(grid, "(b n) r d -> b n r d", b=len(batch.ids))


def mean_loss(total, scored):
    """A sum of token losses over this process's rows -> its share of the mean over every process's scored tokens.
    DistributedDataParallel averages gradients over the N processes, hence the factor N (1 without torchrun)."""
    return total * dist.world() / dist.global_sum(scored)


# --- the three stages: what to build, and the loss of one step -------------------------------------------------------
@dataclass
class Stage:
    """What one stage trains, on what, and how long: the loop (`run_stage`) is the same for all three."""
    model: torch.nn.Module   # saved in the stage's checkpoint
    groups: list             # AdamW's parameter groups, each with its own base learning rate "lr"
    load: Callable           # (step, device) -> that step's batch, a pure function of the step
    loss: Callable           # batch -> (loss, {name: 0-dim tensor to log})
    steps: int
    cool_down: bool = True   # the last fifth of the steps cosine-decays the learning rate


def setup_lm(run, cfg, device, seed):
    model = make_lm(cfg.model).to(device)
    corpus, train_cfg = TextCorpus(cfg.data, seed), cfg.train

    def load(step, device):
        return to_device(text_batch(corpus, step, train_cfg.lm_batch), device)   # packed text: every row is full

    def step_loss(data):
        ids, mask = data
        return mean_loss(next_token_loss(model(ids), ids, mask, "sum"), mask[:, 1:].sum()), {}

    return Stage(model, [{"params": list(model.parameters()), "lr": train_cfg.lm_lr}], load, step_loss,
                 train_cfg.lm_steps)


def setup_vision(run, cfg, device, seed):
    model_cfg, train_cfg = cfg.model, cfg.train
    model = ContrastiveModel(model_cfg.vocab_size, model_cfg.vision_width, model_cfg.embed_dim,
                             model_cfg.pad_id).to(device)
    pairs = PairStream(cfg.data, seed)

    def load(step, device):
        # A quarter random pairs, a quarter their minimal-pair twins (one attribute changed: hard negatives), half
        # colourless pairs (colour augmentation: shape must be read from the outline). See toy_data/documents.py.
        # Without train.vision_hard_pairs, random pairs only (an ablation: the shortcut the hard pairs remove).
        # Under torchrun each process draws the pictures of its slice of every kind; the captions of the whole batch
        # are cheap, and every process reads them all, in the order the processes' images are gathered in.
        q = train_cfg.vision_batch // 4
        quarter = range(step * q, (step + 1) * q)
        grey = range(step * 2 * q, (step + 1) * 2 * q)
        kinds = (("pair", quarter), ("twin", quarter), ("grey", grey)) if train_cfg.vision_hard_pairs else \
            (("pair", range(step * 4 * q, (step + 1) * 4 * q)),)
        with record_function("data/draft"):
            drafts = [[pairs.draft(i, kind) for kind, span in kinds for i in dist.shard(span, r)]
                      for r in range(dist.world())]
        with record_function("data/render"):
            samples = pairs.render(drafts[dist.rank()], device)                                 # this process's
        with record_function("data/collate"):
            images = torch.stack([s.images[0] for s in samples])                               # (B_r, 3, H, W)
            return images, caption_ids([d for mine in drafts for d in mine]).to(device)        # every process's

    def step_loss(data):
        loss = model.loss(*data, gather=dist.gather)
        return loss, {"temperature": 1 / model.logit_scale.detach().exp()}

    return Stage(model, [{"params": list(model.parameters()), "lr": VISION_LR}], load, step_loss,
                 train_cfg.vision_steps)


def datasets(cfg, seed):
    """The bridge's datasets, name -> (stream, batch size, lambda): interleaved documents, image-caption pairs and
    clips with text; a dataset of weight 0 is left out (the clips, but for the video preset)."""
    train_cfg, data_cfg = cfg.train, cfg.data
    ramp = int(train_cfg.redraw_ramp * train_cfg.flamingo_steps) * train_cfg.doc_batch   # documents
    every = {"doc": (DocumentStream(data_cfg, seed, ramp), train_cfg.doc_batch, train_cfg.doc_weight),
             "pair": (PairStream(data_cfg, seed + 1), train_cfg.pair_batch, train_cfg.pair_weight),
             "video": (VideoStream(data_cfg, seed + 2), train_cfg.video_batch, train_cfg.video_weight)}
    return {name: v for name, v in every.items() if v[2] > 0}


def flamingo_parameters(model, cfg):
    """(name, parameter) pairs the flamingo stage trains: the bridge's, and the LM's where train.lm_mode says (the
    ablations that train the LM, at the bridge's learning rate: our choice)."""
    lm = [("lm." + n, p) for n, p in model.lm.named_parameters()] if cfg.train.lm_mode != "frozen" else []
    return model.trainable_parameters() + lm


def setup_flamingo(run, cfg, device, seed):
    model = build_flamingo(run, cfg, device)
    data, train_cfg = datasets(cfg, seed), cfg.train
    names = list(data)

    def load(step, device):
        # round_robin: only dataset step % n, which then sees 1/n of the updates (and of the samples)
        chosen = names if train_cfg.mixing == "accumulate" else [names[step % len(names)]]
        return bridge_batch({name: data[name] for name in chosen}, step, device)

    def step_loss(batch):  # one forward over every dataset's rows: the datasets' weighted mean losses, summed
        logits = model(batch.ids, media=visual_tokens(model, batch))
        per_dataset = (batch.share[:, :, 1:] * token_losses(logits, batch.ids)).sum((1, 2))   # (D,): each one's mean
        return (batch.weights * per_dataset).sum(), {**{f"loss_{name}": loss for name, loss in
                                                         zip(batch.datasets, per_dataset.detach())},
                                                      **model.gate_values()}

    # The gates start at 0, so nothing behind them gets a gradient until they move, and Adam moves a scalar by about
    # lr per step: at toy scale (hundreds of steps, not the paper's 500k) they would barely open. The gate scalars
    # alone get a larger learning rate (GATE_LR_MULT); they still start at exactly 0, so the model still starts
    # as the LM.
    named = flamingo_parameters(model, cfg)
    for _, p in named:
        p.requires_grad_(True)  # the LM's too where train.lm_mode trains it
    gates = [p for n, p in named if n.endswith(("alpha_xattn", "alpha_dense"))]
    rest = [p for n, p in named if not n.endswith(("alpha_xattn", "alpha_dense"))]
    groups = [{"params": rest, "lr": FLAMINGO_LR}, {"params": gates, "lr": FLAMINGO_LR * GATE_LR_MULT}]
    return Stage(model, groups, load, step_loss, train_cfg.flamingo_steps, train_cfg.flamingo_cool_down)


SETUP = {"lm": setup_lm, "vision": setup_vision, "flamingo": setup_flamingo}


# --- the loop ------------------------------------------------------------------------------------------------------
def learning_rate_fraction(step, steps, warmup, cool_down):
    """Linear warm-up, then constant (the paper's bridge schedule); with cool_down (our choice, every stage by
    default) the last fifth decays, cosine to 10%. A long constant phase matters for the LM: its in-context copying
    appears suddenly, after hundreds of steps, and an early decay can stall it (docs/incontext.md)."""
    frac = min(1.0, (step + 1) / warmup) if warmup else 1.0
    cool = int(0.8 * steps)
    if cool_down and step >= cool:
        frac = 0.1 + 0.45 * (1 + math.cos(math.pi * (step - cool) / max(1, steps - cool)))
    return frac


def compile_blocks(model, mode="default"):
    """torch.compile, in place, every repeated block of a model: LM blocks, gated layers, resampler layers, the CNN.
    Blocks, not the whole forward: their shapes are all a batch changes, and what lies between them (masks, the
    visual tokens' layout) stays eager, so nothing breaks a graph."""
    for m in model.modules():
        if isinstance(m, (Block, GatedCrossAttention, ResamplerLayer)):
            m.compile(mode=mode)
        elif isinstance(m, VisionEncoder):
            m.net.compile(mode=mode)
    return model


def first_non_finite(losses, norms, start, upto):
    """Where steps [start, upto) went wrong, in words, or None: the earliest step whose loss or gradient norm is not
    finite, its loss named before its norm. A gradient can turn non-finite under a finite loss (clipping then spreads
    it to every weight, and only the next step's loss shows it): it is named at its own step."""
    bad = (~torch.isfinite(torch.stack([losses[start:upto], norms[start:upto]]))).nonzero().tolist()
    if not bad:
        return None
    which, first = min(bad, key=lambda wf: (wf[1], wf[0]))
    first += start
    what = (f"the loss became {losses[first].item()}" if which == 0 else
            f"the gradient became {norms[first].item()} (its loss was {losses[first].item():.4g})")
    return f"{what} at step {first}"


class Objective(torch.nn.Module):
    """A stage's loss as the forward of a module that holds the model, so that DistributedDataParallel can wrap it."""

    def __init__(self, model, step_loss):
        super().__init__()
        self.model, self.step_loss = model, step_loss

    def forward(self, data):
        return self.step_loss(data)


def run_stage(run, stage, cfg, seed=0, device=torch.device("cpu"), progress=True, stop_after=None, probe=None,
              probe_every=100):
    """Train one stage to its end, resuming from its checkpoint if there is one. Returns its final checkpoint dict.

    Under torchrun every process runs this; rank 0 alone writes the checkpoint and the log (distributed.py).
    stop_after: stop (without marking the stage done) once this many steps are finished; tests use it.
    probe: model -> {name: float}, measured on rank 0 at every logged step that is a multiple of probe_every (and
    the last), and logged beside the loss: how the caller watches a skill appear (the LM's copying: main.py passes
    lab.probes.copying). It must not touch the global random state, so a probed run trains the same numbers.
    """
    path = ckpt_path(run, stage)
    saved = load_checkpoint(path) if os.path.exists(path) else None
    if saved is not None:
        check_config(saved["config"], cfg, path, stage)
        if saved["done"]:
            return saved
    main = dist.is_main()
    torch.manual_seed(seed + STAGES.index(stage))
    s = SETUP[stage](run, cfg, device, seed)
    model, steps, train_cfg = s.model, s.steps, cfg.train
    if train_cfg.compile != "off":
        compile_blocks(model, train_cfg.compile)
    objective = dist.wrap(Objective(model, s.loss), device)
    # One fused kernel for every parameter's update (no per-parameter loop, no step counter read on the host).
    opt = torch.optim.AdamW(s.groups, betas=(0.9, 0.95), weight_decay=WEIGHT_DECAY, fused=True)
    base_lr = [g["lr"] for g in s.groups]
    params = [p for g in opt.param_groups for p in g["params"]]
    start, elapsed = 0, 0.0
    if saved is not None:  # resume: weights, optimiser, random state, and the log as of the checkpoint
        model.load_state_dict(saved["model"])
        opt.load_state_dict(saved["optim"])
        torch.set_rng_state(saved["rng"])
        start, elapsed = saved["step"], saved["elapsed"]
        if main:
            trim_metrics(run, stage, start)

    # A step reads nothing back from the device (tests/test_step.py counts): each step's loss and gradient norm are kept
    # there, and read only where the log or a checkpoint needs them. A non-finite one is found then, before anything
    # is written.
    losses, norms, checked = torch.zeros(steps, device=device), torch.zeros(steps, device=device), start

    def check_finite(upto):
        nonlocal checked
        wrong = first_non_finite(losses, norms, checked, upto) if upto > checked else None
        if wrong:
            raise TrainingError(f"stage {stage}: {wrong}. The last good checkpoint ({path}) is intact (the same "
                                "command resumes from it); docs/performance.md says what has made a step non-finite "
                                "before.")
        checked = max(checked, upto)

    def checkpoint(step, done):
        check_finite(step)
        if main:
            save_checkpoint({"stage": stage, "step": step, "done": done, "config": to_dict(cfg), "seed": seed,
                             "model": model.state_dict(), "optim": opt.state_dict(), "rng": torch.get_rng_state(),
                             "elapsed": elapsed + time.perf_counter() - t0,
                             # for a summary whose folder holds no log of this stage (the last step always logs)
                             "loss": last_logged}, path)

    model.train()
    t0 = time.perf_counter()
    bar = tqdm(range(start, steps), desc=f"{stage:>8}", initial=start, total=steps,
               unit="step", dynamic_ncols=True, leave=True, disable=not (progress and main))
    step, last_logged = start - 1, float("nan")
    for step, data in zip(bar, batches(s.load, start, steps, device, data_workers(train_cfg, device))):
        frac = learning_rate_fraction(step, steps, train_cfg.warmup, s.cool_down)
        for g, lr in zip(opt.param_groups, base_lr):
            g["lr"] = lr * frac
        loss, extra = objective(data)
        # The loss of the whole batch (with N processes the mean of their shares) and the logged extras: every
        # process holds the same values, so all stop together on a non-finite loss.
        reported = dist.global_sum(torch.stack([loss.detach(), *extra.values()]).float()) / dist.world()
        losses[step] = reported[0]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        norms[step] = torch.nn.utils.clip_grad_norm_(params, GRAD_CLIP)
        opt.step()
        logged = step % train_cfg.log_every == 0 or step == steps - 1
        if logged:
            check_finite(step + 1)
        if logged and main:
            values = reported.tolist()
            last_logged = values[0]
            bar.set_postfix(loss=f"{values[0]:.3f}")
            seen = probe(model) if probe is not None and (step % probe_every == 0 or step == steps - 1) else {}
            log_metrics(run, {"stage": stage, "step": step, "loss": values[0], "lr": base_lr[0] * frac,
                              "time": round(elapsed + time.perf_counter() - t0, 2), **dict(zip(extra, values[1:])),
                              **seen})
        if stop_after is not None and step + 1 >= stop_after:
            break
        if (step + 1) % train_cfg.ckpt_every == 0 and step + 1 < steps:
            checkpoint(step + 1, done=False)
    bar.close()
    checkpoint(step + 1, done=step + 1 == steps)
    dist.barrier()  # the other processes read this checkpoint next (the next stage, the evaluation)
    return load_checkpoint(path)


