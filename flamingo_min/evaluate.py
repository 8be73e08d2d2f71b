"""Few-shot evaluation on held-out episodes (paper App. A.2 and B.1.5): accuracy against the number of shots.

For each task, shot count and episode: build the prompt (the supports' chunks, then the query's `<image>` and prefix),
then score it two ways:
- open-ended: generate with greedy or beam search until `<EOC>`; exact match (token F1 for captions);
- close-ended: rank the episode's candidates by the log-likelihood of their tokens after the prompt; accuracy.
Beside the model, three context-only baselines read the answers the same prompt shows (the most frequent, the last,
a uniform guess among the distinct ones), scored in the unit of the mode they stand beside.

Tasks: the still-image tasks, `bind` again in each other binding format (`bind-after`, ...: toy_data/formats.py), and
for a model with temporal embeddings for a clip's frames (the video preset) the clip tasks too (`tasks_for`;
toy_data/tasks.py lists them). A format that no training document used is held out: eval.json lists those tasks
under "held_out", and the table marks them with `*`.

Shot keys (toy_data.tasks.SHOTS): "none" is the query alone; "0" the paper's zero-shot (two text-only examples);
"k" is k image-text examples. Support selection: `random` (the episode's support_indices) or `rices` (the k pool
examples whose frozen, mean-pooled vision features are most similar to the query's, most similar last).

Speed: every image of an episode (pool and query) is rendered, encoded and resampled once; prompts for one (task,
shot) are left-padded into batches, and generation uses the KV cache.

eval.json: {"tasks": {"<task>/<mode>": {"chance": float, "baselines": {"majority" | "last" | "uniform":
{"<shot>": float}}, "shots": {"<shot>": float}, and for binding tasks "ideal": {"<shot>": float}}}, "held_out": [task,
...], "episodes": int, "seed": int}. `ideal` is toy_data.tasks.ideal_binding: what perfect perception and reasoning
would score on the same episodes.

Shapes: E episodes, P pool size, k shots, R latents, D width, Dv vision width.
"""
import zlib

import torch
import torch.nn.functional as F

from toy_data import TOKENIZER
from toy_data.clips import render_media
from toy_data.tasks import (ALL_TASKS, NO_CONTEXT, RICH_TASKS, SHOTS, TASKS, VIDEO_TASKS, baseline_answers,
                            binding, build_prompt, check_shots, ideal_binding, make_episode, score, shot_count)

from .config import fitting_shots
from .errors import EvalError

MODES = ("open", "closed")
SELECTIONS = ("random", "rices")
BASELINES = ("majority", "last", "uniform")


def rices(query_feat, pool_feats, k):
    """Indices of the k pool items most similar to the query (cosine), ordered so the most similar comes last."""
    sims = F.cosine_similarity(pool_feats, query_feat[None], dim=-1)                     # (P,)
    return sims.topk(k).indices.flip(0).tolist() if k else []


def left_pad(rows, pad_id=TOKENIZER.pad_id):
    """Token-id lists -> (B, T) left-padded ids: the padding is a document of its own (masking.document_starts), so
    each prompt reads as it would alone."""
    T = max(len(r) for r in rows)
    ids = torch.full((len(rows), T), pad_id, dtype=torch.long)
    for b, r in enumerate(rows):
        ids[b, T - len(r):] = torch.tensor(r)
    return ids


def rank_candidates(model, prompts, media, candidates):
    """Close-ended scores: for each prompt (token lists) the log-likelihood of each candidate (word strings) given
    its media (B, N, R, D). Returns a list of lists of floats. Candidates are scored on their own tokens."""
    cand_ids = [[TOKENIZER.encode(c) for c in cands] for cands in candidates]
    device = media.device
    if all(len(c) == 1 for cands in cand_ids for c in cands):
        # One token each: one forward over the prompts, then read the last position's log-probabilities.
        logp = F.log_softmax(model(left_pad(prompts).to(device), media=media)[:, -1].float(), -1)
        return [[logp[b, c[0]].item() for c in cands] for b, cands in enumerate(cand_ids)]
    rows, masks, owner = [], [], []
    for b, (p, cands) in enumerate(zip(prompts, cand_ids)):
        for c in cands:
            rows.append(p + c)
            masks.append([False] * len(p) + [True] * len(c))
            owner.append(b)
    T = max(len(r) for r in rows)
    ids = torch.tensor([r + [TOKENIZER.pad_id] * (T - len(r)) for r in rows], device=device)  # right padding
    target = torch.tensor([m + [False] * (T - len(m)) for m in masks], device=device)
    scores = model.sequence_logprob(ids, target, media=media[torch.tensor(owner, device=device)]).tolist()
    out, i = [], 0
    for cands in cand_ids:
        out.append(scores[i: i + len(cands)])
        i += len(cands)
    return out


