"""flamingo-min's command line. `python main.py --help` lists the commands; `python main.py CMD --help` explains one.

Only this file turns the project's own errors (flamingo_min.errors) into a one-line `error:` message and an exit
status of 1; argparse answers bad flags with status 2. Any other exception is a bug and keeps its traceback.
"""
import argparse
import functools
import json
import math
import os
import sys
import textwrap
import time

# Idle OpenMP threads sleep soon, so that two jobs share a small machine; set before torch loads OpenMP, unless the
# environment chose already (docs/performance.md: two jobs on one machine).
if "OMP_WAIT_POLICY" not in os.environ:
    os.environ.setdefault("GOMP_SPINCOUNT", "1000")


# --- flag types: a bad value is refused by argparse, with its name, before any work ----------------------------------
def whole(lo):
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < lo:
            raise argparse.ArgumentTypeError(f"{value} is too small: give {lo} or more")
        return value
    parse.__name__ = f"whole number >= {lo}"
    return parse


def shown(value):
    """A setting as --set takes it: lists comma-separated."""
    return ",".join(map(str, value)) if isinstance(value, tuple) else str(value)


def pick_device(name):
    import torch
    from flamingo_min.errors import FlamingoError
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise FlamingoError("--device cuda but no CUDA GPU is visible; use --device cpu or auto")
    if name == "mps" and not torch.backends.mps.is_available():
        raise FlamingoError("--device mps but MPS is not available; use --device cpu or auto")
    if name == "cuda":
        # fp32 everywhere, its matrix products in TF32: as fast as bf16 at this width (bench). And attention never on
        # cuDNN's kernel, whose backward returns NaN where a mask is given and every score of a row underflows
        # (docs/performance.md): flash, memory-efficient or plain attention instead, at the same speed here.
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        torch.backends.cuda.enable_cudnn_sdp(False)
    return torch.device(name)


def listed(text):
    return tuple(t.strip() for t in text.split(",") if t.strip())


# --- the commands ----------------------------------------------------------------------------------------------------
def cmd_train(args):
    from flamingo_min import distributed as dist
    from flamingo_min.config import make_config
    from flamingo_min.errors import ConfigError
    from flamingo_min.runs import stage_done, stages, start_run
    from flamingo_min.train import run_stage
    cfg = make_config(args.preset, args.set)
    if args.stage and args.stage not in stages(cfg):
        raise ConfigError(f"--stage {args.stage}: this configuration has no {args.stage} stage (train.lm_mode="
                          f"{cfg.train.lm_mode}, train.vision_mode={cfg.train.vision_mode})")
    out = args.out or os.path.join("runs", args.preset)
    # Under torchrun: join the other processes (each its own GPU, or gloo on the CPU); rank 0 alone writes.
    device = dist.setup(pick_device(args.device))
    writes = dist.is_main()   # rank 0 under torchrun; the one process otherwise
    try:
        dist.check_batches(cfg)
        start_run(out, cfg, write=writes)   # every process checks the folder: all stop alike on an error
        if writes:
            print(f"run folder {out}: preset {args.preset}, seed {args.seed}, device {device}" +
                  (f", {dist.world()} processes" if dist.world() > 1 else ""), file=sys.stderr)
        dist.barrier()
        todo = [args.stage] if args.stage else stages(cfg)
        for stage in todo:
            if writes and stage_done(out, stage):
                print(f"{stage}: finished in {out} already, reused (a new --out trains afresh)", file=sys.stderr)
        # Watched every 100 steps: the LM's copying in text, the bridge's binding with pictures.
        from flamingo_min.lab.probes import binding, copying
        watch = {"lm": copying, "flamingo": binding(cfg.data) if "flamingo" in todo else None}
        times = {stage: run_stage(out, stage, cfg, args.seed, device, probe=watch.get(stage))["elapsed"]
                 for stage in todo}
    finally:
        dist.teardown()
    if not writes:
        return 0
    finish_run(args, out, cfg, times, device)


