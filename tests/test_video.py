"""Clips: the pixels show what the caption says, a clip played backwards is the opposite event, frame order
reaches the model only through the temporal embeddings, an image is exactly a 1-frame clip, a clip is one media item
to the mask, the video stream, preset and tasks work end to end, and a run of the older vocabulary is refused."""
import random
from dataclasses import replace

import pytest
import torch
from hypothesis import assume, given
from hypothesis import strategies as st

from conftest import TINY, open_gates
from flamingo_min import Flamingo
from flamingo_min.config import make_config
from flamingo_min.errors import CheckpointError, ConfigError, EvalError
from flamingo_min.evaluate import evaluate, tasks_for
from flamingo_min.checkpoints import load_checkpoint, save_checkpoint
from flamingo_min.masking import phi
from flamingo_min.runs import load_run
from flamingo_min.train import datasets
from strategies import IMG, batch
from toy_data import TOKENIZER, DataConfig, PairStream
from toy_data.clips import EVENTS, SPAN, Clip, draw_clip, render_media, reverse
from toy_data.documents import TextCorpus, VideoStream, collate
from toy_data.shapes import BACKGROUND, COLOURS, EVAL_COMBOS, HELD_OUT, RGB, TRAIN_COMBOS
from toy_data.tasks import RICH_TASKS, TASKS, VIDEO_TASKS, make_episode

BRIDGES = ("perceiver", "mlp", "transformer", "mean")
FRAMES = 4


# --- the clips themselves -------------------------------------------------------------------------------------------
def actor_pixels(frames, colour):
    """(F, H, W) bool: pixels fully covered in the actor's colour (these renders have no noise and no jitter)."""
    return (frames - RGB[colour][None, :, None, None]).abs().amax(1) < 0.05


@given(st.integers(0, 10_000), st.sampled_from(EVENTS))
def test_the_pixels_show_the_event_and_the_reverse_is_the_opposite(seed, event):
    clip = draw_clip(random.Random(seed), FRAMES, event=event)
    still = set.intersection(*(set(f.objects) for f in clip.frames))          # the object that stands still, if any
    clip = replace(clip, frames=tuple(replace(f, objects=tuple(o for o in f.objects if o not in still))
                                      for f in clip.frames))
    px = render_media([clip], 32, torch.Generator().manual_seed(seed), jitter=0.0, colour_jitter=0.0, noise=0.0)[0]
    ink = (px - BACKGROUND).abs().sum(1)                                      # (F, H, W): coverage, anti-aliased
    area = ink.sum((1, 2)).tolist()
    if event.startswith("moves"):
        grid = torch.arange(32.0)
        x = ((ink.sum(1) * grid).sum(1) / ink.sum((1, 2))).tolist()            # the ink's centre, per frame
        y = ((ink.sum(2) * grid).sum(1) / ink.sum((1, 2))).tolist()
        along = {"left": [-v for v in x], "right": x, "up": [-v for v in y], "down": y}[event.split()[1]]
        step = 2 * SPAN / (FRAMES - 1) * 16                                   # 4.8 px a frame at 32 px
        assert all(b - a > 0.8 * step for a, b in zip(along, along[1:]))
    elif event in ("grows", "shrinks"):
        steps = [b - a for a, b in zip(area, area[1:])]
        assert all(s > 0 for s in steps) if event == "grows" else all(s < 0 for s in steps)
    elif event == "appears":
        assert area[:2] == [0, 0] and min(area[2:]) > 0 and (px[:2] == BACKGROUND).all()
    elif event == "disappears":
        assert min(area[:2]) > 0 and area[2:] == [0, 0]
    else:  # turns <colour>: the first half in one colour, the second in the other
        new = COLOURS.index(clip.event.split()[1])
        before, after = (actor_pixels(px, c).flatten(1).sum(1).tolist() for c in (clip.colour, new))
        assert min(before[:2]) > 0 and before[2:] == [0, 0] and after[:2] == [0, 0] and min(after[2:]) > 0
    back = reverse(clip)
    assert back.frames == clip.frames[::-1] and reverse(back) == clip
    assert back.caption != clip.caption and back.shape == clip.shape


