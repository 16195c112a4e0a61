"""EnCodec as AutoSong's audio tokenizer: 24 kHz mono waveform <-> int16 codes [C, T].

Wraps transformers' `EncodecModel` (never the `encodec` package, which drags torchaudio in).
Long audio is encoded and decoded in frame-aligned windows with left context, so memory stays
bounded for whole songs; EnCodec's convolutions and LSTMs are causal, so a window that sees a
few seconds of past audio produces the same codes as one pass over the whole song.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from autosong.manifests.codec_identity import CodecIdentity
from autosong.manifests.errors import AutoSongError
from autosong.model.spectral_decoder import SpectralDecoder, SpectralDecoderConfig
from autosong.model.time_major_encoder import TimeMajorEncoder

HUB_ID = "facebook/encodec_24khz"
TEST_SOURCE = "test"
TINY_SOURCE = "tiny"  # the trained offline codec shipped in the package (spectral decoder)
TINY_DIR = Path(__file__).resolve().parent / "codecs" / "tiny"
SPECTRAL_FORMAT = "autosong-spectral-codec-v1"  # config.json's "format" for a spectral-decoder codec
SAMPLE_RATE = 24_000
BANDWIDTH = 1.5  # kbps -> 2 codebooks of 1024 codes at 75 frames/s


class CodecUnavailable(AutoSongError):
    """The codec's weights cannot be loaded (no network, bad directory, wrong model)."""


@dataclass
class CodecConfig:
    source: str = HUB_ID  # hub id, local directory (e.g. from `autosong codec train`), "tiny" or "test"
    bandwidth: float = BANDWIDTH
    window_seconds: float = 10.0  # audio encoded/decoded per pass
    context_seconds: float = 2.0  # left context each window sees, then discards


def _test_encodec_config():
    from transformers import EncodecConfig

    # Same architecture and frame rate as encodec_24khz (ratios 8*5*4*2 = 320 samples/frame),
    # narrower so that tests and the laptop demo run in seconds.
    return EncodecConfig(num_filters=8, hidden_size=64, num_lstm_layers=1)


def reference_signal(seconds: float = 30.0, sr: int = SAMPLE_RATE) -> np.ndarray:
    """A fixed, music-like signal (notes with harmonics, chirps, noise bursts) for seeding codebooks."""
    rng = np.random.default_rng(1234)
    n = int(seconds * sr)
    out = np.zeros(n, dtype=np.float64)
    note_len = sr // 8
    t = np.arange(note_len) / sr
    env = np.minimum(1.0, t * 200) * np.exp(-t * 6)
    for start in range(0, n - note_len, note_len):
        f0 = 55.0 * 2 ** (rng.integers(0, 60) / 12)
        harmonics = rng.random(6) ** 2
        tone = sum(a * np.sin(2 * np.pi * f0 * (k + 1) * t) for k, a in enumerate(harmonics))
        if rng.random() < 0.25:
            tone = tone + rng.standard_normal(note_len) * rng.random()
        out[start : start + note_len] += env * tone * rng.uniform(0.05, 0.6)
    return (out / (np.abs(out).max() + 1e-9) * 0.8).astype(np.float32)


def seed_codebooks(model, num_quantizers: int) -> None:
    """Fill each RVQ codebook with encoder frames of the reference signal (residuals after the
    previous codebooks): transformers leaves them at zero, which maps every frame to code 0."""
    gen = torch.Generator().manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # reduction order depends on threads: one thread, one answer
    try:
        _seed_codebooks_from_reference(model, num_quantizers, gen)
    finally:
        torch.set_num_threads(threads)


