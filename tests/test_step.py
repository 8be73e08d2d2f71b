"""What a training step may do on any device, proved on the CPU: read nothing back from the device except where it logs
or checkpoints, and draw the same batches whatever the number of data workers.

A read of the device (`.item()`, `.tolist()`, `bool(t)`, `nonzero`, indexing with a boolean mask, a shape that depends
on values) makes the host wait until the GPU has finished everything queued so far: one per step leaves the GPU idle
while Python prepares the next kernels. On the CPU nothing waits, so the reads are counted instead: every aten operator
a step dispatches passes through a TorchDispatchMode, and every `tolist` through a wrapper. And the step runs on the
meta device, whose tensors have shapes and no values, where any read is an error.
"""
import os
import traceback

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import flamingo_min.batches as batches
import flamingo_min.train as train
from conftest import TINY_RUN
from flamingo_min.config import make_config
from flamingo_min import runs

aten = torch.ops.aten
# Operators whose result the host must wait for: a value read back, or an output whose shape depends on values.
READS = {aten._local_scalar_dense.default, aten.is_nonzero.default, aten.equal.default, aten.nonzero.default,
         aten.masked_select.default, aten._unique2.default, aten.unique_consecutive.default, aten.unique_dim.default,
         aten.repeat_interleave.Tensor, aten.masked_scatter.default}


def by_mask(func, args):
    """Indexing with a boolean mask: its result's length is the mask's count of True."""
    if func not in (aten.index.Tensor, aten.index_put.default, aten.index_put_.default):
        return False
    return any(i is not None and i.dtype == torch.bool for i in args[1])


class Reads(TorchDispatchMode):
    """Counts the device reads dispatched while active, per training step (`self.step`, set by the test's hook).
    torch.optim's own reads are left out: AdamW keeps its step counter on the host unless told otherwise, so reading it
    never waits for a GPU."""

    def __init__(self):
        super().__init__()
        self.step, self.seen = None, []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func in READS or by_mask(func, args):
            if not any(f"torch{os.sep}optim{os.sep}" in f.filename for f in traceback.extract_stack()):
                self.seen.append((self.step, str(func)))
        return func(*args, **(kwargs or {}))


def reads_per_step(run, stage, cfg, monkeypatch):
    """Train `stage` of `run` and return {step: [reads]}; logged steps are 0 and the last (train.log_every)."""
    mode = Reads()
    step_of = train.learning_rate_fraction

    def marked(step, *a):       # called once at the top of every step
        mode.step = step
        return step_of(step, *a)

    tolist = torch.Tensor.tolist

    def counted(t):
        mode.seen.append((mode.step, "tolist"))
        return tolist(t)

    monkeypatch.setattr(train, "learning_rate_fraction", marked)
    monkeypatch.setattr(torch.Tensor, "tolist", counted)
    with mode:
        train.run_stage(run, stage, cfg, progress=False)
    monkeypatch.undo()
    out = {}
    for step, what in mode.seen:
        out.setdefault(step, []).append(what)
    return out


@pytest.mark.parametrize("stage", runs.STAGES)
def test_a_training_step_reads_nothing_from_the_device_but_its_log(stage, tiny_run, tmp_path, monkeypatch):
    cfg = make_config("quick", TINY_RUN + ["train.log_every=100", "train.ckpt_every=100", "train.lm_steps=5",
                                           "train.vision_steps=5", "train.flamingo_steps=5"])
    run = str(tmp_path)
    for earlier in runs.STAGES[:runs.STAGES.index(stage)]:      # the pretrained stages the bridge needs
        train.run_stage(run, earlier, cfg, progress=False)
    reads = reads_per_step(run, stage, cfg, monkeypatch)
    # Steps 1 to 3 are neither logged nor checkpointed: not one read. Steps 0 and 4 log (step 4 then checkpoints, with
    # nothing new to check): the finite-loss check of the steps since the last one (nonzero, tolist) and the logged
    # values (tolist). Building the model and loading the earlier stages read nothing (no step None).
    logged = ["aten.nonzero.default", "tolist", "tolist"]
    assert reads == {0: logged, 4: logged}