def finish_run(args, out, cfg, times, device):
    """The summary, plots and evaluation of a trained run (one process: under torchrun, rank 0 after the others)."""
    from flamingo_min.checkpoints import atomic_write, load_checkpoint
    from flamingo_min.evaluate import evaluate
    from flamingo_min.lab import plots, probes, report, routes
    from flamingo_min.lab.repeats import binding_episodes
    from flamingo_min.runs import ckpt_path, load_lm, load_run, read_metrics
    metrics, losses = read_metrics(out), {}
    for stage in times:
        last = [m for m in metrics if m["stage"] == stage]
        # A checkpoint copied in from another folder brings no log lines: its own record of the loss, where it has one.
        losses[stage] = last[-1]["loss"] if last else load_checkpoint(ckpt_path(out, stage)).get("loss", float("nan"))
    atomic_write(os.path.join(out, "losses.png"), plots.losses(metrics))
    if any(m["stage"] == "flamingo" and "xattn0" in m for m in metrics):  # gated layers only
        atomic_write(os.path.join(out, "gates.png"), plots.gates(metrics))
    print("\nsummary")
    for stage in times:
        loss = f"{losses[stage]:.3f}" if math.isfinite(losses[stage]) else "not recorded (a checkpoint of older code)"
        print(f"  {stage:<9} {times[stage]:7.1f} s   final loss {loss}")
    if "lm" in times:
        lm = load_lm(out, cfg)
        print("  the LM's text-only binding (3-way, evaluation nonce words), by pairs in context: " + ", ".join(
            f"{p}: {probes.lm_binding_accuracy(lm, pairs=p):.0%}" for p in (1, 8, 32)) + "; concept binding "
            "(`red circle tiv .`), by shots: " + ", ".join(
            f"{k}: {probes.lm_concept_accuracy(lm, shots=k):.0%}" for k in (2, 4, 16)) + "; with lures (each "
            "other label's example shares the query's other word), by shots: " + ", ".join(
            f"{k}: {probes.lm_concept_accuracy(lm, shots=k, lures=True):.0%}" for k in (4, 16)))
        copied = probes.watched(metrics)
        if copied:
            print(f"  the LM's copying (4-shot concept binding, watched every 100 steps) appeared at step "
                  f"{copied['onset']}" if copied["onset"] is not None else "  the LM's copying never appeared: "
                  "retrain it longer (--set train.lm_steps=2500) or with another seed; docs/incontext.md")
            if copied.get("parts"):
                print("  where the labels name " + ", where they name ".join(
                    f"the {a}: at step {r['onset']}" if r["onset"] is not None else
                    f"the {a}: never (it read {r['curve'][-1][1]:.2f} at the last step)"
                    for a, r in copied["parts"].items()) + " (docs/incontext.md: two words, two kinds of head)")
            atomic_write(os.path.join(out, "copying.png"), plots.copying({"seeds": {str(args.seed): copied}}))
        found = {"induction": probes.induction_scores(lm), "plain": probes.label_attention(lm, "plain", 16),
                 **{f"plain, {a} bound": probes.label_attention(lm, "plain", 16, 200, bound=a)
                    for a in ("colour", "shape")}}
        atomic_write(os.path.join(out, "heads.png"), plots.heads(found))
        print("  " + probes.describe_heads(found))
    bound = probes.watched(metrics, "flamingo", "bind") if "flamingo" in times else None
    if bound:
        said = "  the bridge's binding (4-shot, close-ended, watched every 100 steps)"
        print(f"{said} reached {probes.ONSET:.2f} at step {bound['onset']}" if bound["onset"] is not None else
              f"{said} never reached {probes.ONSET:.2f}: it read {bound['curve'][-1][1]:.2f} at its last step; "
              "docs/incontext.md says when a bridge fails to bind")
        atomic_write(os.path.join(out, "binding.png"), plots.copying({"seeds": {str(args.seed): bound}}, "flamingo"))
    if args.stage in (None, "flamingo") and not args.no_eval:
        model, cfg = load_run(out, device)
        started = time.perf_counter()
        result = evaluate(model, cfg.data, cfg.train.eval_shots, cfg.train.eval_episodes, args.seed,
                          progress=lambda s: print(f"  eval {s}", file=sys.stderr))
        secs = time.perf_counter() - started
        report.write_report([result], out)
        print(f"  eval      {secs:7.1f} s\n\n{report.table(result)}")
        _, eps, media, pooled = binding_episodes(model, cfg.data, "bind", ("4",), cfg.train.eval_episodes, args.seed)
        heads = probes.strongest_heads(*routes.label_heads(model, eps, "4", media, pooled))
        print("\nthe LM heads the bridge binds through (4 shots, the answer's attention on the matching labels vs the "
              f"other labels): {heads}; which gated layers feed them: python main.py routes --run {out}")
        if args.preset == "quick":
            print("\nquick trains each stage for too few steps to learn much: scores near chance show that every stage "
                  "and the evaluation run, not what the recipe learns (`make train` for that)")
    print(f"\nfiles in {out}: " + ", ".join(sorted(f for f in os.listdir(out) if not f.endswith(".tmp"))))


