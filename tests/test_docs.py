"""The documentation: every command, target, preset, setting, file and link a page names exists; the Makefile runs
what the pages say it runs, in the times they give; the README stays short; and no file of the repository speaks of
how it was made instead of what it is.

The pages are README.md, docs/*.md and lessons/*.md. Commands are read from their code (inline `code` and
indented or fenced blocks), so prose that uses "make" as a verb is not taken for a target."""
import glob
import os
import re
import subprocess

import pytest

import main
from flamingo_min.lab import ablate
from flamingo_min.config import PRESETS, settable

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGES = ["README.md"] + sorted(os.path.relpath(p, ROOT) for folder in ("docs", "lessons")
                               for p in glob.glob(os.path.join(ROOT, folder, "*.md")))
LESSONS = "lessons/[0-9][0-9]_*.py"   # the pattern tests/test_lessons.py runs


def read(path):
    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
        return f.read()


def code(text):
    """The page's code: inline `spans`, and the lines of indented or fenced blocks."""
    out, fenced = re.findall(r"`([^`\n]+)`", text), False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif fenced or line.startswith("    ") and not line.lstrip().startswith(("-", "*")):
            out.append(line)
    return out


def named(pattern):
    """{(page, match)} for a regex over every page's code; the match's first group."""
    return {(page, m.group(1)) for page in PAGES for snippet in code(read(page))
            for m in re.finditer(pattern, snippet)}


def targets():
    return set(re.findall(r"^([A-Za-z][\w-]*):", read("Makefile"), re.M))


def recipe(target):
    """The shell lines of a Makefile target."""
    lines = read("Makefile").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{target}:"))
    body = []
    for line in lines[start + 1:]:
        if not line.startswith("\t"):
            break
        body.append(line.strip())
    return body


def commands():
    sub = next(a for a in main.parser()._actions if a.__class__.__name__ == "_SubParsersAction")
    return set(sub.choices)


def test_pages_exist_and_the_readme_is_short():
    assert len(PAGES) > 2, "no pages under docs/"
    readme = read("README.md")
    assert len(readme.splitlines()) < 250, f"README.md has {len(readme.splitlines())} lines: move a section to docs/"
    for page in PAGES:
        if page.startswith("docs/"):
            assert f"({page})" in readme, f"README.md does not link {page}"


def test_every_link_resolves():
    for page in PAGES:
        for target in re.findall(r"\]\(([^)\s]+)\)", read(page)):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue
            path = os.path.normpath(os.path.join(ROOT, os.path.dirname(page), target.split("#")[0]))
            assert os.path.exists(path), f"{page} links {target}, which does not exist"


def test_every_make_target_named_exists():
    found = named(r"(?:^|[\s;(&|])make ([a-z][\w-]*)")
    assert {n for _, n in found} >= {"train", "test", "lessons"}, "the pages name no make target: is the parser broken?"
    missing = sorted((page, n) for page, n in found if n not in targets())
    assert not missing, f"pages name make targets the Makefile lacks: {missing}"


def test_every_main_command_named_exists():
    found = named(r"main\.py ([a-z][\w-]*)")
    assert {n for _, n in found} >= {"train", "eval", "ablate"}
    missing = sorted((page, n) for page, n in found if n not in commands())
    assert not missing, f"pages name main.py commands that do not exist: {missing}"
    for line in recipe_lines():
        for n in re.findall(r"main\.py ([a-z][\w-]*)", line):
            assert n in commands(), f"the Makefile runs main.py {n}, which does not exist"


def recipe_lines():
    return [line for t in targets() for line in recipe(t)]


def test_every_preset_and_setting_named_exists():
    presets = {n for _, n in named(r"--preset ([\w|]+)")}
    for group in presets:
        for name in group.split("|"):
            assert name in PRESETS or name in ablate.PRESETS, f"the pages name --preset {name}, which does not exist"
    keys = {f"{part}.{f.name}" for part, f in settable()}
    found = named(r"\b((?:model|train|data)\.[a-z_]+)=") | named(r"--set ((?:model|train|data)\.[a-z_]+)")
    missing = sorted((page, k) for page, k in found if k not in keys)
    assert not missing, f"pages name settings that --set does not take: {missing}"


