"""flamingo-min's command line. `python main.py --help` lists the commands; `python main.py CMD --help` explains one."""
import argparse
import json
import os
import sys
import time


def pick_device(name):
    import torch
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise SystemExit("error: --device cuda but no CUDA GPU is visible; use --device cpu or auto")
    if name == "mps" and not torch.backends.mps.is_available():
        raise SystemExit("error: --device mps but MPS is not available; use --device cpu or auto")
    return torch.device(name)


def parse_shots(text):
    try:
        shots = tuple(sorted({int(s) for s in text.split(",") if s.strip()}))
    except ValueError:
        raise SystemExit(f"error: --shots {text!r}: give whole numbers separated by commas, e.g. 0,1,2,4,8,16")
    if not shots or min(shots) < 0:
        raise SystemExit(f"error: --shots {text!r}: give shot counts >= 0, e.g. 0,1,2,4,8,16")
    return shots


def check_shots_fit(shots, cfg):
    from toy_data.documents import LONGEST_CHUNK
    need = 1 + (max(shots) + 1) * LONGEST_CHUNK
    if need > cfg.model.context:
        fit = (cfg.model.context - 1) // LONGEST_CHUNK - 1
        raise SystemExit(f"error: {max(shots)}-shot prompts need up to {need} tokens but the LM's context is "
                         f"{cfg.model.context}: use at most {fit} shots")


def run_eval(model, cfg, run, shots, episodes, seed, tasks, beams, selection, device, quiet=False):
    from flamingo_min import evaluate, plots
    from flamingo_min.train import atomic_text
    check_shots_fit(shots, cfg)
    t0 = time.perf_counter()
    say = None if quiet else (lambda s: print(f"  eval {s}", file=sys.stderr))
    result = evaluate.evaluate(model, cfg.data, shots, episodes, seed, tasks, beams, selection, progress=say)
    atomic_text(json.dumps(result, indent=1), os.path.join(run, "eval.json"))
    plots.fewshot(result, os.path.join(run, "fewshot.png"))
    return result, time.perf_counter() - t0


def cmd_train(a):
    from flamingo_min import plots
    from flamingo_min.config import make_config, to_dict
    from flamingo_min.evaluate import table
    from flamingo_min.train import STAGES, atomic_text, load_run, read_metrics, run_stage
    try:
        cfg = make_config(a.preset, a.set)
    except ValueError as e:
        raise SystemExit(f"error: {e}")
    out = a.out or os.path.join("runs", a.preset)
    device = pick_device(a.device)
    check_shots_fit(cfg.train.eval_shots, cfg)
    os.makedirs(out, exist_ok=True)
    atomic_text(json.dumps(to_dict(cfg), indent=1), os.path.join(out, "config.json"))
    print(f"run folder {out}: preset {a.preset}, seed {a.seed}, device {device}", file=sys.stderr)
    times, losses = {}, {}
    for stage in [a.stage] if a.stage else STAGES:
        ckpt = run_stage(out, stage, cfg, a.seed, device)
        times[stage] = ckpt["elapsed"]
        last = [m for m in read_metrics(out) if m["stage"] == stage]
        losses[stage] = last[-1]["loss"] if last else float("nan")
    metrics = read_metrics(out)
    plots.losses(metrics, os.path.join(out, "losses.png"))
    if any(m["stage"] == "flamingo" for m in metrics):
        plots.gates(metrics, os.path.join(out, "gates.png"))
    print("\nsummary")
    for stage in times:
        print(f"  {stage:<9} {times[stage]:7.1f} s   final loss {losses[stage]:.3f}")
    if "lm" in times:
        from flamingo_min.evaluate import lm_binding_accuracy
        from flamingo_min.lm import LM
        from flamingo_min.train import ckpt_path, load_checkpoint
        from toy_data import TOKENIZER
        m = cfg.model
        lm = LM(len(TOKENIZER), m.d_model, m.n_layers, m.n_heads, m.context)
        lm.load_state_dict(load_checkpoint(ckpt_path(out, "lm"))["model"])
        accs = {p: lm_binding_accuracy(lm.eval(), pairs=p) for p in (1, 8, 32)}
        print("  the LM's text-only binding (3-way, evaluation nonce words), by pairs in context: "
              + ", ".join(f"{p}: {a:.0%}" for p, a in accs.items()))
    if a.stage in (None, "flamingo") and not a.no_eval:
        model, cfg = load_run(out, device)
        result, secs = run_eval(model, cfg, out, cfg.train.eval_shots, cfg.train.eval_episodes, a.seed,
                                ("infer", "bind", "question", "caption", "count"), 3, "random", device)
        print(f"  eval      {secs:7.1f} s\n\n{table(result)}")
    print(f"\nfiles in {out}: " + ", ".join(sorted(f for f in os.listdir(out) if not f.endswith(".tmp"))))


