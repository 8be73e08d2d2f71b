"""Few-shot evaluation on held-out episodes (paper App. A.2 and B.1.5): accuracy against the number of shots.

For each task, shot count k and episode: build the prompt (k support chunks, then the query's `<image>` and prefix;
at k = 0 two text-only examples and no support image, as the paper does zero-shot), then score it two ways:
- open-ended: generate with greedy or beam search until `<EOC>`; exact match (token F1 for captions);
- close-ended: rank the episode's candidates by the log-likelihood of their tokens after the prompt.

Support selection: `random` (the first k of the episode's shuffled pool) or `rices` (the k pool examples whose frozen
vision features are most similar to the query's, most similar last).

Speed: every image of an episode (pool and query) is rendered, encoded and resampled once; prompts for one (task, k)
are left-padded into one batch, and generation uses the KV cache.

Shapes: E episodes, P pool size, k shots, R latents, D width, Dv vision width.
"""
import torch
import torch.nn.functional as F

from toy_data import TOKENIZER, render
from toy_data.tasks import SHOTS, TASKS, build_prompt, make_episode, score

MODES = ("open", "closed")


def rices(query_feat, pool_feats, k):
    """Indices of the k pool items most similar to the query (cosine), ordered so the most similar comes last."""
    sims = F.cosine_similarity(pool_feats, query_feat[None], dim=-1)                     # (P,)
    return sims.topk(k).indices.flip(0).tolist() if k else []


def left_pad(rows, pad_id=TOKENIZER.pad_id):
    """Token-id lists -> (B, T) left-padded ids and the valid mask."""
    T = max(len(r) for r in rows)
    ids = torch.full((len(rows), T), pad_id, dtype=torch.long)
    for b, r in enumerate(rows):
        ids[b, T - len(r):] = torch.tensor(r)
    return ids, ids != pad_id


def rank_candidates(model, prompts, media, candidates):
    """Close-ended scores: for each prompt (token lists) the log-likelihood of each candidate (word strings) given
    its media (B, N, R, D). Returns a list of lists of floats. Candidates are scored on their own tokens."""
    cand_ids = [[TOKENIZER.encode(c) for c in cands] for cands in candidates]
    device = media.device
    if all(len(c) == 1 for cands in cand_ids for c in cands):
        # One token each: one forward over the prompts, then read the last position's log-probabilities.
        ids, valid = left_pad(prompts)
        logp = F.log_softmax(model(ids.to(device), media=media, valid=valid.to(device))[:, -1].float(), -1)
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


@torch.no_grad()
def episode_media(model, episodes, image_size, seed):
    """Render, encode and resample every episode's pool and query images once: media (E, P+1, R, D) with the query
    last, and mean-pooled frozen features (E, P+1, Dv) for RICES."""
    device = next(model.parameters()).device
    media, pooled = [], []
    for e, ep in enumerate(episodes):
        g = torch.Generator().manual_seed(seed * 7919 + e)
        images = render([x.scene for x in ep.pool] + [ep.query.scene], image_size, g)   # (P+1, 3, H, W)
        feats = model.encode(images[None].to(device))                                       # (1, P+1, S, Dv)
        media.append(model.perceive(feats)[0])
        pooled.append(feats[0].mean(1))
    return torch.stack(media), torch.stack(pooled)