def test_every_file_named_exists():
    found = named(r"^((?:flamingo_min|toy_data|lessons|tests|docs)/[\w./]+\.(?:py|md|png))$")
    assert found
    missing = sorted((page, p) for page, p in found if not os.path.exists(os.path.join(ROOT, p)))
    assert not missing, f"pages name files that do not exist: {missing}"


def test_make_lessons_runs_every_lesson():
    lessons = sorted(glob.glob(os.path.join(ROOT, LESSONS)))
    assert len(lessons) >= 10
    loops = [re.search(r"for \w+ in (\S+);", line) for line in recipe("lessons")]
    globs = [m.group(1) for m in loops if m]
    assert globs, "make lessons has no loop over the lessons"
    ran = sorted(p for g in globs for p in glob.glob(os.path.join(ROOT, g)))
    assert ran == lessons, f"make lessons skips {sorted(set(lessons) - set(ran))}"


def test_make_ablate_runs_the_seeds_its_table_states():
    line = next(line for line in recipe("ablate") if "main.py ablate" in line)
    preset = re.search(r"--preset (\w+)", line)
    seeds = re.search(r"--seeds (\d+)", line)
    runs = int(seeds.group(1)) if seeds else ablate.PRESETS[preset.group(1) if preset else "default"][2]
    stated = [(where, int(n)) for where in ("README.md", "docs/ablations.md", "Makefile")
              for n in re.findall(r"16 variants x (\d+) seeds", read(where))]
    assert {where for where, _ in stated} == {"README.md", "docs/ablations.md", "Makefile"}
    assert all(n == runs for _, n in stated), f"make ablate runs {runs} seeds; the pages state {stated}"
    assert f"bridge seeds {', '.join(map(str, range(runs - 1)))} and {runs - 1}" in read("docs/ablations.md")


def minutes_in_makefile():
    return {t: float(n) for t, n in re.findall(r"^([\w-]+):.*##.*\(~(\d+(?:\.\d+)?) min", read("Makefile"), re.M)}


def preset_times():
    """{preset: (make target or None, minutes or None)} from docs/performance.md's table of how long a run takes."""
    rows = re.findall(r"^\| `(\w+)` \| (?:`make ([\w-]+)`|-) \|[^|\n]*\| ([^|\n]*) \|$", read("docs/performance.md"),
                      re.M)
    return {preset: (target or None, float(m.group(1)) if (m := re.fullmatch(r"~(\d+(?:\.\d+)?) min", cell)) else None)
            for preset, target, cell in rows}


def test_the_times_of_readme_makefile_and_performance_page_agree():
    made = minutes_in_makefile()
    readme = {t: float(n) for t, n in re.findall(r"^\| `make ([\w-]+)` \|[^|]*\| ~(\d+(?:\.\d+)?) min \|",
                                                  read("README.md"), re.M)}
    assert {"train", "quick", "ablate"} <= set(made) & set(readme)
    for t in set(made) & set(readme):
        assert made[t] == readme[t], f"make {t}: ~{made[t]:g} min in the Makefile, ~{readme[t]:g} in the README"
    presets = preset_times()
    assert set(presets) == set(PRESETS), (f"docs/performance.md times the presets {sorted(presets)}; "
                                          f"flamingo_min/config.py has {sorted(PRESETS)}")
    timed = {p: v for p, v in presets.items() if v[0] and v[1] is not None}
    assert {"quick", "default"} <= set(timed), "docs/performance.md gives no time for the quick or default preset"
    for preset, (target, minutes) in timed.items():
        assert target in targets() and f"--preset {preset}" in " ".join(recipe(target)) or preset == "default" and \
            recipe(target) == ["$(PY) main.py train"], f"docs/performance.md: make {target} does not train {preset}"
        assert made.get(target) == minutes, (f"docs/performance.md says the {preset} preset takes ~{minutes:g} min; "
                                             f"the Makefile's make {target}: ~{made.get(target)}")


def test_the_code_states_no_times():
    """Minutes live in the docs, where the test above holds them together; a comment in the code keeps its reason."""
    found = [f"{path}:{n}: {line.strip()}" for path, text in repository_text_files()
             if path.endswith(".py") and not path.startswith("tests/")
             for n, line in enumerate(text.splitlines(), 1)
             if re.search(r"(?:~|about |takes? |in )\d+(?:\.\d+)? ?(?:min\b|minutes?\b)", line)]
    assert not found, "move these times to docs/performance.md (or the page that measured them):\n" + "\n".join(found)