def cmd_eval(args):
    from flamingo_min.evaluate import evaluate
    from flamingo_min.lab import report
    from flamingo_min.runs import load_run
    model, cfg = load_run(args.run, pick_device(args.device))
    say = None if args.json else (lambda s: print(f"  eval {s}", file=sys.stderr))
    tasks = listed(args.tasks) if args.tasks else None
    started = time.perf_counter()
    result = evaluate(model, cfg.data, listed(args.shots), args.episodes, args.seed, tasks, args.beams,
                      args.selection, progress=say)
    secs = time.perf_counter() - started
    written = report.write_report([result], args.run)
    print(json.dumps(result, indent=1) if args.json else
          report.table(result) + f"\n{secs:.1f} s; written {' and '.join(written)}")


def read_into_run(name, args):
    """A lab reading of a trained run's binding (lab/repeats.py, lab/routes.py): its table printed, its JSON and
    picture written in the run folder as NAME_TASK.json and NAME_TASK.png."""
    import importlib

    from flamingo_min.checkpoints import atomic_write, check_writable
    from flamingo_min.lab import plots
    from flamingo_min.runs import load_run
    lab = importlib.import_module(f"flamingo_min.lab.{name}")
    model, cfg = load_run(args.run, pick_device(args.device))
    paths = [os.path.join(args.run, f"{name}_{args.task}.{ext}") for ext in ("json", "png")]
    for path in paths:
        check_writable(path)
    result = lab.read(model, cfg.data, args.task, listed(args.shots), args.episodes, args.seed,
                      progress=lambda s: print(f"  {name} {s}", file=sys.stderr))
    atomic_write(paths[1], getattr(plots, name)(result))
    atomic_write(paths[0], json.dumps(result, indent=1).encode())
    print(lab.table(result) + f"\nwritten {' and '.join(paths)}")


def cmd_report(args):
    from flamingo_min.lab import report
    results = [report.read_result(run) for run in args.runs]
    out = args.out or os.path.commonpath([os.path.abspath(r) for r in args.runs])
    written = report.write_report(results, out)
    print(report.table(results) + f"\nwritten {' and '.join(written)}")


def cmd_sample(args):
    from flamingo_min.checkpoints import atomic_write, check_writable
    from flamingo_min.lab import plots, report
    from flamingo_min.runs import load_run
    model, cfg = load_run(args.run, pick_device(args.device))
    path = args.out or os.path.join(args.run, f"samples_{args.task}.png")
    check_writable(path)
    rows = report.sample(model, cfg.data, args.task, str(args.shots), args.n, args.seed)
    atomic_write(path, plots.episodes(rows))
    for _, texts, _, answer, truth in rows:
        print(f"{' | '.join(t.replace(chr(10), ' ') for t in texts)} | query -> {answer!r} "
              f"({'right' if answer == truth else 'wrong, truth ' + repr(truth)})")
    print(f"written {path}")


def cmd_data(args):
    import random

    import torch
    from flamingo_min.lab import plots
    from flamingo_min.checkpoints import atomic_write, check_writable
    from toy_data import TOKENIZER, DataConfig, DocumentStream, render
    from toy_data.documents import caption, draw_scene
    check_writable(args.out)
    cfg = DataConfig()
    rng = random.Random(args.seed)
    scenes = [draw_scene(rng, count=1 if i < 24 else rng.randint(2, 4)) for i in range(32)]
    images = render(scenes, generator=torch.Generator().manual_seed(args.seed))
    docs = DocumentStream(cfg, args.seed)
    doc = next(docs[i] for i in range(100) if len(docs[i].images) >= 4)
    words = TOKENIZER.decode(doc.tokens).split()
    chunks, cur = [], []
    for w in words[1:]:
        cur.append(w)
        if w == "<EOC>":
            chunks.append(" ".join(cur[1:-1]))
            cur = []
    atomic_write(args.out, plots.world(images, [caption(s) for s in scenes], doc.images, chunks))
    print(f"an interleaved document (task {doc.task}):\n  {TOKENIZER.decode(doc.tokens)}\n  ids {doc.tokens.tolist()}")
    print(f"scored targets: {' '.join(w for w, m in zip(words, doc.loss_mask.tolist()) if m)}")
    print(f"written {args.out}")