@torch.no_grad()
def evaluate(model, data_cfg, shots=SHOTS, episodes=100, seed=0, tasks=TASKS, beams=3, selection="random",
             batch_size=50, progress=None):
    """Accuracy per task, mode and shot count, in eval.json's schema. progress: a callable(str) or None."""
    bad = [t for t in tasks if t not in TASKS]
    if bad:
        raise ValueError(f"unknown task {bad[0]!r}: choose from {', '.join(TASKS)}")
    if selection not in ("random", "rices"):
        raise ValueError(f"unknown support selection {selection!r}: choose random or rices")
    pool_size = max(32, max(shots))
    model.eval()
    results = {}
    for task in tasks:
        ti = TASKS.index(task)  # episodes depend on the task, not on which other tasks are evaluated with it
        eps = [make_episode(task, seed * 1_000_003 + ti * 10_007 + j, ways=data_cfg.ways, pool_size=pool_size,
                            bind_attributes=data_cfg.bind_attributes, infer_attributes=data_cfg.infer_attributes)
               for j in range(episodes)]
        media, pooled = episode_media(model, eps, data_cfg.image_size, seed + ti)
        acc = {m: {} for m in MODES}
        base_k = 4 if 4 in shots else max(shots)
        baselines = {}
        for k in shots:
            for lo in range(0, episodes, batch_size):
                chunk = range(lo, min(episodes, lo + batch_size))
                prompts, picks, truths, supports = [], [], [], []
                for e in chunk:
                    ep = eps[e]
                    if selection == "rices" and k:
                        idx = rices(pooled[e, -1], pooled[e, :-1], k)
                        support = [ep.pool[i] for i in idx]
                    else:
                        support = ep.support(k)
                        idx = [ep.pool.index(s) for s in support]
                    text, _ = build_prompt(support, ep.query, ep.text_examples)
                    prompts.append(TOKENIZER.encode(text))
                    supports.append(support)
                    picks.append(idx + [len(ep.pool)])                       # media rows: supports, then the query
                    truths.append(ep.query.answer)
                rows = torch.tensor(picks, device=media.device)              # (b, k+1)
                m = media[torch.tensor(list(chunk), device=media.device)[:, None], rows]   # (b, k+1, R, D)
                ids, valid = left_pad(prompts)
                longest = max(len(TOKENIZER.encode(c)) for e in chunk for c in eps[e].candidates)
                out = model.generate(ids.to(m.device), media=m, valid=valid.to(m.device),
                                     max_new_tokens=longest + 1, num_beams=beams)
                for e, o, truth in zip(chunk, out, truths):
                    acc["open"].setdefault(k, []).append(score(task, TOKENIZER.decode(o), truth))
                ranked = rank_candidates(model, prompts, m, [eps[e].candidates for e in chunk])
                for e, s, truth in zip(chunk, ranked, truths):
                    best = eps[e].candidates[max(range(len(s)), key=s.__getitem__)]
                    acc["closed"].setdefault(k, []).append(float(best == truth))
                if k == base_k:
                    for e, truth, support in zip(chunk, truths, supports):
                        for name, answer in eps[e].baselines(k, support).items():
                            baselines.setdefault(name, []).append(score(task, answer, truth))
            if progress:
                progress(f"{task} {k}-shot: open {_mean(acc['open'][k]):.2f} closed {_mean(acc['closed'][k]):.2f}")
        chance = sum(ep.chance for ep in eps) / len(eps)
        for mode in MODES:
            results[f"{task}/{mode}"] = {"chance": chance,
                                         "baselines": {n: _mean(v) for n, v in baselines.items()},
                                         "shots": {str(k): _mean(v) for k, v in acc[mode].items()}}
    return {"tasks": results, "episodes": episodes, "seed": seed}


def _mean(xs):
    return sum(xs) / max(1, len(xs))


def table(result):
    """eval.json as a text table: one row per task/mode, a column per shot count."""
    tasks = result["tasks"]
    shots = list(next(iter(tasks.values()))["shots"])
    head = f"{'task/mode':<16}{'chance':>8}{'major.':>8}{'last':>8}" + "".join(f"{k + '-shot':>9}" for k in shots)
    lines = [head, "-" * len(head)]
    for name, r in tasks.items():
        b = r["baselines"]
        lines.append(f"{name:<16}{r['chance']:>8.2f}{b.get('majority', 0):>8.2f}{b.get('last', 0):>8.2f}"
                     + "".join(f"{r['shots'][k]:>9.2f}" for k in shots))
    lines.append(f"({result['episodes']} episodes per task and shot count, seed {result['seed']}; baselines at "
                 "4 shots; caption/open is token F1, everything else accuracy)")
    return "\n".join(lines)


@torch.no_grad()
def lm_binding_accuracy(lm, pairs=8, ways=3, episodes=200, seed=0, labels=None):
    """Text-only binding, the skill stage `lm` must reach before it sees an image: `red tiv . blue vop . red` ->
    `tiv`, with the evaluation nonce words. Accuracy of the argmax over the whole vocabulary (open-ended)."""
    import random

    from toy_data import EVAL_NONCE
    from toy_data.documents import ATTRIBUTES, VALUES
    rng = random.Random(seed)
    labels = labels or EVAL_NONCE
    rows, truths = [], []
    for _ in range(episodes):
        keys = rng.sample(VALUES[rng.choice(ATTRIBUTES[:2])], ways)
        names = rng.sample(labels, ways)
        picks = [rng.randrange(ways) for _ in range(pairs)]
        query = rng.choice(picks)
        text = " ".join(["<bos>"] + [f"{keys[p]} {names[p]} ." for p in picks] + [keys[query]])
        rows.append(TOKENIZER.encode(text))
        truths.append(TOKENIZER.ids[names[query]])
    ids = torch.tensor(rows, device=next(lm.parameters()).device)
    guess = lm(ids)[:, -1].argmax(-1)
    return (guess == torch.tensor(truths, device=ids.device)).float().mean().item()