@given(st.integers(0, 10_000))
def test_clips_keep_the_held_out_split(seed):
    rng = random.Random(seed)
    for combos, other in ((TRAIN_COMBOS, HELD_OUT), (EVAL_COMBOS, set(TRAIN_COMBOS))):
        for event in EVENTS:
            clip = draw_clip(rng, FRAMES, combos, event)
            seen = {(o.colour, o.shape) for f in clip.frames for o in f.objects}
            assert seen and not seen & set(other)
            assert len({o for f in clip.frames for o in f.objects[1:]}) <= 1   # the second object stands still


def test_clip_settings_and_batches_are_checked():
    with pytest.raises(ValueError, match="data.clip_frames=3: give an even number"):
        DataConfig(clip_frames=3)
    with pytest.raises(ValueError, match="even number of frames"):
        draw_clip(random.Random(0), 3)
    with pytest.raises(ConfigError, match="set model.max_frames=4"):
        make_config("default", ["train.video_weight=1"])
    still = TextCorpus(DataConfig(), 0)[0]
    clips = VideoStream(DataConfig(), 0)[0]
    with pytest.raises(ValueError, match="batch stills and clips"):
        collate([PairStream(DataConfig(), 0)[0], clips])
    assert collate([still, clips])[2].shape[2:] == (FRAMES, 3, 32, 32)        # text rows carry no media


def test_video_stream_is_seeded_and_reads_as_documents():
    s, again = VideoStream(DataConfig(), 3), VideoStream(DataConfig(), 3)
    batch_ = s.batch(range(12))
    kinds = set()
    for i, x in enumerate(batch_):
        y = again[i]
        assert torch.equal(x.tokens, y.tokens) and torch.equal(x.images, y.images)   # batched == one at a time
        assert x.images.shape == (int((x.tokens == IMG).sum()), FRAMES, 3, 32, 32)
        words = TOKENIZER.decode(x.tokens).split()
        chunks = " ".join(words[1:]).split(" <EOC>")[:-1]
        for clip, chunk in zip(x.scenes, chunks):
            assert chunk.strip() in (f"<image> {clip.caption}", f"<image> {clip.event}")
        assert not x.loss_mask[x.tokens == IMG].any() and not x.loss_mask[0]
        kinds.add(x.task)
    assert kinds == {"video clip", "video events", "video direction"}
    text = TextCorpus(DataConfig(text_mix=("event",)), 0)[0]
    assert "moves" in TOKENIZER.decode(text.tokens) or "turns" in TOKENIZER.decode(text.tokens)


# --- the model: frames, temporal embeddings, media items -------------------------------------------------------------
def video_model(bridge, seed=0, max_frames=FRAMES):
    torch.manual_seed(seed)
    return open_gates(Flamingo(replace(TINY, resampler=bridge, max_frames=max_frames)).eval(), seed)


@given(st.sampled_from(BRIDGES), st.permutations(range(FRAMES)), st.integers(0, 50))
def test_frame_order_reaches_the_model_only_through_temporal_embeddings(bridge, order, seed):
    """With the temporal embeddings zeroed, shuffling a clip's frames changes nothing; with them, it changes what
    the text reads, except through a mean: the mean of (features + time) over frames is the same in any order."""
    assume(list(order) != list(range(FRAMES)))
    m = video_model(bridge, seed)
    ids = torch.tensor([[TOKENIZER.bos_id, IMG, 20, 21, IMG, 22, 23]])
    feats = torch.randn(1, 2, FRAMES, 16, 16, generator=torch.Generator().manual_seed(seed))   # (B, N, F, S, Dv)
    shuffled = feats[:, :, list(order)]
    with torch.no_grad():
        with_time = [m(ids, media=m.perceive(f))[0] for f in (feats, shuffled)]
        m.resampler.input.time.zero_()
        without = [m(ids, media=m.perceive(f))[0] for f in (feats, shuffled)]
    assert torch.allclose(without[0], without[1], atol=1e-5)                  # order-blind without them
    assert torch.allclose(with_time[0], with_time[1], atol=1e-5) == (bridge == "mean")   # order-aware with them
    assert torch.equal(with_time[0][0], with_time[1][0])                       # <bos>, before any clip, never moves