def cmd_ablate(args):
    from flamingo_min.lab import ablate
    rows, text = ablate.run(args.out, args.preset, args.set, listed(args.only), args.seeds, pick_device(args.device),
                            say=lambda s: print(f"  {s}", file=sys.stderr))
    print(text + f"\nwritten {args.out}/ablations.json, ablations.md and ablations.png")


def cmd_copying(args):
    from flamingo_min.config import PRESETS
    from flamingo_min.errors import ConfigError
    from flamingo_min.lab import incontext
    if args.preset not in PRESETS:
        raise ConfigError(f"unknown preset {args.preset!r}: choose from {', '.join(PRESETS)}")
    out = args.out or os.path.join("runs", "copying", args.preset)
    seeds = [args.seed] if args.seed is not None else range(args.seeds)
    result = incontext.run(out, args.preset, args.set, seeds, pick_device(args.device), args.episodes,
                           args.probe_seed)
    print(incontext.table(result) + f"\nwritten {out}/copying.json, copying.png and heads.png")


def cmd_scale(args):
    from flamingo_min.errors import ConfigError
    from flamingo_min.lab import scale
    sizes = listed(args.sizes)
    bad = [s for s in sizes if s not in scale.SIZES]
    if bad or not sizes:
        raise ConfigError(f"--sizes {args.sizes!r}: choose from {', '.join(scale.SIZES)}, comma-separated")
    result = scale.run(args.out, sizes, range(args.seeds), args.episodes, pick_device(args.device),
                       overrides=args.set, say=lambda s: print(f"  {s}", file=sys.stderr))
    print(scale.table(result) + f"\nwritten {args.out}/scale.json and scale.png")


def cmd_check(args):
    from flamingo_min.errors import FlamingoError
    from flamingo_min.checkpoints import atomic_write, check_writable
    from lessons.exercises import EXERCISES, STUDENT, grade
    from lessons.exercises.hints import hint
    one_of_one = args.exercise and args.class_dir is None and len(args.file) == 1 and not (args.csv or args.json)
    if args.hint is not None and not one_of_one:
        raise FlamingoError("--hint is for one exercise of one file, without --csv or --json: `python main.py check "
                            "EXERCISE --hint`")
    outputs = {"csv": args.csv, "json": args.json}
    for kind, path in outputs.items():
        if path not in (None, "-") and not path.endswith(f".{kind}"):   # `check --json phi` would write a file phi
            raise FlamingoError(f"--{kind} {path}: give a file name ending in .{kind}, or name the exercise first "
                                f"(`check EXERCISE --{kind} FILE`)")
        if path not in (None, "-"):
            check_writable(path)   # before minutes of grading
    if args.csv == "-" and args.json == "-":
        raise FlamingoError("--csv and --json cannot both print: give one of them a FILE, e.g. --json grades.json")
    paths = list(args.file)
    if args.class_dir is not None:
        if not os.path.isdir(args.class_dir):
            raise FlamingoError(f"no folder {args.class_dir}: give the folder that holds the students' copies")
        copies = sorted(os.path.join(args.class_dir, f) for f in os.listdir(args.class_dir) if f.endswith(".py"))
        if not copies:
            raise FlamingoError(f"{args.class_dir} holds no .py file: put each student's copy of student.py there")
        paths += copies
    paths = paths or [STUDENT]
    for path in paths:
        if not os.path.isfile(path):
            raise FlamingoError(f"no exercise file {path}: give the path of a copy of lessons/exercises/student.py")
    names = [args.exercise] if args.exercise else list(EXERCISES)
    if args.hint is not None:
        print(hint(args.exercise, args.hint or None, paths[0]) + "\n")
    records = grade.grade(paths, names, args.time_limit)
    texts = {"csv": lambda: grade.to_csv(records, names), "json": lambda: json.dumps(records, indent=1) + "\n"}
    written = []
    for kind, path in outputs.items():
        if path not in (None, "-"):
            atomic_write(path, texts[kind]().encode())   # whole or not at all
            written.append(path)
    printed = next((kind for kind, path in outputs.items() if path == "-"), None)
    if printed:   # a machine's reading: the format alone on stdout
        print(texts[printed](), end="")
        if written:
            print(f"written {' and '.join(written)}", file=sys.stderr)
        return 0 if grade.finished(records, names) else 1
    if len(records) == 1 and args.class_dir is None:   # a student checking their own work
        if records[0]["error"]:
            raise FlamingoError(records[0]["error"])
        print(grade.one_file_table(records[0], names))
    else:
        print(grade.class_table(records, names))
    if written:
        print(f"\nwritten {' and '.join(written)}")
    return 0 if grade.finished(records, names) else 1