def cmd_eval(a):
    from flamingo_min.evaluate import table
    from flamingo_min.train import load_run
    device = pick_device(a.device)
    model, cfg = load_run(a.run, device)
    tasks = tuple(t.strip() for t in a.tasks.split(",") if t.strip())
    try:
        result, secs = run_eval(model, cfg, a.run, parse_shots(a.shots), a.episodes, a.seed, tasks, a.beams,
                                a.selection, device, quiet=a.json)
    except ValueError as e:
        raise SystemExit(f"error: {e}")
    if a.json:
        print(json.dumps(result, indent=1))
    else:
        print(table(result) + f"\n{secs:.1f} s; written {a.run}/eval.json and {a.run}/fewshot.png")


def cmd_sample(a):
    import torch
    from flamingo_min import plots
    from flamingo_min.evaluate import left_pad
    from flamingo_min.train import load_run
    from toy_data import TOKENIZER, build_prompt, make_episode, render
    from toy_data.tasks import TASKS
    if a.task not in TASKS:
        raise SystemExit(f"error: unknown task {a.task!r}: choose from {', '.join(TASKS)}")
    model, cfg = load_run(a.run, pick_device(a.device))
    check_shots_fit((a.shots,), cfg)
    device = next(model.parameters()).device
    rows = []
    for j in range(a.n):
        ep = make_episode(a.task, 10_000 + a.seed * 100 + j, ways=cfg.data.ways, pool_size=max(32, a.shots))
        support = ep.support(a.shots)
        text, scenes = build_prompt(support, ep.query, ep.text_examples)
        images = render(scenes, cfg.data.image_size, torch.Generator().manual_seed(j))
        ids, valid = left_pad([TOKENIZER.encode(text)])
        out = model.generate(ids.to(device), images=images[None].to(device), valid=valid.to(device),
                             max_new_tokens=10, num_beams=3)
        texts = [e.chunk().replace("<image> ", "").replace(" <EOC>", "") for e in support]
        rows.append((images[:-1], [t.replace(" at ", "\n") for t in texts], images[-1],
                     TOKENIZER.decode(out[0]), ep.query.answer))
    path = a.out or os.path.join(a.run, f"samples_{a.task}.png")
    plots.episodes(rows, path)
    for imgs, texts, _, answer, truth in rows:
        print(f"{' | '.join(t.replace(chr(10), ' ') for t in texts)} | query -> {answer!r} "
              f"({'right' if answer == truth else 'wrong, truth ' + repr(truth)})")
    print(f"written {path}")


def cmd_data(a):
    import random

    import torch
    from flamingo_min import plots
    from toy_data import TOKENIZER, DataConfig, DocumentStream, render
    from toy_data.documents import caption, draw_scene
    cfg = DataConfig()
    rng = random.Random(a.seed)
    scenes = [draw_scene(rng, count=1 if i < 24 else rng.randint(2, 4)) for i in range(32)]
    images = render(scenes, cfg.image_size, torch.Generator().manual_seed(a.seed))
    docs = DocumentStream(cfg, a.seed)
    doc = next(docs[i] for i in range(100) if len(docs[i].images) >= 4)
    words = TOKENIZER.decode(doc.tokens).split()
    chunks, cur = [], []
    for w in words[1:]:
        cur.append(w)
        if w == "<EOC>":
            chunks.append(" ".join(cur[1:-1]))
            cur = []
    os.makedirs(os.path.dirname(a.out) or ".", exist_ok=True)
    plots.world(images, [caption(s) for s in scenes], doc.images, chunks, a.out)
    print(f"an interleaved document (task {doc.task}):\n  {TOKENIZER.decode(doc.tokens)}\n  ids {doc.tokens.tolist()}")
    print(f"scored targets: {' '.join(w for w, m in zip(words, doc.loss_mask.tolist()) if m)}")
    print(f"written {a.out}")


def cmd_check(a):
    from lessons.exercises import EXERCISES, status
    from lessons.exercises.hints import HINTS
    if a.exercise and a.exercise not in EXERCISES:
        raise SystemExit(f"error: unknown exercise {a.exercise!r}: choose from {', '.join(EXERCISES)}")
    if a.exercise and a.hint:
        print(f"hint for {a.exercise}: {HINTS[a.exercise]}")
    names = [a.exercise] if a.exercise else EXERCISES
    results = {n: status(n) for n in names}
    marks = {"done": "done", "failing": "FAILING", "not started": "not started"}
    print(f"{'exercise':<22}{'status':<13}message")
    for n, (state, msg) in results.items():
        print(f"{n:<22}{marks[state]:<13}{msg.splitlines()[0] if msg else ''}")
        for line in msg.splitlines()[1:]:
            print(" " * 35 + line)
    done = sum(s == "done" for s, _ in results.values())
    print(f"\n{done}/{len(results)} done. Edit lessons/exercises/student.py; "
          "`python main.py check NAME --hint` for a hint.")
    if done < len(results):
        raise SystemExit(1)


