"""The toy world: shapes rendered in pure torch, a word-level vocabulary, training streams and held-out episodes."""
from .shapes import COLOURS, COUNTS, EVAL_COMBOS, HELD_OUT, POSITIONS, SHAPES, SIZES, TRAIN_COMBOS, Obj, Scene, render
from .vocab import EOC, EVAL_NONCE, IMAGE, TOKENIZER, TRAIN_NONCE, Tokenizer
from .documents import DataConfig, DocumentStream, PairStream, Sample, TextCorpus
from .tasks import TASKS, Episode, build_prompt, make_episode

__all__ = ["COLOURS", "COUNTS", "EVAL_COMBOS", "HELD_OUT", "POSITIONS", "SHAPES", "SIZES", "TRAIN_COMBOS", "Obj",
           "Scene", "render", "EOC", "EVAL_NONCE", "IMAGE", "TOKENIZER", "TRAIN_NONCE", "Tokenizer", "DataConfig",
           "DocumentStream", "PairStream", "Sample", "TextCorpus", "TASKS", "Episode", "build_prompt", "make_episode"]
