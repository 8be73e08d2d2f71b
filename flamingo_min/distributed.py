"""More than one process: `torchrun --nproc_per_node=N main.py train` (data parallelism; not in the paper's text).

torchrun starts the processes and sets RANK, LOCAL_RANK and WORLD_SIZE; torch.distributed connects them (gloo on
the CPU, nccl on GPUs); DistributedDataParallel averages the gradients. Nothing here launches a process or sums a
gradient by hand. What this file adds is the bookkeeping that makes N processes train the *same* model as one:

- Each rank reads its own contiguous slice of every step's global batch (`shard`), so the ranks together read
  exactly the samples one process would, and a checkpoint resumes on any world size that divides the batch sizes.
- A loss that is a mean over scored tokens must divide by the *global* count (`global_sum`), not the rank's: ranks
  hold different numbers of scored tokens. Each rank's loss is scaled by the world size, since DDP averages.
- The contrastive loss needs every rank's images as negatives: `gather` concatenates the ranks' embeddings, with
  gradients flowing back to the rank that made them.
- Rank 0 alone writes checkpoints, metrics, plots and the evaluation (`is_main`); `barrier` keeps the others from
  reading a checkpoint before it is written.

With one process (no torchrun) every helper is the identity, and the training code takes the same path.
"""
import os

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_nn

from .errors import ConfigError


def launched():
    """True inside a torchrun process."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def setup(device):
    """Join the process group if torchrun started us (nccl for CUDA, gloo for the CPU); return this process's device:
    the given one, or under torchrun with CUDA its own GPU, cuda:LOCAL_RANK."""
    if not launched():
        return device
    if device.type not in ("cpu", "cuda"):
        raise ConfigError(f"torchrun runs its processes on the CPU (gloo) or on CUDA GPUs (nccl), not on "
                          f"{device.type}: use --device cpu, or one process without torchrun")
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(device)
    return device


def teardown():
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def rank():
    return dist.get_rank() if dist.is_initialized() else 0


def world():
    return dist.get_world_size() if dist.is_initialized() else 1


def is_main():
    return rank() == 0


def barrier():
    if dist.is_initialized():
        dist.barrier()


def check_batches(cfg):
    """A ConfigError unless every per-step batch splits evenly over the ranks."""
    n = world()
    train_cfg = cfg.train
    sizes = {"train.lm_batch": train_cfg.lm_batch, "train.vision_batch": train_cfg.vision_batch // 4,
             "train.doc_batch": train_cfg.doc_batch, "train.pair_batch": train_cfg.pair_batch,
             "train.video_batch": train_cfg.video_batch}
    for name, size in sizes.items():
        if size % n:
            what = "a quarter of " + name if name == "train.vision_batch" else name
            raise ConfigError(f"{what}={size} does not split over {n} processes: give a multiple of {n} (every "
                              "process reads an equal slice of each step's batch)")


def shard(indices, r=None):
    """Process r's contiguous slice (default: this process's) of a step's global sample indices, or of any list. A
    list that does not split evenly is refused: a sample would be dropped (check_batches names the setting)."""
    n, r = world(), rank() if r is None else r
    if len(indices) % n:
        raise ValueError(f"{len(indices)} items do not split over {n} processes")
    k = len(indices) // n
    return indices[r * k:(r + 1) * k]


def global_sum(x):
    """A tensor summed over the ranks (a new tensor; the identity for one process)."""
    if not dist.is_initialized():
        return x
    x = x.clone()
    dist.all_reduce(x)
    return x


def gather(x):
    """Every rank's x (B_r, ...), concatenated in rank order (B, ...); gradients return to each rank's own rows."""
    return torch.cat(dist_nn.all_gather(x)) if dist.is_initialized() else x


def wrap(module, device):
    """DistributedDataParallel around a module whose forward returns a step's loss (one process: the module)."""
    if not dist.is_initialized():
        return module
    ids = [device.index] if device.type == "cuda" else None
    # Our buffers are constants (token ids, the gated layers' calibrated scales): nothing to broadcast every step.
    return torch.nn.parallel.DistributedDataParallel(module, device_ids=ids, broadcast_buffers=False)
