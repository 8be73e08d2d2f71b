"""The vision encoder and its contrastive pretraining (paper section 2.1, App. B.1.3).

The paper pretrains an NFNet-F6 with a CLIP-style two-way contrastive loss against a BERT text encoder, both sides
mean-pooled and projected to a shared space, then keeps only the vision side, frozen. Ours, at toy scale:

- VisionEncoder: a 4-layer CNN. Its final feature grid, flattened, is what the resampler reads: (B, S, Dv) with
  S = (H/4) * (W/4), so S grows with resolution. Two coordinate channels (x, y) are appended to the input pixels
  (CoordConv): the resampler has no spatial position embedding (paper), and our captions name positions, so the
  features themselves must say where they are.
- TextEncoder: a bag of word embeddings, mean-pooled over real tokens, then an MLP. Our captions name each attribute
  with its own word, so order adds nothing and the image embedding must encode every attribute linearly.
- contrastive_loss: image-to-text plus text-to-image cross-entropy with a learnable temperature. Identical captions in
  one batch (two scenes both "three red circles") are all counted as positives instead of as false negatives.

Shapes: B batch, H x W image, S spatial features, Dv vision width, T caption length, E shared embedding width.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange


class VisionEncoder(nn.Module):
    def __init__(self, width=64):
        super().__init__()
        self.width = width
        c = width // 2
        norm = lambda ch: nn.GroupNorm(8, ch)  # per-image normalisation: fast to train, no batch statistics
        self.net = nn.Sequential(
            nn.Conv2d(3 + 2, c, 3, padding=1), norm(c), nn.GELU(),
            nn.Conv2d(c, width, 3, stride=2, padding=1), norm(width), nn.GELU(),        # H/2
            nn.Conv2d(width, width, 3, padding=1), norm(width), nn.GELU(),
            nn.Conv2d(width, width, 3, stride=2, padding=1),                            # H/4
        )

    def forward(self, images):
        """images (B, 3, H, W) in [0, 1] -> features (B, S, Dv)."""
        if images.dim() != 4 or images.shape[1] != 3 or min(images.shape[-2:]) < 16:
            raise ValueError(f"images must be (B, 3, H, W) with H, W >= 16, got {tuple(images.shape)}")
        B, _, H, W = images.shape
        ys = torch.linspace(-1, 1, H, device=images.device, dtype=images.dtype)
        xs = torch.linspace(-1, 1, W, device=images.device, dtype=images.dtype)
        coords = torch.stack(torch.meshgrid(ys, xs, indexing="ij")).expand(B, 2, H, W)  # (B, 2, H, W)
        grid = self.net(torch.cat([images * 2 - 1, coords], dim=1))                      # (B, Dv, H/4, W/4)
        return rearrange(grid, "b d h w -> b (h w) d")                                    # (B, S, Dv)


class TextEncoder(nn.Module):
    def __init__(self, vocab_size, width=64, pad_id=0):
        super().__init__()
        self.pad_id = pad_id
        self.embed = nn.Embedding(vocab_size, width)
        self.mlp = nn.Sequential(nn.Linear(width, width), nn.GELU(), nn.Linear(width, width))

    def forward(self, ids):
        """ids (B, T) -> (B, width): mean of the real tokens' embeddings, then an MLP."""
        real = (ids != self.pad_id).float()[..., None]                                    # (B, T, 1)
        pooled = (self.embed(ids) * real).sum(1) / real.sum(1).clamp(min=1)
        return self.mlp(pooled)


def contrastive_loss(image_emb, text_emb, logit_scale, same_text=None):
    """Symmetric InfoNCE. image_emb, text_emb (B, E); same_text (B, B) bool marks pairs with identical captions."""
    image_emb, text_emb = F.normalize(image_emb, dim=-1), F.normalize(text_emb, dim=-1)
    logits = logit_scale.exp().clamp(max=100) * image_emb @ text_emb.T                    # (B, B)
    if same_text is None:
        same_text = torch.eye(len(logits), dtype=torch.bool, device=logits.device)
    target = same_text.float() / same_text.float().sum(1, keepdim=True)                  # rows sum to 1
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


class ContrastiveModel(nn.Module):
    """Vision encoder + text encoder + projections + temperature: what stage `vision` trains."""

    def __init__(self, vocab_size, vision_width=64, embed_dim=64, pad_id=0):
        super().__init__()
        self.vision = VisionEncoder(vision_width)
        self.text = TextEncoder(vocab_size, embed_dim, pad_id)
        self.image_proj = nn.Linear(vision_width, embed_dim)
        self.text_proj = nn.Linear(embed_dim, embed_dim)
        self.logit_scale = nn.Parameter(torch.tensor(2.659))  # log(1 / 0.07), CLIP's initial temperature

    def embed_images(self, images):
        return self.image_proj(self.vision(images).mean(1))   # mean-pool the feature grid, as the paper does

    def embed_texts(self, ids):
        return self.text_proj(self.text(ids))

    def loss(self, images, ids, gather=None):
        """images (B_r, 3, H, W) and the captions of the whole batch, ids (B, T). gather concatenates every process's
        image embeddings (B_r, E) -> (B, E) under torchrun (distributed.gather): each image's negatives are the
        whole batch's captions, as with one process."""
        same = (ids[:, None, :] == ids[None, :, :]).all(-1)                                  # (B, B)
        image_emb = self.embed_images(images)
        image_emb = gather(image_emb) if gather is not None else image_emb
        return contrastive_loss(image_emb, self.embed_texts(ids), self.logit_scale, same)
