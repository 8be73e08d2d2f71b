"""Which text position may look at which image: the paper's phi and the cross-attention mask (section 2.3, Fig. 7).

Text carries an `<image>` token where each image stood. phi(t) is the 1-based index, within its row, of the last
`<image>` token at or before position t, and 0 where no image came before. The `<image>` token itself maps to its own
image, so it can carry that image's content forward for the text that follows.

In Flamingo a text token cross-attends only to the visual tokens of image phi(t), the immediately preceding one; it
still depends on every earlier image through the LM's causal self-attention. A token with phi = 0 sees no visual
token at all: its mask row is all False, and the cross-attention layer must output an exact zero there (xattn.py).

A row may hold several documents back to back: training packs short documents into one row, and a left-padded prompt
is a document of padding before the prompt's own. A document starts at each `<bos>` and at the first token after
padding; nothing reaches across a start (`document_starts`): no attention in the LM, no image in the mask below.

These are pure functions of the token ids; this file is the one place that knows how text maps to images.
Shapes: B batch, T text length, N images per row (the most in the batch), R visual tokens per image.
"""
import torch
import torch.nn.functional as F


def phi(input_ids: torch.Tensor, image_token_id: int) -> torch.Tensor:
    """(B, T) ids -> (B, T) long: index of the last <image> at or before each position, 1-based; 0 if none."""
    return (input_ids == image_token_id).long().cumsum(dim=-1)


def document_starts(input_ids: torch.Tensor, bos_id: int, pad_id: int) -> torch.Tensor:
    """(B, T) ids -> (B, T) long: the position where each token's document starts (its `<bos>`, or the first token
    after left padding; 0 for a row's first document)."""
    t = torch.arange(input_ids.shape[-1], device=input_ids.device)
    before = F.pad(input_ids[..., :-1], (1, 0), value=pad_id)                        # (B, T): the token before t
    opens = (input_ids == bos_id) | ((before == pad_id) & (input_ids != pad_id))
    return torch.where(opens, t, 0).cummax(dim=-1).values


def cross_attention_mask(input_ids: torch.Tensor, image_token_id: int, num_images: int, tokens_per_image: int,
                         only_immediate: bool = True, starts: torch.Tensor = None) -> torch.Tensor:
    """(B, T) ids -> (B, T, num_images * tokens_per_image) bool: True where text position t may attend visual token j.

    only_immediate=True: only the tokens of image phi(t) (the paper's choice). False: every image 1..phi(t) (the
    "attend to all previous images" ablation, Table 10); never a later image in either mode.
    starts (B, T), from document_starts: never an image of an earlier document in the row either.
    """
    p = phi(input_ids, image_token_id)[..., None]                                      # (B, T, 1)
    image_of = torch.arange(num_images * tokens_per_image, device=input_ids.device) // tokens_per_image + 1  # (N*R,)
    mask = (image_of == p) if only_immediate else (image_of <= p)                      # (B, T, N*R)
    if starts is not None:
        tags = (input_ids == image_token_id).long()
        earlier = (tags.cumsum(-1) - tags).gather(-1, starts)[..., None]               # (B, T, 1): images before
        mask = mask & (image_of > earlier)                                             # my document's start
    return mask