# --- the steps of an evaluation --------------------------------------------------------------------------------------
def episodes_for(task, n, data_cfg, seed, pool_size=32):
    """n episodes of one task. They depend on (task, seed, index) alone, not on which other tasks run beside it; a
    binding format's are the `bind` episodes themselves, in that format."""
    family = "bind" if task in RICH_TASKS else task
    base = seed * 1_000_003 + zlib.crc32(family.encode()) % 65_521 * 10_007
    return [make_episode(task, base + j, data_cfg, pool_size) for j in range(n)]


def episode_images(ep, data_cfg, device=None):
    """Every picture of an episode, the pool's then the query's: (P+1, 3, H, W), or (P+1, F, 3, H, W) for clips, from
    the episode's own seed, drawn as the training streams draw theirs (toy_data/shapes.py: IMAGE_SIZE, NOISE,
    COLOUR_JITTER), on `device`."""
    return render_media([x.scene for x in ep.pool] + [ep.query.scene], generator=torch.Generator().manual_seed(ep.seed),
                        device=device)


@torch.no_grad()
def episode_media(model, episodes, data_cfg):
    """Render, encode and resample every episode's pool and query images once: media (E, P+1, R, D) with the query
    last, and mean-pooled frozen features (E, P+1, Dv) for RICES (a clip's: over its frames too)."""
    device = next(model.parameters()).device
    media, pooled = [], []
    for ep in episodes:
        feats = model.encode(episode_images(ep, data_cfg, device)[None])               # (1, P+1, [F,] S, Dv)
        media.append(model.perceive(feats)[0])
        pooled.append(feats[0].flatten(1, -2).mean(1))                               # (P+1, Dv)
    return torch.stack(media), torch.stack(pooled)


def prompt_for(ep, shot, selection="random", pooled=None):
    """One episode's prompt at one shot key: (token ids, media rows: the supports' own pool indices then the query's,
    the answers the prompt shows)."""
    k = shot_count(shot)
    idx = rices(pooled[-1], pooled[:-1], k) if selection == "rices" and k else ep.support_indices(k)
    support = [ep.pool[i] for i in idx]
    text, _ = build_prompt(support, ep.query, ep.text_examples if shot != NO_CONTEXT else ())
    return TOKENIZER.encode(text), idx + [len(ep.pool)], ep.context_answers(shot, support)


def baseline_scores(task, mode, answers, truth):
    """Each context-only baseline's score on one prompt, in the unit of `mode`."""
    b = baseline_answers(answers)
    uniform = b.pop("uniform")
    out = {name: score(task, a, truth, mode) for name, a in b.items()}
    out["uniform"] = sum(score(task, a, truth, mode) for a in uniform) / len(uniform) if uniform else 0.0
    return out


@torch.no_grad()
def answer(model, eps, chunk, shot, media, pooled, selection, beams):
    """The model's open and closed answers for a batch of episodes (indices `chunk`) at one shot key, and the answers
    each prompt shows."""
    prompts, m, shown = batch_prompts(eps, chunk, shot, media, pooled, selection)
    longest = max(len(TOKENIZER.encode(c)) for e in chunk for c in eps[e].candidates)
    generated = model.generate(left_pad(prompts).to(media.device), media=m, max_new_tokens=longest + 1,
                               num_beams=beams)
    opened = [until(TOKENIZER.decode(g), eps[e].query.tail) for e, g in zip(chunk, generated)]
    return opened, closed_answers(model, eps, chunk, prompts, m), shown


def batch_prompts(eps, chunk, shot, media, pooled, selection):
    """A batch's prompts (token lists), the media each reads (b, k+1, R, D) and the answers each shows."""
    prompts, rows, shown = zip(*(prompt_for(eps[e], shot, selection, pooled[e]) for e in chunk))
    device = media.device
    return list(prompts), media[torch.tensor(chunk, device=device)[:, None], torch.tensor(rows, device=device)], shown


def closed_answers(model, eps, chunk, prompts, media):
    """The close-ended answers: each episode's candidate of highest likelihood."""
    ranked = rank_candidates(model, prompts, media, [eps[e].candidates for e in chunk])
    return [eps[e].candidates[max(range(len(s)), key=s.__getitem__)] for e, s in zip(chunk, ranked)]


def until(text, tail):
    """An open-ended answer: the generated words before the format's words after the label (`tiv . where ?` -> `tiv`
    when the format goes on `. where ? ...`)."""
    words, stop = text.split(), tail.split()[:1]
    return " ".join(words[: words.index(stop[0])] if stop and stop[0] in words else words)