def cmd_bench(args):
    from flamingo_min.lab import bench
    from flamingo_min.checkpoints import atomic_write, check_writable
    check_writable(os.path.join(args.out, "bench.json"))
    say = (lambda s: None) if args.json else (lambda s: print(f"  {s}", file=sys.stderr))
    result = bench.run(pick_device(args.device), repeats=args.repeats, quick=args.quick, progress=say,
                       compile=not args.no_compile, contend=not args.no_contention, profile_only=args.profile)
    picture = bench.plot(result)
    atomic_write(os.path.join(args.out, "bench.json"), json.dumps(result, indent=1).encode())
    written = [f"{args.out}/bench.json"]
    if picture is not None:
        atomic_write(os.path.join(args.out, "bench.png"), picture)
        written.append(f"{args.out}/bench.png")
    print(json.dumps(result, indent=1) if args.json else bench.table(result) + f"\nwritten {' and '.join(written)}")


# --- the parser ------------------------------------------------------------------------------------------------------
def parser():
    from flamingo_min.config import PRESETS, TrainConfig, settable
    from flamingo_min.evaluate import SELECTIONS
    from flamingo_min.lab.routes import SHOTS as ROUTE_SHOTS
    from flamingo_min.lab.repeats import SHOTS as REPEAT_SHOTS
    from flamingo_min.runs import STAGES
    from lessons.exercises import EXERCISES, LIMIT_S
    from toy_data.settings import describe
    from toy_data.tasks import ALL_TASKS, RICH_TASKS, SHOTS, TASKS, VIDEO_TASKS

    device = argparse.ArgumentParser(add_help=False)
    device.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"],
                        help="where to run (default auto: a GPU if there is one)")
    def seeded(what):   # every command's --seed fixes something else: its help says what
        parent = argparse.ArgumentParser(add_help=False)
        parent.add_argument("--seed", type=whole(0), default=0, help=f"fixes {what} (default 0)")
        return parent
    run = argparse.ArgumentParser(add_help=False)
    run.add_argument("--run", required=True, help="a run folder with a finished flamingo stage, e.g. runs/default")

    p = argparse.ArgumentParser(prog="main.py", description="flamingo-min: Flamingo (Alayrac et al., 2022) at toy "
                                "scale. Train the paper's three-stage recipe, evaluate few-shot learning, look inside.")
    sub = p.add_subparsers(dest="cmd", required=True, metavar="COMMAND")

    t = sub.add_parser("train", parents=[seeded("data, initialisation and episodes"), device],
                       help="pretrain the LM, the vision encoder, then the bridge; then evaluate",
                       formatter_class=argparse.RawDescriptionHelpFormatter,   # the keys' table, one per line
                       description=textwrap.fill(
                           "Runs every stage with no finished checkpoint in the run folder (lm: text-only LM "
                           "pretraining; vision: contrastive encoder pretraining; flamingo: freeze both and train the "
                           "resampler and gated cross-attention), then the few-shot evaluation. A killed run resumes "
                           "from its last checkpoint when you rerun the same command. Several processes (data "
                           "parallel, one per GPU, or gloo on the CPU): torchrun --nproc_per_node=N main.py train ... "
                           "(docs/performance.md).", 79),
                       epilog="--set keys, with the default preset's value and what each accepts:\n" + "\n".join(
                           f"  {part + '.' + f.name:<28} {shown(f.default):<18} {describe(f)}"
                           for part, f in settable()))
    t.add_argument("--preset", default="default", choices=list(PRESETS),
                   help="quick: every stage at toy speed, too few steps to learn; default: the reference run; video: "
                   "the default plus clips (moving, growing, turning shapes) and the video tasks; forms: the "
                   "default with binding in four surface forms, concepts in either word order and 2500 LM steps "
                   "(docs/incontext.md); large: one GPU "
                   "(how long each takes: docs/performance.md)")
    t.add_argument("--out", help="run folder (default runs/PRESET)")
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a setting, e.g. --set train.flamingo_steps=300 --set data.ways=4 (repeatable)")
    t.add_argument("--stage", choices=STAGES, help="run only this stage")
    t.add_argument("--no-eval", action="store_true", help="skip the evaluation at the end")
    t.set_defaults(fn=cmd_train)

    e = sub.add_parser("eval", parents=[run, seeded("the episodes"), device],
                       help="few-shot evaluation of a trained run",
                       description="Scores against shots on held-out episodes; writes eval.json and fewshot.png.")
    e.add_argument("--shots", default=",".join(SHOTS),
                   help=f"comma-separated shot counts; 'none' is the query alone (default {','.join(SHOTS)})")
    episodes = TrainConfig().eval_episodes
    e.add_argument("--episodes", type=whole(1), default=episodes,
                   help=f"episodes per task and shot count (default {episodes}, as `train` evaluates)")
    e.add_argument("--tasks", help=f"comma-separated, from {', '.join(TASKS)} (stills), {', '.join(RICH_TASKS)} "
                   f"(binding in other formats: toy_data/formats.py) and {', '.join(VIDEO_TASKS)} (clips; default: "
                   "those the run was trained for)")
    e.add_argument("--beams", type=whole(1), default=3, help="beam width for open-ended answers (1 = greedy; paper: 3)")
    e.add_argument("--selection", default="random", choices=SELECTIONS, help="support selection")
    e.add_argument("--json", action="store_true", help="print eval.json instead of the table")
    e.set_defaults(fn=cmd_eval)

    for name, shots, what, description in (
            ("repeats", REPEAT_SHOTS, "binding apart by how often the prompt shows the answer's label",
             "Close-ended binding on the evaluation's episodes, read apart by how many supports carry the query's "
             "label (1, 2, 3+): the model's accuracy and the ideal observer's in each part, and how many wrong answers "
             "name a label the prompt shows more often."),
            ("routes", ROUTE_SHOTS, "which gated layers carry binding, where in the prompt, and which LM heads read it",
             "Close-ended binding on episodes drawn as the evaluation draws them (--seed picks which) with sets of "
             "gated layers closed (each passes its input on, as at initialisation): every layer open, each closed "
             "alone, each layer and each pair open alone, none open, and each layer closed at the supports alone or "
             "at the query alone; read on every episode and on those that show the answer's label once. Then each "
             "LM head's attention from the answer's position to the matching labels and to the other labels, with "
             "the pictures.")):
        lab = sub.add_parser(name, parents=[run, seeded("the episodes"), device], help=what, description=description
                             + f" Writes {name}_TASK.json and {name}_TASK.png in the run folder.")
        lab.add_argument("--task", default="bind", help="a binding task: bind, match or bind-FORMAT (default bind)")
        lab.add_argument("--shots", default=",".join(shots),
                         help=f"comma-separated shot counts >= 1 (default {','.join(shots)})")
        lab.add_argument("--episodes", type=whole(1), default=300, help="episodes per shot count (default 300)")
        lab.set_defaults(fn=functools.partial(read_into_run, name))

    r = sub.add_parser("report", help="several runs' evaluations (e.g. three seeds): means, spreads and one picture",
                       description="Reads each run's eval.json and prints every cell's mean and spread (max - min); "
                       "writes report.json and fewshot.png (the seeds' min-max as a band).")
    r.add_argument("runs", nargs="+", help="run folders, each with an eval.json")
    r.add_argument("--out", help="folder for report.json and fewshot.png (default: the runs' common parent)")
    r.set_defaults(fn=cmd_report)

    s = sub.add_parser("sample", parents=[run, seeded("the episodes"), device],
                       help="a picture of a few episodes and the model's answers",
                       description="The model's open-ended answers (beam 3) on a few evaluation episodes.")
    s.add_argument("--task", default="bind", choices=ALL_TASKS, metavar="TASK",
                   help=f"which task's episodes: {', '.join(ALL_TASKS)} (default bind)")
    s.add_argument("--shots", type=whole(0), default=4, help="examples per prompt (default 4)")
    s.add_argument("--n", type=whole(1), default=4, help="how many episodes (default 4)")
    s.add_argument("--out", help="PNG path (default RUN/samples_TASK.png)")
    s.set_defaults(fn=cmd_sample)

    from flamingo_min.lab.ablate import PRESETS as ABLATE, VARIANTS
    from flamingo_min.lab.scale import SIZES
    ab = sub.add_parser("ablate", parents=[device], help="the paper's Table 3: one bridge per design choice removed",
                        description="Pretrains the LM and the vision encoder once (OUT/pretrained), then trains the "
                        "flamingo stage once per variant and seed on those frozen parts (OUT/VARIANT/seedS, each a run "
                        "folder that eval and sample accept), evaluates every bridge on the same held-out episodes at "
                        "4, 8 and 16 shots, and writes ablations.json, "
                        "ablations.md and ablations.png. A killed ablate resumes where it stopped when rerun; "
                        "--only reruns or adds a subset, and the table shows every variant the folder holds.",
                        epilog="variants: " + "; ".join(f"{v.name}: {v.what}" for v in VARIANTS) + ".")
    ab.add_argument("--preset", default="default", choices=list(ABLATE), help="; ".join(
        f"{k}: the {p} preset with {', '.join(b)}, {n} seed{'s' if n > 1 else ''}" for k, (p, b, n) in ABLATE.items()))
    ab.add_argument("--only", default="", help="comma-separated variant names (default: all)")
    ab.add_argument("--seeds", type=whole(1), help="bridge seeds per variant, 0..N-1 (default: the preset's)")
    ab.add_argument("--out", default="runs/ablate", help="output folder (default runs/ablate)")
    ab.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a setting of every variant, as in train (repeatable)")
    ab.set_defaults(fn=cmd_ablate)

    c = sub.add_parser("copying", parents=[device], help="the LM alone, several seeds: when in-context copying "
                       "appears, and in which prompt forms it works",
                       description="Trains the lm stage alone for seeds 0..N-1 (OUT/seedS, each a resumable run folder "
                       "that `train --out` can finish), logging a 4-shot copying probe every 100 steps; then reads "
                       "the LM's text-only concept binding in every binding format at 4 and 16 shots, and with "
                       "lures. Prints each seed's onset step and probes, and writes copying.json, copying.png (the "
                       "probe during training) and heads.png (which heads attend to the matching labels).")
    c.add_argument("--preset", default="default", help="the configuration, as in train (default: default)")
    c.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a setting, as in train (repeatable): e.g. train.lm_steps=2000")
    c.add_argument("--seeds", type=whole(1), default=3, help="train seeds 0..N-1 (default 3)")
    c.add_argument("--seed", type=whole(0), help="train this one seed instead (OUT then holds it alone)")
    c.add_argument("--episodes", type=whole(1), default=150, help="episodes per probe (default 150)")
    c.add_argument("--probe-seed", type=whole(0), default=0, help="the probes' episodes (default 0): choose a "
                   "recipe on another seed's episodes than those you report")
    c.add_argument("--out", help="output folder (default runs/copying/PRESET)")
    c.set_defaults(fn=cmd_copying)

    sc = sub.add_parser("scale", parents=[device], help="the paper's Figure 2 at toy scale: binding against shots "
                        "for three model sizes, several seeds each",
                        description="Trains the default recipe at each size (the LM, and with it the bridge, narrower "
                        "and shallower for small, wider and deeper for big; the vision encoder as it is: 3 sizes x 3 "
                        "seeds are nine training runs: docs/incontext.md) for seeds 0..N-1 (OUT/SIZE/seedS, each a run "
                        "folder that train "
                        "--out finishes and eval --run reads; a killed scale resumes where it stopped), evaluates "
                        "concept binding in every form at 1-16 shots, and writes scale.json and scale.png (bind/closed "
                        "and each held-out form against shots, a line per size).",
                        epilog="sizes: " + "; ".join(f"{k}: {' '.join(v) or 'the default model'}"
                                                     for k, v in SIZES.items()) + ".")
    sc.add_argument("--sizes", default=",".join(SIZES), help=f"comma-separated (default {','.join(SIZES)})")
    sc.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a setting of every size, as in train (repeatable; a size's own width and depth "
                    "win): e.g. train.lm_steps=1500")
    sc.add_argument("--seeds", type=whole(1), default=3, help="seeds 0..N-1 per size (default 3)")
    sc.add_argument("--episodes", type=whole(1), default=200, help="episodes per cell (default 200)")
    sc.add_argument("--out", default="runs/scale", help="output folder (default runs/scale)")
    sc.set_defaults(fn=cmd_scale)

    d = sub.add_parser("data", parents=[seeded("the scenes and the document")],
                       help="a picture of the toy world and one interleaved document",
                       description="Draws 32 scenes of the toy world (24 single shapes, 8 of two to four) with their "
                       "captions, and one interleaved training document (its pictures and chunks of text), into one "
                       "PNG; prints the document's tokens and the targets its loss scores.")
    d.add_argument("--out", default="runs/world.png", help="PNG path (default runs/world.png)")
    d.set_defaults(fn=cmd_data)

    c = sub.add_parser("check", help="check your exercise solutions (lessons/exercises/student.py), or grade a class",
                       description="Runs each exercise's checks against lessons/exercises/student.py (or --file, or "
                       "every .py file in a --class folder) and prints a progress table: done, failing (with the "
                       "reason) or not started; for several files, a table of students x exercises. Each check has "
                       "a time limit, so an endless loop fails instead of hanging. A failing exercise's message names "
                       "the known mistake the result behaves like, if any. Exit status 0 when every exercise "
                       "checked is done in every file, 1 otherwise.")
    c.add_argument("exercise", nargs="?", choices=EXERCISES, metavar="EXERCISE",
                   help=f"one exercise (default: all): {', '.join(EXERCISES)}")

    def hint_number(text):
        if not text.isdigit():   # `check --hint phi`: the exercise comes first
            raise argparse.ArgumentTypeError(f"{text!r} is not a hint number: `check {text} --hint`")
        return whole(1)(text)
    c.add_argument("--hint", nargs="?", const=0, type=hint_number, metavar="N",
                   help="show the exercise's next hint: a nudge, then the idea, then code (the last one shown is kept "
                   "in hints_seen.json beside the file checked); --hint N shows hint N")
    c.add_argument("--file", action="append", default=[], metavar="PATH",
                   help="check this file instead of lessons/exercises/student.py (e.g. a student's copy; repeatable)")
    c.add_argument("--class", dest="class_dir", metavar="DIR", help="grade every .py file in DIR, one per student")
    c.add_argument("--csv", nargs="?", const="-", metavar="FILE",
                   help="write one CSV row per file, with every failing exercise's message, for a gradebook (to FILE, "
                   "or printed without one)")
    c.add_argument("--json", nargs="?", const="-", metavar="FILE",
                   help="write the results as JSON, every message included (to FILE, or printed without one); "
                   "--csv FILE --json FILE writes both from one grading")
    c.add_argument("--time-limit", type=whole(1), default=LIMIT_S, metavar="S",
                   help=f"seconds each exercise's check may run (default {LIMIT_S:g}; the reference takes well under "
                   "1)")
    c.set_defaults(fn=cmd_check)

    b = sub.add_parser("bench", parents=[device], help="speed, memory and scaling, with flamingo-pytorch side by side "
                       "if installed", description="Training-step throughput (ours and flamingo-pytorch 0.1.2's "
                       "modules at equal dimensions), scaling with resolution, images and text length, utilisation "
                       "against measured matmul throughput, k-shot inference latency with and without the KV cache, "
                       "the training step again with every block compiled, the whole default recipe's training "
                       "time projected from a few real steps of each stage, eager and compiled, each stage's real "
                       "step split into data, forward, backward and optimiser, and two processes side by side "
                       "(most of its time goes to compiling and to the two processes: docs/performance.md). "
                       "--profile: the step split alone, with torch.profiler's operator table of the bridge's step.")
    b.add_argument("--out", default="runs/bench", help="folder for bench.json and bench.png")
    b.add_argument("--repeats", type=whole(1), default=7, help="timed repeats per measurement (median)")
    b.add_argument("--quick", action="store_true", help="fewer scaling points")
    b.add_argument("--no-compile", action="store_true", help="leave out the compiled step and recipe (compiling "
                   "takes minutes on a small CPU)")
    b.add_argument("--no-contention", action="store_true", help="leave out the two processes side by side")
    b.add_argument("--profile", action="store_true", help="only where a real training step goes: the model-only step, "
                   "each stage's real step split into phases, and torch.profiler's table of the bridge's step")
    b.add_argument("--json", action="store_true", help="print bench.json instead of the table")
    b.set_defaults(fn=cmd_bench)
    return p


def main(argv=None):
    """Run one command; returns the exit status. Bad flags exit with status 2 (argparse)."""
    from flamingo_min.distributed import launched
    from flamingo_min.errors import FlamingoError
    args = parser().parse_args(argv)
    try:
        if launched() and args.cmd != "train":   # torchrun would run N copies of it, side by side
            raise FlamingoError(f"only `train` runs under torchrun; run `python main.py {args.cmd} ...` as one process")
        return args.fn(args) or 0
    except FlamingoError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
