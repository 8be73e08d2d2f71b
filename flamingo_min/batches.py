"""What one training step reads: its samples drawn from the streams (toy_data/), collated, and brought to the device.

Step s of a stream reads samples [s*B, (s+1)*B), each a pure function of (seed, index), so a resumed run replays
exactly; under torchrun each process reads its contiguous slice of them (distributed.shard).

The bridge's step reads every dataset at once (paper section 2.4: the weighted sum of the datasets' losses, one
update) in **one** forward pass. Documents run from 5 to 41 tokens and pairs are 6 to 9, so one batch padded to its
longest would be more than half padding; instead the samples are *packed*, longest first, each into the first row with
room for it (first-fit decreasing), as several documents back to back. Each document opens with `<bos>`, and nothing
reaches across a `<bos>`: not the LM's attention, not its positions, not phi (masking.document_starts). A packed row
so computes exactly what its documents would alone. Each scored target carries its dataset's weight over that dataset's
scored targets in the whole step (every process's), so the summed loss is the paper's sum of per-dataset means.

The pictures travel flat, in the order of their `<image>` tags, with the slot each fills in the (B, N) grid of a
batch's images: none is padding, so the frozen encoder and the resampler see each picture once.

Shapes: B rows, T text length, N image slots per row, D datasets, n pictures, F frames.
"""
import os
from typing import NamedTuple

import torch
from torch.profiler import record_function

from toy_data import TOKENIZER

from . import distributed as dist


class Bridge(NamedTuple):
    """One step of the bridge's data, packed (a NamedTuple, so that DataLoader workers and pinned memory carry it)."""
    ids: torch.Tensor        # (B, T) long: packed rows, right-padded
    share: torch.Tensor      # (D, B, T) float: dataset d's weight on target t: 1 / d's scored targets (else 0)
    pictures: tuple          # per media shape: (n, [F,] 3, H, W), row by row in the order of their <image> tags
    slots: tuple             # per media shape: (n,) long: b * N + k, picture k of row b
    n_slots: int             # N, the most pictures in a row
    weights: torch.Tensor    # (D,) float: each dataset's lambda (paper section 2.4)
    datasets: tuple          # (D,) the datasets' names


def pad_rows(rows, value):
    """A list of 1-D tensors -> (B, longest), right-padded with `value`, in one call."""
    return torch.nn.utils.rnn.pad_sequence(rows, batch_first=True, padding_value=value)


def text_batch(stream, step, size):
    """The text of samples [step*size, (step+1)*size) of a stream (this process's slice): ids, loss mask (B, T)."""
    with record_function("data/draft"):
        samples = [stream.draft(i) for i in dist.shard(range(step * size, (step + 1) * size))]
    with record_function("data/collate"):
        return pad_rows([s.tokens for s in samples], TOKENIZER.pad_id), pad_rows([s.loss_mask for s in samples], False)


def pack(lengths):
    """First-fit decreasing: item indices grouped into rows of at most max(lengths) tokens. Deterministic."""
    rows, room = [], []
    capacity = max(lengths)
    for i in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        fit = next((r for r, free in enumerate(room) if free >= lengths[i]), None)
        if fit is None:
            rows.append([]), room.append(capacity)
            fit = len(rows) - 1
        rows[fit].append(i)
        room[fit] -= lengths[i]
    return rows


