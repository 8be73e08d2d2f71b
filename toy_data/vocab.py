"""Word-level vocabulary and tokenizer for the toy world.

Every word the grammar can emit, the special tokens, and a pool of nonce words. The nonce pool is split in two:
- TRAIN_NONCE: used by every training stream, including those with images;
- EVAL_NONCE: used by the LM's text-only corpus, never by a stream with images. Few-shot binding is evaluated with these,
  so the model must bind a label to an image from the prompt alone, yet it can read the word (a word no training text
  contains keeps an untrained embedding and cannot be copied).
`<image>` and `<EOC>` never occur in the LM's text corpus: they are Flamingo's new tokens (paper section 2.3), and their
embeddings are trained with the bridge.
"""
from .shapes import COLOURS, COUNTS, PLURALS, POSITIONS, SHAPES, SIZES

PAD, BOS, EOS, IMAGE, EOC = "<pad>", "<bos>", "<eos>", "<image>", "<EOC>"
SPECIALS = (PAD, BOS, EOS, IMAGE, EOC)
NEW_TOKENS = (IMAGE, EOC)  # tokens the frozen LM never saw; Flamingo trains their embeddings

NONCE = ("dax", "wug", "blick", "fep", "toma", "zib", "kiki", "bouba", "gazzer", "lorp", "mib", "nup",
         "pilk", "quib", "rask", "sprock", "tiv", "vop", "wez", "yok", "zorb", "glim", "fidge", "jick")
TRAIN_NONCE, EVAL_NONCE = NONCE[:16], NONCE[16:]
GRAMMAR = ("a", "at", "what", "colour", "shape", "size", "where", "how", "many", "?", ".", ":")
WORDS = SPECIALS + GRAMMAR + COLOURS + SHAPES + PLURALS + SIZES + POSITIONS + COUNTS + NONCE


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