def cmd_bench(a):
    from flamingo_min import bench
    from flamingo_min.train import atomic_text
    device = pick_device(a.device)
    say = (lambda s: None) if a.json else (lambda s: print(f"  {s}", file=sys.stderr))
    result = bench.run(device, repeats=a.repeats, quick=a.quick, progress=say)
    os.makedirs(a.out, exist_ok=True)
    atomic_text(json.dumps(result, indent=1), os.path.join(a.out, "bench.json"))
    bench.plot(result, os.path.join(a.out, "bench.png"))
    print(json.dumps(result, indent=1) if a.json else bench.table(result) +
          f"\nwritten {a.out}/bench.json and {a.out}/bench.png")


def main(argv=None):
    p = argparse.ArgumentParser(prog="main.py", description="flamingo-min: Flamingo (Alayrac et al., 2022) at toy "
                                "scale. Train the paper's three-stage recipe, evaluate few-shot learning, look inside.")
    sub = p.add_subparsers(dest="cmd", required=True, metavar="COMMAND")

    t = sub.add_parser("train", help="pretrain the LM, the vision encoder, then the bridge; then evaluate",
                       description="Runs every stage with no finished checkpoint in the run folder (lm: text-only "
                       "LM pretraining; vision: contrastive encoder pretraining; flamingo: freeze both and train the "
                       "resampler and gated cross-attention), then the few-shot evaluation. A killed run resumes from "
                       "its last checkpoint when you rerun the same command.")
    t.add_argument("--preset", default="default", choices=["quick", "default", "large"],
                   help="quick: ~2 min on 2 CPU cores; default: ~10 min, the reference run; large: one GPU")
    t.add_argument("--out", help="run folder (default runs/PRESET)")
    t.add_argument("--seed", type=int, default=0, help="fixes data, initialisation and evaluation (default 0)")
    t.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a setting, e.g. --set train.flamingo_steps=300 --set data.ways=4 (repeatable)")
    t.add_argument("--stage", choices=["lm", "vision", "flamingo"], help="run only this stage")
    t.add_argument("--no-eval", action="store_true", help="skip the evaluation at the end")
    t.set_defaults(fn=cmd_train)

    e = sub.add_parser("eval", help="few-shot evaluation of a trained run",
                       description="Accuracy against shots on held-out episodes; writes eval.json and fewshot.png.")
    e.add_argument("--run", required=True, help="a run folder with a finished flamingo stage")
    e.add_argument("--shots", default="0,1,2,4,8,16", help="comma-separated shot counts (default 0,1,2,4,8,16)")
    e.add_argument("--episodes", type=int, default=100, help="episodes per task and shot count (default 100)")
    e.add_argument("--tasks", default="infer,bind,question,caption,count", help="comma-separated tasks")
    e.add_argument("--beams", type=int, default=3, help="beam width for open-ended answers (1 = greedy; paper: 3)")
    e.add_argument("--selection", default="random", choices=["random", "rices"], help="support selection")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    e.add_argument("--json", action="store_true", help="print eval.json instead of the table")
    e.set_defaults(fn=cmd_eval)

    s = sub.add_parser("sample", help="a picture of a few episodes and the model's answers")
    s.add_argument("--run", required=True)
    s.add_argument("--task", default="bind", help="infer, bind, question, caption or count (default bind)")
    s.add_argument("--shots", type=int, default=4)
    s.add_argument("--n", type=int, default=4, help="how many episodes")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", help="PNG path (default RUN/samples_TASK.png)")
    s.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    s.set_defaults(fn=cmd_sample)

    d = sub.add_parser("data", help="a picture of the toy world and one interleaved document")
    d.add_argument("--out", default="runs/world.png")
    d.add_argument("--seed", type=int, default=0)
    d.set_defaults(fn=cmd_data)

    c = sub.add_parser("check", help="check your exercise solutions (lessons/exercises/student.py)",
                       description="Runs each exercise's checks against lessons/exercises/student.py and prints a "
                       "progress table: done, failing (with the reason) or not started.")
    c.add_argument("exercise", nargs="?", help="one exercise (default: all)")
    c.add_argument("--hint", action="store_true", help="show a hint for the exercise")
    c.set_defaults(fn=cmd_check)

    b = sub.add_parser("bench", help="speed, memory and scaling, with flamingo-pytorch side by side if installed",
                       description="Training-step throughput (ours and flamingo-pytorch 0.1.2's modules at equal "
                       "dimensions), scaling with resolution, images and text length, utilisation against measured "
                       "matmul throughput, and k-shot inference latency with and without the KV cache.")
    b.add_argument("--out", default="runs/bench", help="folder for bench.json and bench.png")
    b.add_argument("--repeats", type=int, default=7, help="timed repeats per measurement (median)")
    b.add_argument("--quick", action="store_true", help="fewer scaling points (for tests)")
    b.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    b.add_argument("--json", action="store_true", help="print bench.json instead of the table")
    b.set_defaults(fn=cmd_bench)

    a = p.parse_args(argv)
    a.fn(a)


if __name__ == "__main__":
    main()