def bridge_batch(datasets, step, device):
    """Step `step` of each dataset, name -> (stream, batch size, lambda), packed into one Bridge batch, its pictures
    drawn on `device`. Every process drafts the whole step (cheap: no pixels) to count each dataset's scored targets
    over all processes, then renders its own slice."""
    mine, scored = [], []
    with record_function("data/draft"):
        for d, (stream, size, _) in enumerate(datasets.values()):
            drafts = [stream.draft(i) for i in range(step * size, (step + 1) * size)]
            scored.append(torch.stack([x.loss_mask[1:].sum() for x in drafts]).sum())   # a tensor: no read
            mine.append((d, stream, dist.shard(drafts)))
    with record_function("data/render"):
        samples = [(d, s) for d, stream, drafts in mine for s in stream.render(drafts, device)]
    with record_function("data/collate"):
        rows = pack([len(s.tokens) for _, s in samples])
        ids = pad_rows([torch.cat([samples[i][1].tokens for i in row]) for row in rows], TOKENIZER.pad_id)  # (B, T)
        share = torch.zeros(len(datasets), *ids.shape)                                                   # (D, B, T)
        n_slots = max(sum(len(samples[i][1].images) for i in row) for row in rows)
        groups = {}                                       # picture shape -> (pictures, slots)
        for b, row in enumerate(rows):
            t, k = 0, 0
            for i in row:
                d, s = samples[i]
                share[d, b, t:t + len(s.tokens)] = s.loss_mask * dist.world() / scored[d].clamp(min=1)
                for picture in s.images:
                    pics, slots = groups.setdefault(tuple(picture.shape), ([], []))
                    pics.append(picture), slots.append(b * n_slots + k)
                    k += 1
                t += len(s.tokens)
        shapes = sorted(groups, key=len)                  # stills before clips: the same order on every step
        pictures = tuple(torch.stack(groups[sh][0]) for sh in shapes)              # each (n, [F,] 3, H, W)
        slots = tuple(torch.tensor(groups[sh][1]) for sh in shapes)                # each (n,)
    weights = torch.tensor([weight for _, _, weight in datasets.values()])
    return to_device(Bridge(ids, share, pictures, slots, n_slots, weights, tuple(datasets)), device)


def padding(batch):
    """(padded tokens, all tokens) of a Bridge batch: what packing leaves unused."""
    real = int((batch.ids != TOKENIZER.pad_id).sum())
    return batch.ids.numel() - real, batch.ids.numel()


def caption_ids(drafts):
    """Pair-stream drafts or samples `<bos> <image> caption <EOC>` -> the captions' words only, padded (B, L)."""
    return pad_rows([d.tokens[2:-1] for d in drafts], TOKENIZER.pad_id)


def to_device(data, device):
    """A step's batch, every tensor in it copied to `device` (from pinned memory, without waiting, on a GPU)."""
    def move(x):
        if torch.is_tensor(x):
            return x.to(device, non_blocking=True)
        if isinstance(x, Bridge):
            return Bridge(*(move(v) for v in x))
        if isinstance(x, (list, tuple)):
            return type(x)(move(v) for v in x)
        return x                                          # ints, names

    with record_function("data/move"):
        return move(data)


class Steps(torch.utils.data.Dataset):
    """Item s is step s's whole batch, drawn on the CPU: a DataLoader's worker processes draw the coming steps while
    the device trains on this one. Every batch is a pure function of its step, so any number of workers gives the
    same batches in the same order (tests/test_step.py)."""

    def __init__(self, load):
        self.load = load

    def __getitem__(self, step):
        return self.load(step, torch.device("cpu"))


def as_is(data):
    return data


def batches(load, start, steps, device, workers=0):
    """The batches of steps [start, steps), on `device`: drawn in this process, on the device itself (workers=0), or
    drawn ahead on the CPU by `workers` processes and copied over."""
    if workers == 0:
        return (load(s, device) for s in range(start, steps))
    loader = torch.utils.data.DataLoader(Steps(load), batch_size=None, sampler=range(start, steps),
                                         num_workers=workers, collate_fn=as_is, pin_memory=device.type == "cuda",
                                         prefetch_factor=4, persistent_workers=False)
    return (to_device(data, device) for data in loader)


def data_workers(train_cfg, device):
    """train.data_workers, or where it is -1: none on the CPU, whose cores the step itself uses (one worker made a
    2-core machine's bridge step slower: docs/performance.md), and beside a GPU up to 6 of its cores."""
    if train_cfg.data_workers >= 0:
        return train_cfg.data_workers
    return 0 if device.type == "cpu" else max(0, min(6, (os.cpu_count() or 1) - 2))
