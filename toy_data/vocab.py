"""Word-level vocabulary and tokenizer for the toy world.

Every word the grammar can emit, the special tokens, and a pool of nonce words. The nonce pool is split in two:
- TRAIN_NONCE: 200 words, used by every training stream, including those with images. Many, each rare: with 16 the
  bridge learnt a prior over them, and open-ended binding answered with a training word (Chan et al. 2022: in-context
  learning needs many rare classes; with few, frequent ones a network learns them in its weights instead).
- EVAL_NONCE: 8 words, used by the LM's text-only corpus, never by a stream with images. Few-shot binding is evaluated
  with these, so the model must bind a label to an image from the prompt alone, yet it can read the word (a word no
  training text contains keeps an untrained embedding and cannot be copied).
`<image>` and `<EOC>` never occur in the LM's text corpus: they are Flamingo's new tokens (paper section 2.3); `<EOC>`'s
embedding is trained with the bridge, `<image>`'s is a zero vector (flamingo_min/flamingo.py says why).
"""
import random

from .shapes import COLOURS, COUNTS, PLURALS, POSITIONS, SHAPES, SIZES

PAD, BOS, EOS, IMAGE, EOC = "<pad>", "<bos>", "<eos>", "<image>", "<EOC>"
SPECIALS = (PAD, BOS, EOS, IMAGE, EOC)

GRAMMAR = ("a", "at", "what", "colour", "shape", "size", "where", "how", "many", "?", ".", ":")
EVENT_WORDS = ("moves", "up", "down", "grows", "shrinks", "turns", "appears", "disappears")  # clips.py; + left, right
EVAL_NONCE = ("tiv", "vop", "wez", "yok", "zorb", "glim", "fidge", "jick")
N_TRAIN_NONCE = 200


def _syllables(n, taken):
    """n made-up consonant-vowel-consonant words, in a fixed pseudo-random order, none of them already taken."""
    words = [a + v + b for a in "bdfgklmnprstvz" for v in "aeiou" for b in "bdfgklmnprstvz"]
    random.Random(2205_05055).shuffle(words)   # the arXiv id of Chan et al. (2022): many rare classes
    return tuple(w for w in words if w not in taken)[:n]


_CLASSIC = ("dax", "wug", "blick", "fep", "toma", "zib", "kiki", "bouba", "gazzer", "lorp", "mib", "nup", "pilk",
            "quib", "rask", "sprock")
_OTHERS = SPECIALS + GRAMMAR + COLOURS + SHAPES + PLURALS + SIZES + POSITIONS + COUNTS + EVENT_WORDS + EVAL_NONCE + \
    _CLASSIC
TRAIN_NONCE = _CLASSIC + _syllables(N_TRAIN_NONCE - len(_CLASSIC), set(_OTHERS))
NONCE = TRAIN_NONCE + EVAL_NONCE
WORDS = SPECIALS + GRAMMAR + COLOURS + SHAPES + PLURALS + SIZES + POSITIONS + COUNTS + EVENT_WORDS + NONCE


class Tokenizer:
    """Whitespace-split words <-> integer ids. Unknown words raise a ValueError that names them."""

    def __init__(self, words=WORDS):
        if len(set(words)) != len(words):
            raise ValueError("the vocabulary lists a word twice")
        self.words = tuple(words)
        self.ids = {w: i for i, w in enumerate(self.words)}
        self.pad_id, self.bos_id, self.eos_id = self.ids[PAD], self.ids[BOS], self.ids[EOS]
        self.image_id, self.eoc_id = self.ids[IMAGE], self.ids[EOC]

    def __len__(self):
        return len(self.words)

    def encode(self, text):
        out = []
        for w in text.split():
            if w not in self.ids:
                raise ValueError(f"unknown word {w!r}: the toy vocabulary has no such word (see toy_data/vocab.py)")
            out.append(self.ids[w])
        return out

    def decode(self, ids):
        return " ".join(self.words[int(i)] for i in ids)


TOKENIZER = Tokenizer()