def test_the_detector_sees_the_reads_it_is_meant_to_catch():
    """The counter itself: each kind of read a step must not make is seen."""
    x = torch.arange(6.0)
    mode = Reads()
    with mode:
        x.sum().item()
        bool(x[0] > 1)
        x[x > 2]
        x.nonzero()
        x.masked_fill(x > 2, 0.0)       # not a read: the shape stays
    assert [w for _, w in mode.seen] == ["aten._local_scalar_dense.default", "aten._local_scalar_dense.default",
                                         "aten.index.Tensor", "aten.nonzero.default"]


@pytest.mark.parametrize("stage", runs.STAGES)
def test_any_number_of_data_workers_draws_the_same_batches(stage, tiny_run):
    """Step s's batch is a pure function of s: drawn in this process or ahead by 2 worker processes, it is the same
    tensors in the same order, and on resume the workers start at the right step."""
    cfg = make_config("quick", TINY_RUN)
    load = train.SETUP[stage](tiny_run, cfg, torch.device("cpu"), 0).load
    cpu = torch.device("cpu")
    here = list(batches.batches(load, 3, 7, cpu, workers=0))
    ahead = list(batches.batches(load, 3, 7, cpu, workers=2))
    assert len(here) == len(ahead) == 4

    def same(a, b):
        if torch.is_tensor(a):
            return torch.is_tensor(b) and a.dtype == b.dtype and torch.equal(a, b)
        if isinstance(a, dict):
            return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
        if isinstance(a, (list, tuple)):
            return type(a) is type(b) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
        return a == b

    assert all(same(a, b) for a, b in zip(here, ahead))
    assert not same(here[0], here[1])                    # and the steps do differ: the comparison can fail


def test_a_run_with_data_workers_trains_the_same_numbers(tiny_run, tmp_path):
    cfg = make_config("quick", TINY_RUN + ["train.data_workers=2"])
    for stage in runs.STAGES:
        train.run_stage(str(tmp_path), stage, cfg, progress=False)
    strip = lambda ms: [{k: v for k, v in m.items() if k != "time"} for m in ms]
    assert strip(runs.read_metrics(str(tmp_path))) == strip(runs.read_metrics(tiny_run))


@pytest.mark.parametrize("stage", runs.STAGES)
def test_a_training_step_runs_on_a_device_that_holds_no_values(stage, tiny_run):
    """On the meta device a tensor has a shape and no values: reading one is an error, and so is any shape that depends
    on values. A stage's batches are drawn there, and its steps (forward, backward, clipping, AdamW) run there."""
    meta = torch.device("meta")
    cfg = make_config("quick", TINY_RUN)
    s = train.SETUP[stage](tiny_run, cfg, meta, 0)
    model, load, step_loss = s.model.train(), s.load, s.loss
    opt = torch.optim.AdamW(s.groups, lr=1e-3)
    params = [p for g in opt.param_groups for p in g["params"]]
    for step in range(2):
        data = load(step, meta)
        loss, extra = step_loss(data)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, train.GRAD_CLIP)
        opt.step()
    batch = tensors(data)
    assert len(batch) >= 2 and {t.device for t in [loss, *extra.values(), *batch, *params]} == {meta}


def tensors(x):
    """Every tensor in a batch of nested dicts, lists and tuples."""
    if torch.is_tensor(x):
        return [x]
    if isinstance(x, dict):
        x = list(x.values())
    return [t for v in x for t in tensors(v)] if isinstance(x, (list, tuple)) else []