def _seed_codebooks_from_reference(model, num_quantizers: int, gen: torch.Generator) -> None:
    with torch.no_grad():
        wav = torch.from_numpy(reference_signal())[None, None]
        # ~2,250 frames, encoded in 10 s pieces to bound memory; more frames than codes, so the
        # residuals that seed the next codebook are not all zero
        pieces = wav.split(10 * SAMPLE_RATE, dim=-1)
        residual = torch.cat([model.encoder(p) for p in pieces], dim=-1)[0].T  # [frames, D]
        for layer in model.quantizer.layers[:num_quantizers]:
            book = layer.codebook
            pick = torch.randperm(residual.shape[0], generator=gen)[: book.codebook_size]
            vectors = residual[pick]
            if vectors.shape[0] < book.codebook_size:  # fewer frames than codes: jitter copies
                reps = math.ceil(book.codebook_size / vectors.shape[0])
                vectors = vectors.repeat(reps, 1)[: book.codebook_size]
                vectors = vectors + 1e-3 * torch.randn(vectors.shape, generator=gen)
            vectors = torch.round(vectors * 1024) / 1024  # robust to last-bit differences across CPUs
            book.embed.copy_(vectors)
            book.embed_avg.copy_(vectors)
            book.cluster_size.fill_(1.0)
            codes = book.encode(residual[None])[0]
            residual = residual - book.decode(codes)


# The config fields that change the codes; bookkeeping fields (name, dtype, version) do not.
_ARCHITECTURE_KEYS = (
    "target_bandwidths", "sampling_rate", "audio_channels", "normalize", "chunk_length_s", "overlap",
    "hidden_size", "num_filters", "num_residual_layers", "upsampling_ratios", "norm_type", "kernel_size",
    "last_kernel_size", "residual_kernel_size", "dilation_growth_rate", "use_causal_conv", "pad_mode",
    "compress", "num_lstm_layers", "trim_right_ratio", "codebook_size", "codebook_dim", "use_conv_shortcut",
)


def _sha256_json(d: dict) -> str:
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()


def _weights_sha256(model) -> str:
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


# ---- codecs whose decoder predicts magnitudes (model/spectral_decoder.py) -------------------
def spectral_encodec(encodec_config: dict, decoder_config: SpectralDecoderConfig):
    """EnCodec's encoder and residual VQ with a `SpectralDecoder` in place of its decoder."""
    from transformers import EncodecConfig, EncodecModel

    model = EncodecModel(EncodecConfig(**encodec_config))
    model.decoder = SpectralDecoder(decoder_config)
    return model


def save_spectral(model, directory: str | os.PathLike) -> None:
    """config.json (the EnCodec config and the decoder's) + model.safetensors, nothing pickled.
    Floating-point tensors are stored in fp16 (half the file; loaded back as fp32, the shipped
    codec's pitch accuracy and mel distance did not move at the third digit)."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    config = {"format": SPECTRAL_FORMAT, "encodec": model.config.to_dict(), "decoder": model.decoder.cfg.to_dict()}
    (directory / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True))
    state = {k: (v.half() if v.is_floating_point() else v).detach().cpu().contiguous()
             for k, v in model.state_dict().items()}
    save_file(state, str(directory / "model.safetensors"))


def load_spectral(directory: Path, config: dict):
    from safetensors.torch import load_file

    model = spectral_encodec(config["encodec"], SpectralDecoderConfig(**config["decoder"]))
    weights = directory / "model.safetensors"
    if not weights.is_file():
        raise CodecUnavailable(f"--codec {directory}: no model.safetensors beside its config.json")
    try:
        model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in load_file(str(weights)).items()})
    except (RuntimeError, OSError) as err:  # a truncated file, or weights of another shape
        raise CodecUnavailable(f"--codec {directory}: cannot load model.safetensors ({err}); "
                               f"write it again with `autosong codec train --out {directory}`") from err
    return model


def _spectral_config(directory: Path) -> dict | None:
    """The directory's config.json when it describes a spectral-decoder codec, else None."""
    try:
        config = json.loads((directory / "config.json").read_text())
    except (OSError, ValueError):
        return None
    return config if isinstance(config, dict) and config.get("format") == SPECTRAL_FORMAT else None


