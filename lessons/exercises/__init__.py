"""Classroom exercises: write the core pieces of Flamingo yourself, then check them with `python main.py check`.

- student.py     the stubs you fill in (each raises NotImplementedError naming its exercise until you do)
- hints.py       three hints per exercise (a nudge, the idea, code), one at a time: `python main.py check NAME --hint`
- checks.py      what each exercise must do; the checker and CI run these
- mistakes.py    the usual mistakes, which the checker names when your result behaves like one
- solutions.py   reference answers, kept apart: look only when stuck

Lessons call `use(name)`: your implementation when its check passes, the reference solution otherwise, and they say
which one they are running. `python main.py check` grades in a subprocess (grade.py), so that even a loop no time
limit can interrupt cannot hang it.
"""
import contextlib
import importlib.util
import os
import signal
import threading

EXERCISES = ("phi", "contrastive_loss", "resampler_attention", "gated_xattn_forward", "cross_attention_mask",
             "next_token_loss", "build_prompt", "greedy_decode", "score_candidates", "frame_input")   # lesson order
STUDENT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "student.py")
LIMIT_S = 10.0   # per exercise: every check takes well under a second on the reference solution


class TimeUp(BaseException):
    """Raised into a check that ran out of time. Not an Exception, so a student's `except Exception` cannot eat it."""


@contextlib.contextmanager
def time_limit(seconds):
    """Interrupt the code inside after `seconds` with TimeUp (a timer signal: Unix, main thread; elsewhere there is
    no limit here, and the grader's subprocess timeout is what stops a loop)."""
    if not seconds or not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread() \
            or signal.getitimer(signal.ITIMER_REAL)[0]:   # or someone else's timer is running: leave it be
        yield
        return

    def ring(signum, frame):
        raise TimeUp()
    previous = signal.signal(signal.SIGALRM, ring)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def out_of_time(limit):
    return f"no answer within {limit:g} s (the reference takes well under 1 s): an endless loop?"


def shown(path):
    """A path as a person reads it: relative to here when it is below here, else absolute."""
    rel = os.path.relpath(os.path.abspath(path))
    return os.path.abspath(path) if rel.startswith("..") else rel


def load(path=None):
    """The module to check: lessons/exercises/student.py, or any file with the same functions (a student's copy)."""
    from flamingo_min.errors import FlamingoError
    path = path or STUDENT
    if not os.path.isfile(path):
        raise FlamingoError(f"no exercise file {path}: give the path of a copy of lessons/exercises/student.py")
    spec = importlib.util.spec_from_file_location(f"exercises_{abs(hash(os.path.abspath(path)))}", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as e:  # the student's file is theirs: a syntax error there is a message, not our crash
        raise FlamingoError(f"{path} does not run ({type(e).__name__}: {e}); fix it and check again") from None
    return module


def status(name, module, limit=LIMIT_S):
    """('done' | 'failing' | 'not started', message) for one exercise of `module`; its check may run `limit` s.
    A failing message names the known mistake the result behaves like, if any (mistakes.py)."""
    from . import checks, mistakes
    where = shown(module.__file__)
    impl = getattr(module, name, None)
    if impl is None:
        return "failing", f"{where} has no function {name}"
    recorded = mistakes.Recorder(impl)
    try:
        with time_limit(limit):
            getattr(checks, name)(recorded)
    except NotImplementedError:
        return "not started", f"exercise {name}: implement it in {where}"
    except TimeUp:
        return "failing", out_of_time(limit)
    except Exception as e:  # an assertion or any crash in the student's code: report it, do not stop the table
        return "failing", mistakes.explain(name, recorded.calls, e)
    return "done", ""


def use(name, quiet=False):
    """The student's implementation if it passes its check, else the reference solution; says which."""
    from . import solutions
    from flamingo_min.errors import FlamingoError
    try:
        module = load()
        state, _ = status(name, module)
        why = f"{state} in {shown(STUDENT)}"
    except FlamingoError as e:   # the student's file does not run: the message says so, and names it
        state, module, why = "failing", None, str(e)
    fn = getattr(module, name) if state == "done" else getattr(solutions, name)
    if not quiet:
        print(f"[{name}: using {'YOUR implementation' if state == 'done' else 'the reference solution'}"
              f"{'' if state == 'done' else ' (' + why + ')'}]")
    return fn