def test_a_real_bridge_step_dispatches_little_beyond_the_model(tiny_run, tmp_path, monkeypatch):
    """One update of the bridge (documents and pairs in one pass, the weighted loss, clipping, fused AdamW, the
    loop's bookkeeping) against the model alone on the same batches (forward, plain loss, backward, AdamW): device
    operations counted, the drawing of the data apart. Three passes a step and autocast's casts made this 4x."""
    from flamingo_min.lab.bench import OpCount, ops_of, train_step_fn
    cfg = make_config("quick", TINY_RUN + ["train.log_every=100", "train.ckpt_every=100", "train.flamingo_steps=4"])
    run = str(tmp_path)
    for earlier in ("lm", "vision"):
        train.run_stage(run, earlier, cfg, progress=False)
    mode, draw = OpCount(), train.bridge_batch
    per_step, step_of = {}, train.learning_rate_fraction

    def marked(step, *a):                    # the top of every step: what was counted so far was the last step's
        per_step[step - 1] = mode.n
        mode.n = 0
        return step_of(step, *a)

    def drawn(*a, **k):                      # the data's own operations are not the step's
        before = mode.n
        out = draw(*a, **k)
        mode.n = before
        return out

    monkeypatch.setattr(train, "learning_rate_fraction", marked)
    monkeypatch.setattr(train, "bridge_batch", drawn)
    with mode:
        train.run_stage(run, "flamingo", cfg, progress=False)
    monkeypatch.undo()
    s = train.SETUP["flamingo"](run, cfg, torch.device("cpu"), 0)
    model, load = s.model, s.load
    params = [p for _, p in model.trainable_parameters()]
    for step in (1, 2):                      # neither logged nor checkpointed
        alone = ops_of(train_step_fn(model.train(), params, [load(step, torch.device("cpu"))]))
        assert per_step[step] <= 1.3 * alone, (per_step[step], alone)
        assert per_step[step] >= alone       # the counter does see the whole step


@pytest.mark.parametrize("preset", ["quick", "video"])
def test_one_pass_gives_the_weighted_sum_of_each_datasets_mean_loss(preset):
    """The bridge's one forward over packed rows is the paper's loss: sum over datasets of lambda_d x the mean loss
    over d's scored targets, each sample read alone (as a batch of its own, no packing), to float tolerance."""
    from conftest import open_gates
    from flamingo_min import Flamingo
    from flamingo_min.batches import bridge_batch
    from toy_data.documents import collate
    cfg = make_config(preset, TINY_RUN + ["train.video_batch=4"])
    torch.manual_seed(0)
    model = open_gates(Flamingo(cfg.model)).train()
    data = train.datasets(cfg, 0)
    assert len(data) == (3 if preset == "video" else 2)
    for step in (0, 5):
        b = bridge_batch(data, step, torch.device("cpu"))
        assert len(b.ids) < sum(size for _, size, _ in data.values())        # rows were packed together
        per_dataset = (b.share[:, :, 1:] * train.token_losses(model(b.ids, media=train.visual_tokens(model, b)),
                                                              b.ids)).sum((1, 2))
        want = []
        for stream, size, _ in data.values():
            total, scored = 0.0, 0
            for i in range(step * size, (step + 1) * size):
                ids, mask, images, _ = collate([stream[i]])
                total += train.next_token_loss(model(ids, images=images), ids, mask, "sum")
                scored += mask[:, 1:].sum()
            want.append(total / scored)
        assert torch.allclose(per_dataset, torch.stack(want), rtol=1e-5)
        assert torch.allclose((b.weights * per_dataset).sum(),
                              sum(w * l for (_, _, w), l in zip(data.values(), want)), rtol=1e-5)


def test_packing_pads_less_than_one_block_per_dataset_in_two_length_groups():
    """First-fit decreasing packing of the default recipe's documents and pairs: fewer token slots than the documents
    in two length groups plus the pairs in one block, each padded to its longest (the three passes packing replaced)."""
    from flamingo_min.batches import bridge_batch, padding
    data = train.datasets(make_config("default"), 0)
    for step in range(4):
        b = bridge_batch(data, step, torch.device("cpu"))
        grouped = 0
        for name, (stream, size, _) in data.items():
            lengths = sorted(len(stream.draft(i).tokens) for i in range(step * size, (step + 1) * size))
            groups = [lengths[:size // 2], lengths[size // 2:]] if name == "doc" else [lengths]
            grouped += sum(len(g) * max(g) for g in groups)
        assert b.ids.numel() <= grouped and padding(b)[0] < 0.1 * b.ids.numel()
