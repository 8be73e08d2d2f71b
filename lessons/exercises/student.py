"""Your exercises. Replace each `raise NotImplementedError(...)` with an implementation, then run
`python main.py check NAME` (or `python main.py check` for the table). Hints: `python main.py check NAME --hint`.

Shapes: B batch, T text length, N images, R tokens per image, M = N * R, D width, S spatial features, H heads,
F frames of a clip, V vocabulary.
Use torch and einops; look at the real modules in flamingo_min/ only after you have tried.
"""
import torch  # noqa: F401  (you will want these)
import torch.nn.functional as F  # noqa: F401
from einops import rearrange  # noqa: F401

from toy_data import TOKENIZER  # noqa: F401  (TOKENIZER.eoc_id and friends, for greedy_decode)


def phi(input_ids, image_token_id):
    """(B, T) ids -> (B, T) long: 1-based index of the last <image> at or before each position; 0 if none."""
    raise NotImplementedError("exercise phi: implement phi in lessons/exercises/student.py")


def cross_attention_mask(input_ids, image_token_id, num_images, tokens_per_image, only_immediate=True):
    """(B, T) ids -> (B, T, num_images * tokens_per_image) bool: may text position t attend visual token j?
    only_immediate: only image phi(t)'s tokens; otherwise every image 1..phi(t). Never a later image."""
    raise NotImplementedError("exercise cross_attention_mask: implement it in lessons/exercises/student.py")


def gated_xattn_forward(layer, x, media, mask):
    """GATED XATTN-DENSE with the weights of `layer` (a flamingo_min.xattn.GatedCrossAttention):
    x (B, T, D), media (B, M, D), mask (B, T, M) -> (B, T, D). Tokens whose mask row is all False get an exact zero
    from the attention branch. Both gated branches are multiplied by layer.scale (the size of the LM's residual
    stream there). Use layer.ln_q, layer.q, layer.ln_kv, layer.kv, layer.out, layer.ln_ff, layer.ff_in, layer.ff_out,
    layer.alpha_xattn, layer.alpha_dense, layer.scale and layer.n_heads."""
    raise NotImplementedError("exercise gated_xattn_forward: implement it in lessons/exercises/student.py")


def resampler_attention(layer, x, latents):
    """One Perceiver Resampler layer with the weights of `layer` (a flamingo_min.resampler.ResamplerLayer):
    x (B, S, D) features, latents (B, R, D) -> new latents (B, R, D). Queries come from the latents; keys and values
    from [features; latents]. Use layer.ln_media, layer.ln_latents, layer.q, layer.kv, layer.out, layer.ln_ff,
    layer.ff and layer.n_heads."""
    raise NotImplementedError("exercise resampler_attention: implement it in lessons/exercises/student.py")


def contrastive_loss(image_emb, text_emb, logit_scale):
    """Symmetric CLIP loss: image_emb, text_emb (B, E) (pair i matches pair i), logit_scale a scalar tensor
    (the log of the inverse temperature) -> scalar loss, the mean of image->text and text->image cross-entropy."""
    raise NotImplementedError("exercise contrastive_loss: implement it in lessons/exercises/student.py")


def build_prompt(support, query, text_examples=()):
    """Few-shot prompt words from toy_data.tasks.Example objects: '<bos>', each support's chunk
    ('<image> PREFIX ANSWER <EOC>', empty prefix left out), then '<image> PREFIX' for the query. With no support,
    the text examples' chunks without '<image>' stand in. Returns (text, scenes): one scene per <image>, in order."""
    raise NotImplementedError("exercise build_prompt: implement it in lessons/exercises/student.py")


def greedy_decode(model, ids, images, max_new_tokens=10):
    """Greedy decoding with a flamingo_min.Flamingo: ids (1, T) prompt, images (1, N, 3, H, W). Repeatedly take the
    most likely next token (never <pad>, <bos> or <image>), stop at <EOC> (not included) or after max_new_tokens.
    Returns a list of token ids. Recomputing the whole prefix each step is fine here."""
    raise NotImplementedError("exercise greedy_decode: implement it in lessons/exercises/student.py")


def next_token_loss(logits, ids, loss_mask):
    """The training loss: logits (B, T, V), ids (B, T), loss_mask (B, T) bool, True where token t is a scored target
    (never <bos>, <image> or padding; see toy_data/documents.py for what else is left out) -> scalar, the mean
    cross-entropy over the scored targets. The logits at position t-1 predict token t."""
    raise NotImplementedError("exercise next_token_loss: implement it in lessons/exercises/student.py")


def score_candidates(model, ids, images, candidates):
    """Close-ended scoring with a flamingo_min.Flamingo: ids (1, T) prompt, images (1, N, 3, H, W), candidates a list
    of token-id lists -> one float per candidate: log p(candidate | prompt, images), the sum of its tokens'
    log-probabilities, each given the prompt and the candidate's earlier tokens. The best answer scores highest."""
    raise NotImplementedError("exercise score_candidates: implement it in lessons/exercises/student.py")


def frame_input(module, features):
    """The resampler's input with the weights of `module` (a flamingo_min.resampler.FrameInput): features of clips
    (B, N, F, S, Dv) or of images (B, N, S, Dv), an image being a 1-frame clip -> (B*N, F*S, D): module.proj of each
    feature plus module.time[f], the temporal embedding of its frame f; each clip on its own row, frame by frame."""
    raise NotImplementedError("exercise frame_input: implement it in lessons/exercises/student.py")
