"""The two layers of flamingo_min: the core (flamingo_min/*.py: the model, the configuration, the loop, scoring) imports
nothing from the lab built on it (flamingo_min/lab/) nor from the lessons, and docs/reference.md maps every file of
both, each in its own layer.

Imports are read from the source with `ast`, inside functions too, relative ones resolved against the package."""
import ast
import glob
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORE = sorted(glob.glob(os.path.join(ROOT, "flamingo_min", "*.py")))
LAB = sorted(glob.glob(os.path.join(ROOT, "flamingo_min", "lab", "*.py")))


def imports(source, package):
    """Every module a source text imports, as absolute dotted names; `package` is the one the text belongs to (for
    relative imports). `from X import name` counts X and X.name, since name may be a module."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module
            found |= {base} | {f"{base}.{alias.name}" for alias in node.names}
    return found


def imports_of(path):
    package = os.path.relpath(os.path.dirname(path), ROOT).replace(os.sep, ".")
    with open(path, encoding="utf-8") as f:
        return imports(f.read(), package)


def reaches_behind(name):
    """Is `name` the lab, a module of it, or the lessons?"""
    return re.match(r"(flamingo_min\.lab|lessons)(\.|$)", name) is not None


def test_the_core_imports_nothing_from_the_lab_or_the_lessons():
    assert len(CORE) >= 10 and len(LAB) >= 4
    found = sorted((os.path.relpath(path, ROOT), name) for path in CORE for name in imports_of(path)
                   if reaches_behind(name))
    assert not found, f"the core reaches into the layer behind it (pass a callback instead): {found}"


def test_the_import_check_sees_imports_written_every_way():
    """The reading above could pass by seeing nothing: it sees the lab's own imports of the core, and it would catch
    a core file that imported the lab or the lessons in any of the usual ways."""
    seen = {name for path in LAB for name in imports_of(path)}   # `from .. import train`, `from ..evaluate import`
    assert {"flamingo_min.train", "flamingo_min.evaluate", "flamingo_min.checkpoints"} <= seen, sorted(seen)
    for line in ("from .lab import probes", "from . import lab", "from .lab.probes import copying",
                 "import flamingo_min.lab.plots", "from flamingo_min.lab import report", "from lessons import trained",
                 "import lessons.trained", "def f():\n    from .lab import bench"):
        assert any(reaches_behind(n) for n in imports(line, "flamingo_min")), line
    assert not any(reaches_behind(n) for n in imports("from . import train\nfrom .config import PRESETS",
                                                      "flamingo_min"))
    assert "flamingo_min.train" in imports("from .. import train", "flamingo_min.lab")


def test_the_map_draws_both_layers_with_every_file():
    """docs/reference.md's map: one line a file (the packages' __init__.py apart), the core's then the lab's."""
    text = open(os.path.join(ROOT, "docs", "reference.md"), encoding="utf-8").read()
    rows = re.findall(r"^\| `(flamingo_min/(?:lab/)?\w+\.py)` \| (\d+) \|", text, re.M)
    mapped = [path for path, _ in rows]
    files = [os.path.relpath(p, ROOT) for p in CORE + LAB if not p.endswith("__init__.py")]
    assert sorted(mapped) == sorted(files), (f"docs/reference.md's map lacks {sorted(set(files) - set(mapped))} "
                                             f"and names {sorted(set(mapped) - set(files))}, which do not exist")
    lab = [i for i, path in enumerate(mapped) if path.startswith("flamingo_min/lab/")]
    assert lab and lab == list(range(lab[0], len(mapped))), "the map lists the lab's files after the core's"
