"""What each training stage minimises, and what it logs beside the loss: the models compute
logits (or, for an autoencoder, its reconstruction terms); the scoring lives here, one row per
stage in LOSSES, keyed by the stage's name as eval/stages.py keys its evals."""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from autosong.model.autoencoders import code_usage, compression_factor
from autosong.model.padding import SongBatch
from autosong.model.patterns import PatternBatch
from autosong.model.transformer import FuturePrediction, SongKey


def token_ce(model, logits: torch.Tensor, batch: PatternBatch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The next-token loss of a SoundTransformer's logits [B, S, P, V]: the mean CE over real
    targets (weighted by codebook, model.codebook_weights), and per-codebook CE sums and target
    counts [C] (for logging)."""
    targets = batch.targets.masked_fill(~batch.valid, 0)  # delay fill is EMPTY, masked below
    ce = F.cross_entropy(logits.float().flatten(0, 2), targets.flatten(), reduction="none")
    ce = ce.view(batch.targets.shape) * batch.valid  # [B, S, P]
    C = model.cfg.num_codebooks
    cb = model.pattern.target_codebooks(batch.codebook, ce.shape[0], ce.shape[1]).expand_as(ce)
    per_cb_sum = torch.zeros(C, device=ce.device).index_add_(0, cb.flatten(), ce.flatten())
    per_cb_n = torch.zeros(C, device=ce.device).index_add_(0, cb.flatten(), batch.valid.flatten().float())
    if not model.cfg.codebook_weights:
        return ce.sum() / batch.valid.sum().clamp(min=1), per_cb_sum, per_cb_n
    w = torch.tensor(model.cfg.codebook_weights, device=ce.device)
    return (per_cb_sum * w).sum() / (per_cb_n * w).sum().clamp(min=1e-9), per_cb_sum, per_cb_n


def future_ce(future: FuturePrediction) -> torch.Tensor:
    """The auxiliary loss of model.future_frames: CE of codebook 0 some frames ahead, over the
    frames inside the window."""
    ce = F.cross_entropy(future.logits.float().flatten(0, 2), future.targets.flatten(), reduction="none")
    return (ce * future.valid.flatten()).sum() / future.valid.sum().clamp(min=1)


def token_model_loss(model, batch: SongBatch, step: int):
    """(loss, per-codebook CE sums [C], token counts [C], extras for logging) of a token or latent model."""
    cfg = model.cfg
    extras, song_key = {}, None
    if cfg.song_key:  # the key head learns the key heard; the song is sung in it (of those heard, the head's choice)
        key_logits = model.text.key_logits(batch.text_ids, batch.text_mask)
        extras["key_ce"], song_key = key_ce(key_logits, batch.song_keys), SongKey.sung(key_logits, batch.song_keys)
    out = model(batch.codes, batch.lengths, batch.frame_offset, batch.text_ids, batch.text_mask, batch.bert,
                batch.bert_mask, song_frames=batch.song_frames, line_frames=batch.line_frames,
                line_slots=batch.line_slots, with_future=bool(cfg.future_frames), song_key=song_key)
    loss, ce_sums, counts = token_ce(model, out[0], out[1])
    if len(out) == 3:
        extras["future_ce"] = future_ce(out[2])
        loss = loss + cfg.future_weight * extras["future_ce"]
    if cfg.song_key:
        loss = loss + cfg.key_weight * extras["key_ce"]
    return loss, ce_sums, counts, {name: value.detach() for name, value in extras.items()}


def key_ce(logits: torch.Tensor, heard: torch.Tensor) -> torch.Tensor:
    """The key head's loss: -log of the probability it gives the key signatures the build heard
    (heard [B, 12] bool: a song whose audio fits several as well may be any of them), over the
    songs whose key was heard (zero when none was)."""
    log_p = logits.float().log_softmax(-1)
    known = heard.any(-1)
    allowed = heard | ~known[:, None]  # an unknown song's row reads every key, then weighs 0 (no -inf, no NaN)
    nll = -log_p.masked_fill(~allowed, float("-inf")).logsumexp(-1)
    return torch.where(known, nll, 0.0).sum() / known.sum().clamp(min=1)


def token_model_metrics(extras: dict, counts, model_cfg) -> dict:
    """Metrics beyond loss and CE for a logged step, from the last micro-batch's extras."""
    return {name: float(extras[name]) for name in ("future_ce", "key_ce") if name in extras}


def autoencoder_loss(model, batch: SongBatch, step: int):
    """An autoencoder scores its own reconstruction (model/autoencoders.py), in the same four parts."""
    return model(batch.codes, batch.lengths, step)


def autoencoder_metrics(extras: dict, counts, model_cfg) -> dict:
    """Reconstruction accuracy per EnCodec codebook, code usage, compression."""
    if "usage" not in extras:
        return {}
    acc = (extras["correct"].float().cpu() / counts.clamp(min=1)).tolist()
    perplexity, dead = code_usage(extras["usage"].float().cpu())
    out = {**{f"acc_q{c}": a for c, a in enumerate(acc)}, "code_perplexity": perplexity, "dead_fraction": dead,
           "compression": compression_factor(model_cfg)}
    if "tau" in extras:
        out["tau"] = float(extras["tau"])
    return out


# stage name -> (loss(model, batch, step), metrics(extras, counts, model config) for the log)
LOSSES: dict[str, tuple[Callable, Callable]] = {
    "sound": (token_model_loss, token_model_metrics),
    "latent": (token_model_loss, token_model_metrics),
    "gumbel_ae": (autoencoder_loss, autoencoder_metrics),
    "vqvae": (autoencoder_loss, autoencoder_metrics),
}
