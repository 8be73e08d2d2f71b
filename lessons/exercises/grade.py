"""Grading exercise files, one or a whole class: `python main.py check` (--file, --class, --csv, --json).

Each file is graded in its own Python process (`python -m lessons.exercises.grade FILE NAME...`), which prints a
tagged JSON line per exercise as it finishes. Each check runs under a time limit (a timer signal, see time_limit); a
loop that the signal cannot stop (inside one long C call, or under a bare `except:`) is stopped by killing the process:
the exercise it was on fails as out of time, and the rest are graded in a fresh process. A student's file can
therefore neither hang the grader nor crash it, and what it prints does not mix with the results.
"""
import contextlib
import csv
import io
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

from . import EXERCISES, LIMIT_S, out_of_time, shown

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STARTUP_S = 60     # importing torch in a fresh process, generous for a busy machine
MARKS = {"done": "done", "failing": "FAIL", "not started": "-"}
TAG = "@result "   # starts each line of the grading process's results


def grade_file(path, names=EXERCISES, limit=LIMIT_S):
    """{"file", "student", "error", "exercises": {name: {"status", "message"}}} for one exercise file."""
    record = {"file": shown(path), "student": os.path.splitext(os.path.basename(path))[0], "error": None,
              "exercises": {}}
    todo = list(names)
    while todo and record["error"] is None:
        cmd = [sys.executable, "-m", "lessons.exercises.grade", os.path.abspath(path), f"--limit={limit}", *todo]
        proc = subprocess.Popen(cmd, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        try:
            out, err = proc.communicate(timeout=STARTUP_S + (limit + 1) * len(todo))
            killed = False
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            killed = True
        for line in out.splitlines():
            if not line.startswith(TAG):   # written by the student's code straight to the file descriptor
                continue
            rec = json.loads(line[len(TAG):])
            if "error" in rec:
                record["error"] = rec["error"]
            else:
                record["exercises"][rec["exercise"]] = {"status": rec["status"], "message": rec["message"]}
        todo = [n for n in todo if n not in record["exercises"]]
        if todo and record["error"] is None:   # the process died on todo[0]: fail it, grade the rest afresh
            why = out_of_time(limit) if killed else \
                f"the check stopped Python (exit status {proc.returncode}): {err.strip()[-300:]}"
            record["exercises"][todo.pop(0)] = {"status": "failing", "message": why}
    return record


def grade(paths, names=EXERCISES, limit=LIMIT_S):
    """grade_file for every path, a few processes at a time, in the order given."""
    jobs = max(1, min(len(paths), (os.cpu_count() or 1), 4))
    with ThreadPoolExecutor(jobs) as pool:
        return list(pool.map(lambda p: grade_file(p, names, limit), paths))


def done(record):
    return sum(e["status"] == "done" for e in record["exercises"].values())


def finished(records, names):
    """True when every file ran and every exercise of it is done."""
    return all(r["error"] is None and done(r) == len(names) for r in records)


def one_file_table(record, names):
    """The student's view: one line per exercise, with the reason for each that is not done."""
    if record["error"]:
        return f"{record['error']}"
    lines = [f"{'exercise':<22}{'status':<13}message"]
    for n in names:
        e = record["exercises"][n]
        msg = e["message"].splitlines() or [""]
        lines.append(f"{n:<22}{ {'failing': 'FAILING'}.get(e['status'], e['status']):<13}{msg[0]}")
        lines += [" " * 35 + m for m in msg[1:]]
    todo = [n for n in names if record["exercises"][n]["status"] != "done"]
    if not todo:
        lines.append(f"\n{names[0]} is done." if len(names) == 1 else f"\nAll {len(names)} exercises are done.")
    else:
        state = {"failing": "FAILING"}.get(record["exercises"][todo[0]]["status"], "not started")
        lines.append(f"\n{done(record)}/{len(names)} done. Next: {todo[0]} ({state}) in {record['file']}; "
                     f"`python main.py check {todo[0]} --hint` gives a hint.")
    return "\n".join(lines)


def class_table(records, names):
    """The teacher's view: students x exercises, then every message."""
    width = max([7] + [len(r["student"]) for r in records]) + 2
    lines = ["exercises: " + ", ".join(f"{i + 1} {n}" for i, n in enumerate(names)),
             f"{'student':<{width}}" + "".join(f"{i + 1:>5}" for i in range(len(names))) + "   done"]
    for r in records:
        if r["error"]:
            lines.append(f"{r['student']:<{width}}" + "does not run".rjust(5 * len(names)) + f"{0:>4}/{len(names)}")
            continue
        cells = "".join(f"{MARKS[r['exercises'][n]['status']]:>5}" for n in names)
        lines.append(f"{r['student']:<{width}}{cells}{done(r):>4}/{len(names)}")
    many = len(records) != 1
    lines.append(f"(done, FAIL, - not started)\n{sum(finished([r], names) for r in records)}/{len(records)} "
                 f"student{'s' * many} {'have' if many else 'has'} every exercise done")
    problems = [f"{r['file']}: {r['error']}" for r in records if r["error"]]
    problems += [f"{r['file']} {n}: {e['message'].splitlines()[0]}" for r in records if not r["error"]
                 for n, e in r["exercises"].items() if e["status"] == "failing"]
    return "\n".join(lines + (["", "failing:"] + ["  " + p for p in problems] if problems else []))


def to_csv(records, names):
    """One row per file: its status in every exercise, how many are done, why the file does not run if so, then the
    message of every failing exercise (one column each)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["student", "file", *names, "done", "total", "error", *[f"{n} message" for n in names]])
    for r in records:
        states = ["error" if r["error"] else r["exercises"][n]["status"] for n in names]
        messages = [r["exercises"][n]["message"] if not r["error"] and r["exercises"][n]["status"] == "failing" else ""
                    for n in names]
        w.writerow([r["student"], r["file"], *states, done(r), len(names), r["error"] or "", *messages])
    return buf.getvalue()


def main(argv):
    """The grading process: FILE [--limit=S] NAME... -> one tagged JSON line per exercise (or one {"error"})."""
    import torch
    from flamingo_min.errors import FlamingoError
    from . import TimeUp, load, status, time_limit
    torch.set_num_threads(1)   # tiny checks; several files may be graded at once
    path, limit = argv[0], float(next((a.split("=")[1] for a in argv if a.startswith("--limit=")), LIMIT_S))
    names = [a for a in argv[1:] if not a.startswith("--")]
    results = sys.stdout

    def say(**rec):
        print(TAG + json.dumps(rec), file=results, flush=True)
    with contextlib.redirect_stdout(sys.stderr):   # what the student's code prints stays out of the results
        try:
            with time_limit(limit):
                module = load(path)
        except FlamingoError as e:
            return say(error=str(e))
        except TimeUp:
            return say(error=f"{shown(path)} does not finish loading within {limit:g} s: a loop outside any function?")
        except BaseException as e:   # sys.exit() or the like at the top of the file
            return say(error=f"{shown(path)} does not run ({type(e).__name__}: {e})")
        for n in names:
            state, message = status(n, module, limit)
            say(exercise=n, status=state, message=message)


if __name__ == "__main__":
    main(sys.argv[1:])