def tasks_for(model_cfg, data_cfg):
    """The tasks a model is evaluated on by default: the still-image tasks, binding in every other format, and the
    clip tasks when it has temporal embeddings for every frame of a clip."""
    stills = TASKS + RICH_TASKS
    return stills + VIDEO_TASKS if model_cfg.max_frames >= data_cfg.clip_frames else stills


def held_out(tasks, data_cfg):
    """The binding-format tasks whose format no training document used (data.bind_formats)."""
    return [t for t in tasks if t in RICH_TASKS and t.removeprefix("bind-") not in data_cfg.bind_formats]


def check_request(model, data_cfg, tasks, shots, episodes, beams, selection, batch_size):
    """The shot keys, checked; an EvalError that names the first thing that cannot run as asked."""
    if not tasks:
        raise EvalError(f"no task given: choose from {', '.join(ALL_TASKS)}")
    bad = [t for t in tasks if t not in ALL_TASKS]
    if bad:
        raise EvalError(f"unknown task {bad[0]!r}: choose from {', '.join(ALL_TASKS)}")
    video = [t for t in tasks if t in VIDEO_TASKS]
    if video and model.cfg.max_frames < data_cfg.clip_frames:
        raise EvalError(f"task {video[0]!r} shows clips of {data_cfg.clip_frames} frames, but this model has "
                        f"temporal embeddings for {model.cfg.max_frames}: evaluate it on {', '.join(TASKS)}, or "
                        "train one on clips (python main.py train --preset video)")
    try:
        shots = check_shots(shots)
    except ValueError as e:
        raise EvalError(str(e)) from None
    for name, v in (("episodes", episodes), ("beams", beams), ("batch size", batch_size)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise EvalError(f"{name} must be a whole number >= 1, got {v!r}")
    if selection not in SELECTIONS:
        raise EvalError(f"unknown support selection {selection!r}: choose random or rices")
    most, fit = max(map(shot_count, shots)), fitting_shots(model.cfg.context)
    if most > fit:
        raise EvalError(f"{most}-shot prompts may not fit the LM's context of {model.cfg.context} tokens: use at "
                        f"most {fit} shots")
    return shots


@torch.no_grad()
def evaluate(model, data_cfg, shots=SHOTS, episodes=200, seed=0, tasks=None, beams=3, selection="random",
             batch_size=100, progress=None):
    """Scores per task, mode and shot key, in eval.json's schema. tasks: default tasks_for(model.cfg, data_cfg).
    progress: a callable(str) or None."""
    tasks = tasks_for(model.cfg, data_cfg) if tasks is None else tasks
    shots = check_request(model, data_cfg, tasks, shots, episodes, beams, selection, batch_size)
    model.eval()
    results = {}
    for task in tasks:
        eps = episodes_for(task, episodes, data_cfg, seed, max(32, *map(shot_count, shots)))
        media, pooled = episode_media(model, eps, data_cfg)
        model_scores = {m: {s: [] for s in shots} for m in MODES}
        base_scores = {m: {n: {s: [] for s in shots} for n in BASELINES} for m in MODES}
        for shot in shots:
            for lo in range(0, episodes, batch_size):
                chunk = list(range(lo, min(episodes, lo + batch_size)))
                opened, closed, shown = answer(model, eps, chunk, shot, media, pooled, selection, beams)
                for e, o, c, ans in zip(chunk, opened, closed, shown):
                    truth = eps[e].query.answer
                    for mode, guess in (("open", o), ("closed", c)):
                        model_scores[mode][shot].append(score(task, guess, truth, mode))
                        for name, v in baseline_scores(task, mode, ans, truth).items():
                            base_scores[mode][name][shot].append(v)
            if progress:
                progress(f"{task} {shot_label(shot)}: open {mean(model_scores['open'][shot]):.2f} "
                         f"closed {mean(model_scores['closed'][shot]):.2f}")
        chance = mean([ep.chance for ep in eps])
        for mode in MODES:
            results[f"{task}/{mode}"] = {
                "chance": chance,
                "baselines": {n: {s: mean(v) for s, v in per.items()} for n, per in base_scores[mode].items()},
                "shots": {s: mean(v) for s, v in model_scores[mode].items()}}
            if binding(task):   # the ceiling that perfect perception and reasoning would reach on these episodes
                results[f"{task}/{mode}"]["ideal"] = {
                    s: mean([ideal_binding(ep, s, data_cfg.bind_attributes) for ep in eps]) for s in shots}
    return {"tasks": results, "held_out": held_out(tasks, data_cfg), "episodes": episodes, "seed": seed}


def shot_label(shot):
    return shot if shot == NO_CONTEXT else f"{shot}-shot"


def mean(xs):
    return sum(xs) / max(1, len(xs))
