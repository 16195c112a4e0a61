"""Robust audio decoding: any file FFmpeg reads -> float32 mono at the codec's rate.

Decodes packet by packet so a damaged region costs only its packets, averages channels (FFmpeg's
own downmix scales by 1/sqrt(2)), clamps, resamples with soxr's high-quality filter, and rejects
files that decode to much less than their header promises (truncated downloads).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from model.errors import AutoSongError

AUDIO_SUFFIXES = (".mp3", ".flac", ".wav", ".ogg")
TRUNCATION_TOLERANCE = 0.9  # decoded / header duration below this -> truncated


class AudioDecodeError(AutoSongError):
    """A file that yields no usable audio; the message says why in words."""


@dataclass
class DecodedAudio:
    wav: np.ndarray  # float32 [N] mono in [-1, 1]
    sample_rate: int
    source_rate: int
    channels: int
    header_seconds: float | None  # what the container's header claims
    bad_packets: int  # packets skipped as undecodable

    @property
    def seconds(self) -> float:
        return len(self.wav) / self.sample_rate


def header_duration(path: Path) -> float | None:
    """Duration from the file's header (mutagen), None if it has no readable header."""
    import mutagen

    try:
        info = mutagen.File(str(path))
    except (mutagen.MutagenError, OSError, ValueError):
        return None
    length = getattr(getattr(info, "info", None), "length", None)
    return float(length) if length else None


def _decode_native(path: Path) -> tuple[np.ndarray, int, int, int]:
    """Returns (float32 [channels, N], rate, channels, bad packets)."""
    import av

    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as err:
        raise AudioDecodeError(f"not a readable audio file ({type(err).__name__}: {err})") from err
    with container:
        if not container.streams.audio:
            raise AudioDecodeError("not a readable audio file (no audio stream)")
        stream = container.streams.audio[0]
        rate = stream.codec_context.sample_rate or stream.rate
        if not rate:
            raise AudioDecodeError("not a readable audio file (the audio stream has no sample rate)")
        to_float = av.AudioResampler(format="fltp")  # keeps layout and rate
        chunks: list[np.ndarray] = []
        bad = 0
        packets = container.demux(stream)
        while True:
            try:
                packet = next(packets)
            except StopIteration:
                break
            except av.error.FFmpegError:  # a broken container past this point: keep what we have
                bad += 1
                break
            try:
                for frame in packet.decode():
                    for planar in to_float.resample(frame):  # [channels, n] float32
                        chunks.append(planar.to_ndarray().reshape(len(planar.layout.channels), -1))
            except av.error.FFmpegError:
                bad += 1
        if not chunks:
            raise AudioDecodeError("not a readable audio file (no packet decodes)")
        width = max(c.shape[0] for c in chunks)
        chunks = [c if c.shape[0] == width else np.repeat(c[:1], width, axis=0) for c in chunks]
        return np.concatenate(chunks, axis=1), int(rate), width, bad


def load_audio(path: str | Path, sample_rate: int = 24_000, max_seconds: float | None = None) -> DecodedAudio:
    """Decode `path` to mono float32 at `sample_rate`. Raises AudioDecodeError with a reason."""
    import soxr

    path = Path(path)
    if path.stat().st_size == 0:
        raise AudioDecodeError("the audio file is empty (0 bytes)")
    native, rate, channels, bad = _decode_native(path)
    decoded_seconds = native.shape[1] / rate
    header = header_duration(path)
    if header and decoded_seconds < TRUNCATION_TOLERANCE * header - 0.5:
        raise AudioDecodeError(
            f"truncated: decodes to {decoded_seconds:.1f} s but its header says {header:.1f} s"
        )
    if decoded_seconds < 0.5:
        raise AudioDecodeError(f"too short: {decoded_seconds:.2f} s of audio")
    if max_seconds is not None:
        native = native[:, : int(max_seconds * rate)]
    mono = native.mean(axis=0)
    if rate != sample_rate:
        mono = soxr.resample(mono, rate, sample_rate, quality="HQ")
    mono = np.clip(np.nan_to_num(mono, nan=0.0, posinf=0.0, neginf=0.0), -1.0, 1.0).astype(np.float32)
    return DecodedAudio(mono, sample_rate, rate, channels, header, bad)


def write_wav(path: str | Path, wav: np.ndarray, sample_rate: int) -> None:
    import soundfile as sf

    sf.write(str(path), np.clip(wav, -1, 1), sample_rate, subtype="PCM_16")
