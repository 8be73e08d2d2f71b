"""One hint per exercise: `python main.py check NAME --hint`."""
HINTS = {
    "phi": "Mark the <image> positions with (input_ids == image_token_id), then a running count along the sequence "
           "(torch.cumsum) is exactly phi: it steps up at each image and stays until the next one.",
    "cross_attention_mask": "Build phi (B, T, 1), and the image index of every visual token: "
                            "torch.arange(num_images * tokens_per_image) // tokens_per_image + 1. Compare them with "
                            "== (only immediate) or <= (all previous). phi = 0 then matches nothing by itself.",
    "gated_xattn_forward": "sees = mask.any(-1, keepdim=True). Rows that see nothing make softmax over an empty set "
                           "(NaN): attend with mask | ~sees, then multiply the result by sees. "
                           "F.scaled_dot_product_attention takes a boolean attn_mask of shape (B, 1, T, M). "
                           "Remember both residuals, both tanh gates and layer.scale (it multiplies both gated "
                           "branches); the feed-forward uses relu(.)**2.",
    "resampler_attention": "lat = layer.ln_latents(latents); kv_in = torch.cat([layer.ln_media(x), lat], dim=1). "
                           "Split heads with rearrange(..., 'b s (h d) -> b h s d'), attend, merge heads, project "
                           "with layer.out, add to latents; then latents + layer.ff(layer.ln_ff(latents)).",
    "contrastive_loss": "Normalise both embeddings (F.normalize), logits = logit_scale.exp() * img @ txt.T, the "
                        "targets are torch.arange(B); average F.cross_entropy(logits, t) and "
                        "F.cross_entropy(logits.T, t).",
    "build_prompt": "Example.chunk() already writes one support chunk; chunk(with_image=False) a text-only one. "
                    "Join '<bos>', the chunks, '<image>' and the query's prefix with spaces, and strip the end.",
    "greedy_decode": "Loop: logits = model(ids, images=images)[0, -1]; set the banned tokens' logits to -inf; "
                     "tok = argmax; stop if tok is TOKENIZER.eoc_id; else append it to the output and to ids.",
    "next_token_loss": "Position t-1 predicts token t: line up logits[:, :-1] with ids[:, 1:] and the mask of those "
                       "targets, loss_mask[:, 1:]. Boolean indexing keeps only the scored ones; F.cross_entropy "
                       "then averages over them.",
    "score_candidates": "For each candidate: full = torch.cat([ids, candidate]); logp = log_softmax of "
                        "model(full, images=images)[0, :-1] (row t holds log p of token t+1). The candidate's tokens "
                        "sit at positions T.., so read rows T-1.. with gather, and sum.",
    "frame_input": "Give an image a frame axis first (features[:, :, None]). Then module.proj(features) + "
                   "module.time[:F, None]: the None makes time[f] broadcast over frame f's S features. Flatten with "
                   "rearrange(x, 'b n f s d -> (b n) (f s) d').",
}
