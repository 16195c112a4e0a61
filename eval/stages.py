"""How each training stage is evaluated (`evaluate_stage`, `format_stage`: a table keyed by the stage's
name, model/stages.py), and the eval of the two-stage path. Token models: eval/evaluate.py's CE
table and conditioning gains. Autoencoders: reconstruction CE and accuracy per EnCodec codebook,
code usage (perplexity, dead fraction), compression. Latent models: besides their own per-channel
CE (evaluate.py), the end-to-end CE of EnCodec tokens: the latent model's teacher-forced argmax
latents, decoded by the autoencoder, scored against the song's true EnCodec tokens."""
from __future__ import annotations

import math

import numpy as np
import torch

from autosong.eval.evaluate import evaluate, format_table, load_split
from autosong.manifests.codec_identity import require_same_codec
from autosong.model.autoencoders import code_usage, compression_factor
from autosong.model.bundle import Bundle
from autosong.model.generate import autoencoder_for


def _summary(ce_sum, n, correct) -> dict:
    names = [f"q{c}" for c in range(len(n))]
    ce = ce_sum / np.maximum(n, 1)
    mean = float(ce_sum.sum() / max(n.sum(), 1))
    return {"ce": {**dict(zip(names, ce.tolist())), "mean": mean},
            "bits": {**dict(zip(names, (ce / math.log(2)).tolist())), "mean": mean / math.log(2)},
            "accuracy": {**dict(zip(names, (correct / np.maximum(n, 1)).tolist())),
                         "mean": float(correct.sum() / max(n.sum(), 1))}}


@torch.no_grad()
def evaluate_autoencoder(bundle: Bundle, data: str, split: str = "val", max_songs: int | None = None) -> dict:
    card, songs = load_split(data, split, max_songs)
    require_same_codec(card.codec, bundle.codec, f"{data}'s codes and those the autoencoder {bundle.path} was trained on",
                       "evaluate on data built with the same codec")
    ae = bundle.model.eval()
    C, K, W = ae.cfg.num_codebooks, ae.cfg.latent_vocab, ae.cfg.window_frames
    ce_sum, n, correct = np.zeros(C), np.zeros(C), np.zeros(C)
    dev = next(ae.parameters()).device
    usage = torch.zeros(ae.cfg.latent_channels, K)
    for song in songs:
        for start in range(0, song.codes.shape[1], W):
            window = torch.from_numpy(song.codes[:, start : start + W].astype(np.int64))[None].to(dev)
            _, s, cnt, extra = ae(window, torch.tensor([window.shape[-1]], device=dev))
            ce_sum += s.float().cpu().numpy()
            n += cnt.float().cpu().numpy()
            correct += extra["correct"].float().cpu().numpy()
            ids = ae.encode(window)[0].cpu()  # [L, T']
            for ch in range(ids.shape[0]):
                usage[ch] += torch.bincount(ids[ch], minlength=K).float()
    perplexity, dead = code_usage(usage)
    return {"stage": bundle.stage, "checkpoint": str(bundle.path), "data": str(data), "split": split,
            "songs": len(songs), "reconstruction": _summary(ce_sum, n, correct),
            "code_perplexity": perplexity, "dead_fraction": dead, "compression": compression_factor(ae.cfg)}


@torch.no_grad()
def end_to_end(bundle: Bundle, data: str, split: str = "val", max_songs: int | None = None,
               ae: Bundle | None = None) -> dict:
    """`ae`: the latent model's autoencoder if already loaded (else loaded here)."""
    ae = ae or autoencoder_for(bundle)
    _, latent_songs = load_split(data, split, max_songs)
    _, audio_songs = load_split(bundle.parent["data"], split, None)
    audio = {s.key: s.codes for s in audio_songs}
    model, stride = bundle.model.eval(), ae.model.cfg.stride
    dev = next(model.parameters()).device
    C = ae.model.cfg.num_codebooks
    ce_sum, n, correct = np.zeros(C), np.zeros(C), np.zeros(C)
    W = model.cfg.window_frames
    for song in latent_songs:
        ids = torch.from_numpy(song.text.astype(np.int64))[None].to(dev)
        mask = torch.ones_like(ids, dtype=torch.bool)
        for start in range(0, song.codes.shape[1], W):
            window = torch.from_numpy(song.codes[:, start : start + W].astype(np.int64))[None].to(dev)
            T = window.shape[-1]
            logits, pb = model(window, torch.tensor([T], device=dev), torch.tensor([start], device=dev), ids, mask,
                               song_frames=torch.tensor([song.codes.shape[1]], device=dev))
            predicted = model.pattern.to_frames(logits.argmax(-1), T)  # [1, L, T']
            recon = ae.model.decode_logits(predicted.to(next(ae.model.parameters()).device)).cpu()  # [1, T' * stride, C, V]
            truth = torch.from_numpy(audio[song.key][:, start * stride : (start + T) * stride].astype(np.int64))
            frames = min(truth.shape[1], recon.shape[1])
            logp = recon[0, :frames].float().log_softmax(-1)  # [frames, C, V]
            target = truth[:, :frames].T  # [frames, C]
            ce_sum += (-logp.gather(-1, target[..., None])[..., 0]).sum(0).numpy()
            correct += (logp.argmax(-1) == target).float().sum(0).numpy()
            n += frames
    return {"songs": len(latent_songs), **_summary(ce_sum, n, correct)}


def format_autoencoder(result: dict) -> str:
    r = result["reconstruction"]
    keys = [k for k in r["ce"] if k != "mean"] + ["mean"]
    lines = [f"{result['stage']} on {result['split']}: {result['songs']} songs, compression x{result['compression']:.1f}, "
             f"code perplexity {result['code_perplexity']:.1f}, dead codes {result['dead_fraction']:.1%}",
             f"{'codebook':<9}{'recon CE':>9}{'top-1':>8}"]
    lines += [f"{k:<9}{r['ce'][k]:9.3f}{r['accuracy'][k]:8.1%}" for k in keys]
    return "\n".join(lines)


def evaluate_latent(bundle: Bundle, data: str, split: str, max_songs: int | None, seed: int) -> dict:
    """A latent model's own CE and gains, and the end-to-end CE of the EnCodec tokens its latents
    decode to."""
    e2e = {"ae_kind": bundle.parent["ae_kind"], **end_to_end(bundle, data, split, max_songs)}
    return {**evaluate(bundle, data, split, max_songs, seed), "end_to_end": e2e}


def format_latent(result: dict) -> str:
    e2e = result["end_to_end"]
    return (format_table(result) + f"\n\nend to end (latents -> {e2e['ae_kind']} decoder -> EnCodec "
            "tokens): CE " + ", ".join(f"{k} {v:.3f}" for k, v in e2e["ce"].items())
            + f", top-1 {e2e['accuracy']['mean']:.1%}")


def _evaluate_autoencoder(bundle, data, split, max_songs, seed):
    return evaluate_autoencoder(bundle, data, split, max_songs)


# stage name -> (evaluate(bundle, data, split, max_songs, seed) -> result, format(result) -> text)
EVALS = {
    "sound": (evaluate, format_table),
    "latent": (evaluate_latent, format_latent),
    "gumbel_ae": (_evaluate_autoencoder, format_autoencoder),
    "vqvae": (_evaluate_autoencoder, format_autoencoder),
}


def evaluate_stage(bundle: Bundle, data: str, split: str, max_songs: int | None, seed: int) -> dict:
    return EVALS[bundle.stage][0](bundle, data, split, max_songs, seed)


def format_stage(stage: str, result: dict) -> str:
    return EVALS[stage][1](result)
