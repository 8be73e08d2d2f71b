"""Classroom exercises: write the core pieces of Flamingo yourself, then check them with `python main.py check`.

- student.py     the stubs you fill in (each raises NotImplementedError naming its exercise until you do)
- hints.py       one hint per exercise, shown by `python main.py check NAME --hint`
- checks.py      what each exercise must do; the checker and CI run these
- solutions.py   reference answers, kept apart: look only when stuck

Lessons call `use(name)`: your implementation when its check passes, the reference solution otherwise, and they say
which one they are running.
"""
import importlib

EXERCISES = ("phi", "cross_attention_mask", "gated_xattn_forward", "resampler_attention", "contrastive_loss",
             "build_prompt", "greedy_decode")


def status(name, module="lessons.exercises.student"):
    """('done' | 'failing' | 'not started', message) for one exercise against `module`."""
    from . import checks
    impl = getattr(importlib.import_module(module), name)
    try:
        getattr(checks, name)(impl)
    except NotImplementedError as e:
        return "not started", str(e)
    except Exception as e:  # an assertion or any crash in the student's code: report it, do not stop the table
        return "failing", f"{type(e).__name__}: {e}"
    return "done", ""


def use(name, quiet=False):
    """The student's implementation if it passes its check, else the reference solution; says which."""
    from . import solutions, student
    state, _ = status(name)
    fn = getattr(student, name) if state == "done" else getattr(solutions, name)
    if not quiet:
        print(f"[{name}: using {'YOUR implementation' if state == 'done' else 'the reference solution'}"
              f"{'' if state == 'done' else ' (' + state + ' in lessons/exercises/student.py)'}]")
    return fn
