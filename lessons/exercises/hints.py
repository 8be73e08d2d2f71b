"""Three hints per exercise, from least to most given away: a nudge (what to think about), the idea (the method in
words), then code (close to the answer). `python main.py check NAME --hint` shows the next one you have not seen;
`--hint N` shows hint N. The number of the last one shown is kept per exercise in hints_seen.json, beside the file
checked (lessons/exercises/student.py), which git ignores; `--hint 1` starts again."""
import json
import os

HINTS = {
    "phi": (
        "phi(t) is a count. Of what, and over which positions?",
        "Mark where the <image> tokens are, then count them along the sequence: the count steps up at each <image> "
        "(the image's own position included) and stays until the next one.",
        "(input_ids == image_token_id).long() marks them; .cumsum(-1) of that is phi."),
    "cross_attention_mask": (
        "Each visual token belongs to one image. Which images may text position t see, in terms of phi(t)?",
        "Give every visual token j its image index (1-based, like phi), then compare it with phi of every text "
        "position: equal for only the immediate image, at most phi for all previous ones. Text with phi 0 then "
        "matches no image by itself.",
        "p = phi(input_ids, image_token_id)[..., None]; image_of = torch.arange(num_images * tokens_per_image) // "
        "tokens_per_image + 1; return (image_of == p) if only_immediate else (image_of <= p)."),
    "gated_xattn_forward": (
        "Two residual branches, each multiplied by a tanh gate and by layer.scale. What should a token that sees no "
        "image get from the attention branch?",
        "Attention: queries from ln_q(x), keys and values from ln_kv(media), split into heads, masked, merged, "
        "layer.out. A row of the mask that is all False would be softmax over nothing (NaN): let such rows attend "
        "anything, then zero their output. Add it to x gated; then the feed-forward (relu squared) reads that sum, "
        "gated too.",
        "sees = mask.any(-1, keepdim=True); y = F.scaled_dot_product_attention(q, k, v, attn_mask=(mask | "
        "~sees)[:, None]); x = x + torch.tanh(layer.alpha_xattn) * layer.scale * layer.out(merged y * sees); return "
        "x + torch.tanh(layer.alpha_dense) * layer.scale * layer.ff_out(F.relu(layer.ff_in(layer.ln_ff(x))) ** 2)."),
    "resampler_attention": (
        "Who asks (the queries), and what can they look at (the keys and values)? The paper's Fig. 5 has the answer.",
        "Queries come from the normalised latents; keys and values from the normalised features AND the normalised "
        "latents, concatenated along the sequence. Attend with layer.n_heads heads, project with layer.out, add to "
        "the latents; then a residual feed-forward on ln_ff of the result.",
        "lat = layer.ln_latents(latents); kv_in = torch.cat([layer.ln_media(x), lat], dim=1); split heads with "
        "rearrange(..., 'b s (h d) -> b h s d'), F.scaled_dot_product_attention, merge, latents = latents + "
        "layer.out(...); return latents + layer.ff(layer.ln_ff(latents))."),
    "contrastive_loss": (
        "Each image's right caption is the one with the same index. What is a classifier over the batch's captions, "
        "and what would make it symmetric?",
        "Cosine similarities (normalise both sides) times the inverse temperature exp(logit_scale) are the logits of "
        "a B-way classification for every image, and, transposed, for every text. The target of row i is i. Average "
        "the two cross-entropies.",
        "logits = logit_scale.exp() * F.normalize(image_emb, dim=-1) @ F.normalize(text_emb, dim=-1).T; t = "
        "torch.arange(len(logits)); return (F.cross_entropy(logits, t) + F.cross_entropy(logits.T, t)) / 2."),
    "build_prompt": (
        "Write out one 2-shot prompt by hand: where do '<bos>', the supports, the query and its '<image>' go?",
        "'<bos>', each support's chunk, then '<image>' and the query's prefix, joined by spaces. With no support the "
        "text examples stand in, as text only. One scene per '<image>', in order: the supports', then the query's.",
        "chunks = [e.chunk() for e in support] if support else [e.chunk(with_image=False) for e in text_examples]; "
        "text = ' '.join(['<bos>', *chunks, '<image>', query.prefix]).strip(); scenes = [e.scene for e in support] "
        "+ [query.scene]."),
    "greedy_decode": (
        "One token at a time: which token do you take, which may never be taken, what happens to it next, and when "
        "do you stop?",
        "Each step: the model's logits at the last position, with <pad>, <bos> and <image> made impossible; take the "
        "argmax; stop (without keeping it) at <EOC>; otherwise keep it and append it to the ids for the next step. "
        "At most max_new_tokens steps.",
        "logits = model(ids, images=images)[0, -1].clone(); logits[[TOKENIZER.pad_id, TOKENIZER.bos_id, "
        "TOKENIZER.image_id]] = float('-inf'); tok = int(logits.argmax()); break if tok == TOKENIZER.eoc_id; else "
        "out.append(tok); ids = torch.cat([ids, torch.tensor([[tok]])], dim=1)."),
    "next_token_loss": (
        "Which position's logits predict token t? And loss_mask marks targets, or predictors?",
        "Line the logits up with the token each one predicts (drop the last position, and the first token as a "
        "target), line the mask up with the targets, keep only the scored ones and average their cross-entropy.",
        "scored = loss_mask[:, 1:]; F.cross_entropy(logits[:, :-1][scored], ids[:, 1:][scored])."),
    "score_candidates": (
        "The probability of a whole candidate is a product over its tokens. Where in the model's output is each "
        "token's probability?",
        "Append the candidate to the prompt and run the model once; log_softmax gives log-probabilities; row t "
        "predicts token t+1, so the candidate's tokens at positions T.. are read from rows T-1..; sum them.",
        "full = torch.cat([ids, torch.tensor([cand])], dim=1); logp = F.log_softmax(model(full, "
        "images=images)[0, :-1].float(), -1); score = logp[T - 1:].gather(-1, full[0, T:, None]).sum().item()."),
    "frame_input": (
        "Every feature of frame f must say it is from frame f. And an image is a clip of how many frames?",
        "Project every feature, add the temporal embedding of its frame (the same for all S features of that "
        "frame), then flatten each clip's frames, frame by frame, into one row. Give images a frame axis first.",
        "if features.dim() == 4: features = features[:, :, None]; x = module.proj(features) + "
        "module.time[:features.shape[2], None]; return rearrange(x, 'b n f s d -> (b n) (f s) d')."),
}
KINDS = ("a nudge", "the idea", "code")
SEEN = "hints_seen.json"   # beside the exercise file checked; git ignores it