class Codec:
    """EnCodec tokenizer. `encode(wav, sr) -> codes` int16 [C, T]; `decode(codes) -> wav` float32 [N]."""

    def __init__(self, model, config: CodecConfig):
        mc = model.config
        if mc.audio_channels != 1 or mc.normalize or mc.chunk_length_s is not None:
            raise CodecUnavailable(
                f"codec {config.source!r} is not a 24 kHz mono EnCodec (channels={mc.audio_channels}, "
                f"normalize={mc.normalize}); use {HUB_ID!r}, a local copy of it, or --codec test"
            )
        self.model = model.eval()
        self.config = config
        self.time_major = TimeMajorEncoder.of(model)  # the same encoder as products, where its shape allows
        self.spectral = isinstance(model.decoder, SpectralDecoder)  # decodes magnitudes, phase over the whole song
        self.sample_rate: int = mc.sampling_rate
        self.hop_length: int = mc.hop_length
        self.frame_rate: int = mc.frame_rate
        self.codebook_size: int = mc.codebook_size
        self.num_codebooks: int = model.quantizer.get_num_quantizers_for_bandwidth(config.bandwidth)
        cfg = {k: v for k, v in mc.to_dict().items() if k in _ARCHITECTURE_KEYS}
        cfg["bandwidth"] = config.bandwidth
        if self.spectral:
            cfg["decoder"] = model.decoder.cfg.to_dict()
        self.identity = CodecIdentity(config.source, _sha256_json(cfg), _weights_sha256(model))

    # ---- loading -------------------------------------------------------------------------
    @classmethod
    def load(cls, source: str = HUB_ID, **overrides) -> "Codec":
        """Load from a hub id, a local directory (`save_pretrained` layout, or a spectral-decoder
        codec that `autosong codec train` writes), "tiny" (the trained codec in the package) or
        "test" (seeded random weights)."""
        from transformers import EncodecModel

        config = CodecConfig(source=source, **overrides)
        if source == TINY_SOURCE:
            return cls(load_spectral(TINY_DIR, _spectral_config(TINY_DIR)), config)
        if source == TEST_SOURCE:
            torch.manual_seed(0)
            model = EncodecModel(_test_encodec_config())
            n_q = model.quantizer.get_num_quantizers_for_bandwidth(config.bandwidth)
            seed_codebooks(model, n_q)
            return cls(model, config)
        path = Path(source).expanduser()
        if path.exists() and not path.is_dir():
            raise CodecUnavailable(f"--codec {source}: a file, expected a directory with config.json")
        spectral = _spectral_config(path) if path.is_dir() else None
        if spectral is not None:
            return cls(load_spectral(path, spectral), config)
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # a "Loading weights" bar per actor would bury the build's own
        try:
            model = EncodecModel.from_pretrained(str(path) if path.is_dir() else source)
        except (OSError, ValueError) as err:
            raise CodecUnavailable(
                f"cannot load codec {source!r} ({type(err).__name__}). With no network: --codec DIR (a "
                f"copy of {HUB_ID} saved with `save_pretrained`, or a codec you trained on your music with "
                f"`autosong codec train --data SONGS --out DIR`), or --codec tiny (shipped, trained on synth songs "
                f"only: the toy corpus; measure it on yours with `autosong codec check SONGS --codec tiny`)."
            ) from err
        return cls(model, config)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def to(self, device: str | torch.device) -> "Codec":
        """Run encode/decode there (the codec stays fp32: its quantizer's distances need it)."""
        self.model.to(device)
        if self.time_major is not None:
            self.time_major = self.time_major.to(device)
        return self

    def save(self, directory: str | os.PathLike) -> None:
        """Write the weights as a directory that `Codec.load(directory)` reads offline."""
        if self.spectral:
            save_spectral(self.model, directory)
            return
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        self.model.save_pretrained(str(directory))

    # ---- encode / decode -----------------------------------------------------------------
    def _windows(self, n_frames: int):
        """(start, stop) frame ranges covering [0, n_frames), each with its left context start."""
        step = max(1, int(self.config.window_seconds * self.frame_rate))
        ctx = int(self.config.context_seconds * self.frame_rate)
        for start in range(0, n_frames, step):
            yield max(0, start - ctx), start, min(n_frames, start + step)

    @torch.inference_mode()
    def encode(self, wav: np.ndarray | torch.Tensor, sample_rate: int) -> np.ndarray:
        """Args: wav float [N] mono at the codec's rate. Returns: codes int16 [C, ceil(N / hop)]."""
        return self.encode_many([wav], sample_rate, batch_windows=1)[0]

    @torch.inference_mode()
    def encode_many(self, wavs: list, sample_rate: int, batch_windows: int = 16) -> list[np.ndarray]:
        """Several songs at once: windows of equal length, from any of the songs, go through the
        encoder together, up to `batch_windows` per forward (what keeps a GPU busy). Returns each
        song's codes int16 [C, T], as `encode` would. batch_windows=1 is `encode`'s exact,
        one-window-per-forward path; batched convolutions may pick other float reductions, so
        near-tie codes can differ (measured on CPU in tests/model/test_codec.py)."""
        if sample_rate != self.sample_rate:
            raise ValueError(f"encode expects {self.sample_rate} Hz audio, got {sample_rate} Hz; resample first")
        hop, outs, jobs = self.hop_length, [], {}  # jobs: chunk length -> [(song, ctx_start, start, stop)]
        padded = []
        for i, wav in enumerate(wavs):
            wav = torch.as_tensor(np.asarray(wav, dtype=np.float32))
            if wav.ndim != 1:
                raise ValueError(f"encode expects mono audio [N], got shape {tuple(wav.shape)}")
            n_frames = math.ceil(wav.shape[0] / hop)
            padded.append(torch.nn.functional.pad(wav, (0, n_frames * hop - wav.shape[0])))
            outs.append(np.empty((self.num_codebooks, n_frames), dtype=np.int16))
            for ctx_start, start, stop in self._windows(n_frames):
                jobs.setdefault(stop - ctx_start, []).append((i, ctx_start, start, stop))
        for windows in jobs.values():
            for b in range(0, len(windows), max(1, batch_windows)):
                group = windows[b : b + max(1, batch_windows)]
                chunk = torch.stack([padded[i][c * hop : e * hop] for i, c, _, e in group])[:, None]
                fast = self.time_major is not None and self.time_major.fits(chunk.shape[-1])
                emb = (self.time_major if fast else self.model.encoder)(chunk.to(self.device))  # [G, D, frames]
                codes = self.model.quantizer.encode(emb, self.config.bandwidth).cpu().numpy()  # [C, G, frames]
                for g, (i, c, start, stop) in enumerate(group):
                    outs[i][:, start:stop] = codes[:, g, start - c :].astype(np.int16)
        return outs

    @torch.inference_mode()
    def decode(self, codes: np.ndarray | torch.Tensor) -> np.ndarray:
        """Args: codes int [C, T]. Returns: wav float32 [T * hop] at the codec's rate."""
        codes = torch.as_tensor(np.asarray(codes), dtype=torch.long)
        if codes.ndim != 2 or codes.shape[0] != self.num_codebooks:
            raise ValueError(f"decode expects codes [{self.num_codebooks}, T], got {tuple(codes.shape)}")
        if codes.min() < 0 or codes.max() >= self.codebook_size:
            raise ValueError(f"codes must lie in [0, {self.codebook_size}), got [{codes.min()}, {codes.max()}]")
        n_frames = codes.shape[1]
        out = np.empty(n_frames * self.hop_length, dtype=np.float32)
        hop = self.hop_length
        codes = codes.to(self.device)
        # a spectral decoder reconstructs phase across the song: windows would break it at their edges
        windows = [(0, 0, n_frames)] if self.spectral else self._windows(n_frames)
        for ctx_start, start, stop in windows:
            emb = self.model.quantizer.decode(codes[:, None, ctx_start:stop])  # [1, D, frames]
            wav = self.model.decoder(emb)[0, 0]  # [samples]
            out[start * hop : stop * hop] = wav[(start - ctx_start) * hop : (stop - ctx_start) * hop].float().cpu().numpy()
        return out
