"""The surface forms of a binding example: where other words sit around the label, and what they say.

A web page that names a picture says more than the name. Flamingo's few-shot prompts are such pages, so binding a
label to a picture should not depend on the words around it. A format is the text of one chunk between `<image>` and
`<EOC>`, with `{label}` where the bound nonce word goes and `{remark}` for each extra sentence:

    plain     <image> : tiv <EOC>                                   the one form of the clean `bind` task
    after     <image> : tiv . where ? top-left <EOC>                a sentence after the label
    before    <image> what size ? big : tiv <EOC>                   a sentence between the picture and the label
    both      <image> how many ? one : tiv . where ? left <EOC>     on both sides
    two       <image> : tiv . what size ? small . where ? top <EOC> two sentences after the label
    aside     <image> : tiv . what shape ? ring <EOC>               the picture's other attribute after the label
    late      <image> where ? top . what size ? big : tiv <EOC>     two sentences between the picture and the label

A remark (its size, position or count) and an aside (its colour or shape) are true of their picture and never name
the bound attribute (a colour-binding example may say which shape its object has, never which colour), so the label
stays the only thing bound. An aside names a word that the LM's concept-binding text binds with (`red circle tiv .`)
but which here does not decide the label: the hardest of these forms. Training uses the formats listed in
data.bind_formats (documents) and data.text_formats (the LM's text), both `plain` in the recipe (docs/recipe.md says
why); any other declared format is held out, and the evaluation reports it apart (`bind-after*`). To add a format,
add a line to FORMATS: the evaluation gains a task `bind-<name>`, and a training run uses it once you list it in
those settings.

The LM's text writes a picture as its words (`red circle`), and the plain format's `:` drops out, as the LM's own
binding text reads `red circle tiv .`: `red circle tiv . where ? top-left .` is `after` in text.
"""
import re
from dataclasses import dataclass

REMARKS = {"position": "where ? {}", "size": "what size ? {}", "count": "how many ? {}"}   # what a remark can say
ASIDES = {"colour": "what colour ? {}", "shape": "what shape ? {}"}   # what an aside can say: a concept's other word
REMARK_LEN = 4      # tokens of the longest remark or aside ("what size ? big")


@dataclass(frozen=True)
class Format:
    name: str
    words: str      # between <image> and <EOC>: {label} once, {remark} and {aside} any number of times

    @property
    def longest(self):
        """Tokens of this format's longest chunk, `<image>` and `<EOC>` included."""
        words = self.words.split()
        return 2 + sum(REMARK_LEN if w in ("{remark}", "{aside}") else 1 for w in words)

    def parts(self, rng, facts, bound):
        """(words before the label, words after it) for one picture: each {remark} says its size, position or count,
        each {aside} its colour or shape (from `facts`, attribute -> value word, as shapes.describe gives), never the
        `bound` attribute; rng chooses which."""
        out = []
        for w in self.words.split():
            says = {"{remark}": REMARKS, "{aside}": ASIDES}.get(w)
            if says:
                kind = rng.choice([k for k in says if k != bound and k in facts])
                w = says[kind].format(facts[kind])
            out.append(w)
        before, _, after = " ".join(out).partition("{label}")
        return before.strip(), after.strip()

    def read(self, words):
        """The label and the remarks of one chunk's words (between `<image>` and `<EOC>`) if they are in this
        format, else None: (label, [remark, ...])."""
        found = re.fullmatch(self._pattern(), words)
        return None if found is None else (found["label"], [g for g in found.groups() if g != found["label"]])

    def _pattern(self):
        def either(says):
            return "(" + "|".join(re.escape(r).replace(re.escape("{}"), r"\S+") for r in says.values()) + ")"

        pattern = {"{remark}": either(REMARKS), "{aside}": either(ASIDES), "{label}": "(?P<label>\\S+)"}
        parts = [pattern.get(w, re.escape(w)) for w in self.words.split()]
        return " ".join(parts)

    def text(self, rng, concept, label, facts, bound):
        """The LM's text for one example: `red circle tiv .`, `red circle what size ? big : tiv .`, ..."""
        before, after = self.parts(rng, facts, bound)
        before = before[1:].strip() if before.startswith(":") else before   # plain: `red circle tiv`, no `:`
        return " ".join(w for w in (concept, before, label, after, ".") if w)


FORMATS = (
    Format("plain", ": {label}"),
    Format("after", ": {label} . {remark}"),
    Format("before", "{remark} : {label}"),
    Format("both", "{remark} : {label} . {remark}"),
    Format("two", ": {label} . {remark} . {remark}"),
    Format("aside", ": {label} . {aside}"),
    Format("late", "{remark} . {remark} : {label}"),
)
BY_NAME = {f.name: f for f in FORMATS}
TRAINED = ("plain", "after", "before")      # the formats docs/recipe.md measured in training (--set data.bind_formats)
LONGEST = max(f.longest for f in FORMATS)


def chunk_formats(rng, names, n):
    """Formats for n chunks of one document: half the documents keep one format throughout, the others draw one per
    chunk (our choice: a model should meet long runs of one form, as the evaluation's prompts are, and mixtures)."""
    if len(names) == 1 or rng.random() < 0.5:
        return [BY_NAME[rng.choice(names)]] * n
    return [BY_NAME[rng.choice(names)] for _ in range(n)]


def fits(formats, budget):
    """How many of these chunks, in order, fit in `budget` tokens."""
    used = 0
    for k, f in enumerate(formats):
        used += f.longest
        if used > budget:
            return k
    return len(formats)


def check(names, setting):
    """A ValueError naming the setting for an unknown format."""
    bad = [n for n in names if n not in BY_NAME]
    if bad:
        raise ValueError(f"{setting}: unknown binding format {bad[0]!r}: choose from {', '.join(BY_NAME)} "
                         "(toy_data/formats.py)")
