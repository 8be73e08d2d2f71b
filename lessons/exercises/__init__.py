"""Classroom exercises: write the core pieces of Flamingo yourself, then check them with `python main.py check`.

- student.py     the stubs you fill in (each raises NotImplementedError naming its exercise until you do)
- hints.py       one hint per exercise, shown by `python main.py check NAME --hint`
- checks.py      what each exercise must do; the checker and CI run these
- solutions.py   reference answers, kept apart: look only when stuck

Lessons call `use(name)`: your implementation when its check passes, the reference solution otherwise, and they say
which one they are running.
"""
import importlib.util
import os

EXERCISES = ("phi", "cross_attention_mask", "gated_xattn_forward", "resampler_attention", "contrastive_loss",
             "build_prompt", "greedy_decode")
STUDENT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "student.py")


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


def status(name, module):
    """('done' | 'failing' | 'not started', message) for one exercise of `module`."""
    from . import checks
    impl = getattr(module, name, None)
    if impl is None:
        return "failing", f"{module.__file__} has no function {name}"
    try:
        getattr(checks, name)(impl)
    except NotImplementedError as e:
        return "not started", str(e)
    except Exception as e:  # an assertion or any crash in the student's code: report it, do not stop the table
        return "failing", f"{type(e).__name__}: {e}"
    return "done", ""


def use(name, quiet=False):
    """The student's implementation if it passes its check, else the reference solution; says which."""
    from . import solutions
    from flamingo_min.errors import FlamingoError
    try:
        module = load()
        state, _ = status(name, module)
    except FlamingoError as e:
        state, module = f"failing: {e}", None
    fn = getattr(module, name) if state == "done" else getattr(solutions, name)
    if not quiet:
        print(f"[{name}: using {'YOUR implementation' if state == 'done' else 'the reference solution'}"
              f"{'' if state == 'done' else ' (' + state + ' in lessons/exercises/student.py)'}]")
    return fn