@given(st.sampled_from(BRIDGES), st.integers(0, 50))
def test_an_image_is_exactly_a_one_frame_clip(bridge, seed):
    m = video_model(bridge, seed)
    ids = torch.tensor([[TOKENIZER.bos_id, IMG, 20, IMG, IMG, 21]])
    images = torch.rand(1, 3, 3, 16, 16, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        still = m(ids, images=images)
        clip = m(ids, images=images[:, :, None])                               # (B, N, 1, 3, H, W)
    assert torch.equal(still, clip)


@given(batch(max_rows=2, pad=False), st.integers(0, 3), st.integers(0, FRAMES - 1))
def test_a_clip_is_one_media_item(ids, j, frame):
    """Changing one frame of clip j moves the logits from clip j's <image> on and never before, exactly as changing
    image j does; the clip gives the text R visual tokens, whatever its frame count."""
    n = int((ids == IMG).sum(1).max())
    assume(n > 0)
    j = j % n + 1
    m = video_model("perceiver")
    clips = torch.rand(ids.shape[0], n, FRAMES, 3, 16, 16, generator=torch.Generator().manual_seed(j))
    other = clips.clone()
    other[:, j - 1, frame] = torch.rand_like(other[:, j - 1, frame])
    with torch.no_grad():
        media = m.perceive(m.encode(clips))
        a = m(ids, images=clips)
        b = m(ids, images=other)
    assert media.shape == (ids.shape[0], n, TINY.latents, TINY.d_model)
    differs = (a - b).abs().amax(-1) > 1e-5
    p = phi(ids, IMG)
    assert not (differs & (p < j)).any() and differs[p == j].all()


def test_more_frames_than_temporal_embeddings_is_a_clear_error():
    m = video_model("perceiver", max_frames=2)
    ids = torch.tensor([[TOKENIZER.bos_id, IMG, 20]])
    with pytest.raises(ValueError, match="4 frames but only 2 temporal embeddings: raise model.max_frames"):
        m(ids, images=torch.rand(1, 1, 4, 3, 16, 16))


# --- the recipe and the evaluation -----------------------------------------------------------------------------------
def test_video_preset_trains_on_clips_and_is_evaluated_on_them():
    cfg = make_config("video")
    assert cfg.model.max_frames == FRAMES and "event" in cfg.data.text_mix
    assert "video" in datasets(cfg, 0) and "video" not in datasets(make_config("default"), 0)
    assert tasks_for(cfg.model, cfg.data) == TASKS + RICH_TASKS + VIDEO_TASKS
    assert tasks_for(make_config("default").model, cfg.data) == TASKS + RICH_TASKS
    assert tasks_for(replace(cfg.model, max_frames=2), cfg.data) == TASKS + RICH_TASKS   # too few temporal embeddings


@pytest.mark.parametrize("task", VIDEO_TASKS)
def test_video_episodes_are_held_out_and_order_sensitive(task):
    for seed in range(20):
        ep = make_episode(task, seed)
        clips = [x.scene for x in ep.pool] + [ep.query.scene]
        assert all(isinstance(c, Clip) for c in clips)
        assert {(o.colour, o.shape) for c in clips for f in c.frames for o in f.objects} <= set(EVAL_COMBOS)
        assert ep.query.answer in ep.candidates and len(set(ep.candidates)) == 4
        if task == "event":   # the clip played backwards is always a distractor: order is needed to be right
            assert reverse(ep.query.scene).caption in ep.candidates
        else:
            assert ep.query.chunk() == f"<image> moves {ep.query.answer} <EOC>"


def test_evaluate_runs_the_clip_tasks_and_refuses_them_to_a_stills_model():
    cfg = make_config("video")
    m = video_model("perceiver")
    result = evaluate(m, cfg.data, shots=("none", "2"), episodes=2, seed=0, tasks=VIDEO_TASKS, beams=1)
    assert set(result["tasks"]) == {f"{t}/{mode}" for t in VIDEO_TASKS for mode in ("open", "closed")}
    assert result["tasks"]["direction/closed"]["chance"] == 0.25
    with pytest.raises(EvalError, match="temporal embeddings for 1: evaluate it on infer"):
        evaluate(video_model("perceiver", max_frames=1), cfg.data, episodes=1, tasks=("event",))


def test_a_run_of_the_older_vocabulary_is_refused_not_misread(tiny_run, tmp_path):
    """The clips' words grew the vocabulary: a run trained before it would read every nonce id as another word."""
    saved = load_checkpoint(f"{tiny_run}/flamingo.pt")
    saved["config"]["model"]["vocab_size"] = len(TOKENIZER) - 8
    save_checkpoint(saved, str(tmp_path / "flamingo.pt"))
    with pytest.raises(CheckpointError, match="another vocabulary .*model.vocab_size=.*retrain it"):
        load_run(str(tmp_path))
