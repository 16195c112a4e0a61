"""The codec trainer (`autosong codec train`): teach a small EnCodec-architecture codec to reconstruct music.

The model is transformers' `EncodecModel` (24 kHz, 320 samples a frame, 75 frames/s) with a
narrow config and a 1.5 kbps quantizer (2 codebooks x 1024). It learns from synth songs plus
the fixed reference signal, with reconstruction losses only (no discriminator): multi-scale
log-mel L1, multi-scale log-STFT L1 and waveform L1, plus the RVQ commitment term. The
codebooks are EMA k-means (the update EnCodec itself uses), with dead codes revived from the
batch. An untrained encoder's output is nearly constant over time, so quantizing from step 0
collapses every frame onto one code; the first `ae_warmup` of the steps therefore train a plain
autoencoder, then the codebooks are filled with real encoder frames (residuals for the second)
and quantization starts. The result is a codec directory (`config.json` + `model.safetensors`)
that `--codec DIR` reads everywhere. Measured in bench/RESULTS.md: on 2 CPU cores a few
thousand steps do not yet bring the melodies back (the decoder learns one steady tone in ~100
steps, but a mapping over many pitches and timbres takes far longer); it is meant for a GPU.
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from autosong.model.audio_features import mel_filterbank
from autosong.model.codec import save_spectral
from autosong.model.spectral_decoder import has_spectral_decoder, magnitude_loss
from autosong.train.codec.config import COLLAPSED_BELOW, CodecTrainConfig, codec_model
from autosong.train.codec.data import random_crops, training_audio
from autosong.train.codec.encoder_init import fourier_init, keep_signal_channel
from autosong.train.codec.vq import center_latents, quantize_train, seed_from_frames


# ---- losses ------------------------------------------------------------------------------
class SpectralLoss(torch.nn.Module):
    """Mean over FFT sizes of L1(log mel) + L1(mel) (timbre, loudness) and L1(log |STFT|) +
    L1(|STFT|) (pitch: a mel band spans several semitones at melody frequencies, an STFT bin of
    2048 points is 12 Hz). The log floor (1e-2) keeps near-silent bins from dominating."""

    def __init__(self, sample_rate: int, sizes=(256, 512, 1024, 2048), n_mels: int = 64):
        super().__init__()
        self.sizes = sizes
        for n in sizes:
            self.register_buffer(f"mel_{n}", mel_filterbank(n, min(n_mels, n // 4), sample_rate), persistent=False)
            self.register_buffer(f"win_{n}", torch.hann_window(n), persistent=False)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """pred/target [B, N] -> scalar."""
        total = pred.new_zeros(())
        for n in self.sizes:
            spec = lambda x: torch.stft(x, n, n // 4, window=getattr(self, f"win_{n}"), return_complex=True).abs()  # noqa: E731
            mel = getattr(self, f"mel_{n}")
            p_lin, t_lin = spec(pred), spec(target)  # [B, F, frames]
            p, t = mel @ p_lin, mel @ t_lin  # [B, mels, frames]
            total = total + (torch.log(p + 1e-2) - torch.log(t + 1e-2)).abs().mean() + (p - t).abs().mean()
            if n >= 512:
                total = total + (torch.log(p_lin + 1e-2) - torch.log(t_lin + 1e-2)).abs().mean() \
                    + (p_lin - t_lin).abs().mean()
        return total / len(self.sizes)



# ---- the loop ---------------------------------------------------------------------------
def _codec_loss(model, wav, quantizing: bool, spectral: SpectralLoss, cfg: CodecTrainConfig, n_q: int, gen):
    """(loss, spectral term, L1 term, commitment, codes) of one batch of audio [B, N]. Before the
    quantizer starts, the decoder reads the encoder's frames as they are."""
    emb = model.encoder(wav[:, None])  # [B, D, F]
    if not quantizing:
        q, commit, codes = emb, emb.mean((0, 2)).pow(2).mean(), torch.zeros(n_q, 1)
    else:
        q, commit, codes = quantize_train(model, emb, n_q, cfg.ema_decay, cfg.dead_fraction, gen)
    if has_spectral_decoder(model):  # magnitudes only: the phase is reconstructed at decoding
        spec = magnitude_loss(model.decoder.log_magnitudes(q), wav, model.decoder.cfg)
        l1 = torch.zeros(())
    else:
        recon = model.decoder(q)[:, 0, : wav.shape[1]]  # [B, N]
        spec = spectral(recon, wav)
        l1 = (recon - wav).abs().mean()
    return spec + l1 + cfg.commitment * commit, spec, l1, commit, codes