def _state(path):
    try:
        with open(path) as f:
            state = json.load(f)
    except (OSError, ValueError):   # no file yet, or a damaged one: start from the first hint
        return {}
    return state if isinstance(state, dict) else {}


def hint(name, number=None, exercise_file=None):
    """Hint `number` of exercise `name` (default: the one after the last shown, or the last again), as text. The
    number shown is remembered in hints_seen.json beside `exercise_file` (default lessons/exercises/student.py)."""
    from flamingo_min.errors import FlamingoError
    from flamingo_min.checkpoints import write_text
    from . import STUDENT
    path = os.path.join(os.path.dirname(os.path.abspath(exercise_file or STUDENT)), SEEN)
    state, last = _state(path), len(HINTS[name])
    n = number or min(int(state.get(name, 0)) + 1, last)
    if not 1 <= n <= last:
        raise FlamingoError(f"exercise {name} has hints 1 to {last}: `python main.py check {name} --hint N`")
    try:
        write_text(json.dumps({**state, name: n}, indent=1) + "\n", path)
    except FlamingoError:   # a folder we may not write to: the hint still shows, only the count is not kept
        pass
    after = f"`python main.py check {name} --hint` gives hint {n + 1}, {KINDS[n]}" if n < last else \
        f"that was the last; `python main.py check {name} --hint 1` shows the first again"
    return f"hint {n} of {last} for {name}, {KINDS[n - 1]}: {HINTS[name][n - 1]}\n({after})"