# Words about how the project was made rather than what it is. Each pattern is written so that it does not match its
# own source (a bracketed letter), so this file passes its own check.
PROCESS = [r"\biss[u]es? ?#?\d", r"\biss[u]e's\b", r"\bthe iss[u]e\b", r"\bl[e]nt\b", r"\bthis t[i]me\b",
           r"\bthe br[i]ef\b", r"\bthis sess[i]on\b", r"\bagainst the targ[e]ts\b",
           r"\btarg[e]ts? (?:(?:is|are|was|were) )?(?:m[e]t|m[i]ssed)\b", r"\|\s*\**(?:m[e]t|m[i]ssed)\**\s*\|",
           r"\b\d+(?:\.\d+)? ?(?:ms|s|min|minutes|seconds) h[e]re\b", r"\bon this (?:shared )?mach[i]ne\b",
           r"\bthis shared mach[i]ne\b",
           r"\bprevious vers[i]on of th", r"\btried and dr[o]pped\b", r"\bnot rer[u]n since\b",
           r"\bwe (?:tr[i]ed|could n[o]t)\b", r"\bthe task that bu[i]lt\b"]


def repository_text_files():
    try:
        out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    for path in out.splitlines():
        full = os.path.join(ROOT, path)
        if not os.path.isfile(full):
            continue
        with open(full, "rb") as f:
            data = f.read()
        try:
            yield path, data.decode("utf-8")
        except UnicodeDecodeError:
            continue   # a picture or another binary file


def test_no_file_speaks_of_how_it_was_made():
    found = []
    for path, text in repository_text_files():
        for n, line in enumerate(text.splitlines(), 1):
            for p in PROCESS:
                m = re.search(p, line, re.I)
                if m:
                    found.append(f"{path}:{n}: {m.group(0)!r}")
    assert not found, "write these as facts about the software:\n" + "\n".join(found)


def test_license_and_citation():
    assert read("LICENSE").startswith("MIT License")
    cff = read("CITATION.cff")
    version = re.search(r'^version = "([^"]+)"', read("pyproject.toml"), re.M).group(1)
    assert re.search(rf"^version: {re.escape(version)}$", cff, re.M), "CITATION.cff and pyproject.toml differ in version"
    assert re.search(r"^license: MIT$", cff, re.M)
    assert "2204.14198" in cff and "Flamingo: a Visual Language Model for Few-Shot Learning" in cff


def test_the_readme_table_is_the_one_in_the_results_page():
    rows = [line for line in read("README.md").splitlines() if re.match(r"    [a-z*-]+/(?:open|closed) +\d", line)]
    assert len(rows) >= 6
    results = read("docs/results.md").splitlines()
    assert all(row in results for row in rows), "README.md's few-shot rows differ from docs/results.md's"


def lesson_table(page):
    """{lesson file: (its exercises, its minutes)} from the page's table with a lesson and an exercise column."""
    rows, cols = {}, None
    for line in read(page).splitlines():
        if not line.startswith("|"):
            cols = None
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cols is None:
            names = [c.lower() for c in cells]
            lesson = next((i for i, c in enumerate(names) if c == "lesson"), None)
            exercise = next((i for i, c in enumerate(names) if "exercise" in c), None)
            cols = (lesson, exercise, names.index("minutes") if "minutes" in names else None)
            continue
        lesson, exercise, minutes = cols
        found = re.search(r"`(\d\d_\w+\.py)`", cells[lesson]) if None not in cols else None
        if found:
            rows[found.group(1)] = (set(re.findall(r"`(\w+)`", cells[exercise])), cells[minutes])
    return rows


def test_the_readme_lists_every_lesson_as_lessons_readme_does():
    from lessons.exercises import EXERCISES
    files = {os.path.basename(p) for p in glob.glob(os.path.join(ROOT, LESSONS))}
    readme, course = lesson_table("README.md"), lesson_table("lessons/README.md")
    assert set(readme) == files, f"README.md's lesson table lists {sorted(readme)}; the lessons are {sorted(files)}"
    assert readme == course, "README.md's lesson table differs from lessons/README.md's in exercises or minutes"
    assert {e for ex, _ in readme.values() for e in ex} <= set(EXERCISES)