def _finish_and_save(model, cfg: CodecTrainConfig, clips, crop: int, step: int, last: bool, history: list[dict],
                     out: Path) -> None:
    """Centre the latents (and, at the end, keep the Fourier encoder's signal channel), then save."""
    model.eval()
    center_latents(model, clips, crop, np.random.default_rng([cfg.seed, step]))
    if last and cfg.encoder_init == "fourier":
        keep_signal_channel(model)
    model.train()
    _save(model, cfg, history, out)


def train_codec(cfg: CodecTrainConfig, out_dir: str | Path, log=lambda line: print(line, flush=True)) -> dict:
    """Train and save to `out_dir` (config.json, model.safetensors, train.json). Returns the log."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    device = torch.device("cuda" if cfg.device == "auto" and torch.cuda.is_available() else
                          "cpu" if cfg.device == "auto" else cfg.device)
    model = codec_model(cfg).to(device)
    sr, hop = model.config.sampling_rate, model.config.hop_length
    n_q = model.quantizer.get_num_quantizers_for_bandwidth(1.5)
    clips = training_audio(cfg, sr, log)
    crop = int(cfg.crop_seconds * sr) // hop * hop
    if cfg.encoder_init == "fourier":
        fourier_init(model, clips, crop, np.random.default_rng([cfg.seed, 1]))
    spectral = SpectralLoss(sr).to(device)
    params = list(model.encoder.parameters()) + list(model.decoder.parameters())
    opt = torch.optim.Adam(params, lr=cfg.lr, betas=(0.9, 0.999))
    rng, gen = np.random.default_rng(cfg.seed), torch.Generator().manual_seed(cfg.seed)
    history = []
    warmup = int(cfg.ae_warmup * cfg.steps)
    budget = cfg.minutes * 60  # > 0: the schedule (learning rate, warm-up) follows the clock
    t0 = time.time()
    step, quantizing = 0, False
    model.train()
    while True:
        step += 1
        progress = (time.time() - t0) / budget if budget else step / cfg.steps  # the schedule's clock, 0..1
        last = progress >= 1 if budget else step == cfg.steps
        lr = cfg.lr_min + 0.5 * (cfg.lr - cfg.lr_min) * (1 + math.cos(math.pi * min(1.0, progress)))
        for g in opt.param_groups:
            g["lr"] = lr
        first_quantized = not quantizing and (progress > cfg.ae_warmup if budget else step > warmup)
        if first_quantized:
            seed_from_frames(model, clips, n_q, crop, rng, gen, fair=cfg.batch * crop / hop / 1024)
            quantizing = True
        wav = random_crops(clips, cfg.batch, crop, rng).to(device)  # [B, N]
        loss, spec, l1, commit, codes = _codec_loss(model, wav, quantizing, spectral, cfg, n_q, gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        if step % 50 == 0 or last or first_quantized:
            used = [int(torch.unique(c).numel()) for c in codes]
            row = {"step": step, "loss": loss.item(), "spectral": spec.item(), "l1": l1.item(),
                   "commit": commit.item(), "codes_used": used, "lr": lr, "elapsed_s": time.time() - t0}
            history.append(row)
            log(f"step {step:5d}  loss {row['loss']:.3f}  spectral {row['spectral']:.3f}  l1 {row['l1']:.4f}  "
                f"commit {row['commit']:.4f}  codes in batch {used}  {row['elapsed_s']:.0f} s")
        if step % cfg.save_every == 0 or last:
            _finish_and_save(model, cfg, clips, crop, step, last, history, Path(out_dir))
        if last:
            break
    used = history[-1]["codes_used"] if history else []
    if used and min(used) < COLLAPSED_BELOW:
        log(f"warning: the codec's last batch used {used} distinct codes per codebook (of 1024): it has collapsed, "
            f"and a model trained on its codes learns nothing. Train longer or on more songs (--songs, --data), "
            f"and check `autosong pipeline inspect` on data built with it")
    return {"config": cfg.to_dict(), "history": history}


def _save(model, cfg: CodecTrainConfig, history: list[dict], out: Path) -> None:
    import shutil
    import tempfile

    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:  # complete files or none
        device = next(model.parameters()).device
        model.eval().to("cpu")
        if has_spectral_decoder(model):
            save_spectral(model, tmp)
        else:
            model.save_pretrained(tmp)
        model.train().to(device)
        (Path(tmp) / "train.json").write_text(json.dumps({"config": cfg.to_dict(), "history": history}, indent=2))
        for f in Path(tmp).iterdir():
            shutil.move(str(f), out / f.name)
