"""Robust audio decoding: any file FFmpeg reads -> float32 mono at the codec's rate.

Decodes packet by packet so a damaged region costs only its packets, converts and averages any
number of channels itself (FFmpeg's own downmix scales by 1/sqrt(2), and crashes on unnamed
layouts), stops at the length limit, rejects NaN/inf samples, clamps, resamples with soxr's
high-quality filter, and rejects files that decode to much less than their header promises
(truncated downloads).
"""
from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from autosong.manifests.errors import AutoSongError

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


MAX_SOURCE_RATE = 384_000
_FILE_ERRNOS = (errno.ENOENT, errno.EACCES, errno.EPERM, errno.EISDIR, errno.ELOOP)
# Integer PCM -> [-1, 1): the scale of each packed/planar sample format FFmpeg decodes to.
_PCM_SCALE = {"u8": 128.0, "s16": 32768.0, "s32": 2.0**31, "s64": 2.0**63}


def _frame_to_mono(frame) -> tuple[np.ndarray, int]:
    """One decoded frame -> (float32 mono [n] as the mean of its channels, channels). Our own
    conversion and down-mix: FFmpeg's resampler scales stereo by 1/sqrt(2) and crashes (SIGSEGV)
    on layouts it has no name for, such as 8 unnamed channels."""
    channels = max(1, len(frame.layout.channels))
    samples = frame.to_ndarray()
    if not frame.format.is_planar:  # packed: [1, n * channels], interleaved
        samples = samples.reshape(-1, channels).T
    kind = frame.format.name.removesuffix("p")
    if kind in _PCM_SCALE:
        offset = 128.0 if kind == "u8" else 0.0
        samples = (samples.astype(np.float64) - offset) / _PCM_SCALE[kind]
    elif kind not in ("flt", "dbl"):
        raise AudioDecodeError(f"not a readable audio file (sample format {frame.format.name})")
    return samples.mean(axis=0, dtype=np.float64).astype(np.float32), channels


def _decode_native(path: Path, stop_seconds: float | None) -> tuple[np.ndarray, int, int, int, list]:
    """Returns (float32 mono [N], rate, channels, bad packets, skipped regions), decoding no
    further than `stop_seconds` (a little past it) so that no file costs unbounded memory. A
    skipped region is (seconds decoded before it, bytes lost): packets that do not decode (the
    demuxer hands a damaged stretch over as one), or bytes it jumped over to resynchronise."""
    import av

    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as err:
        if isinstance(err, OSError) and err.errno in _FILE_ERRNOS:  # the file, not its contents
            raise OSError(err.errno, os.strerror(err.errno), str(path)) from None
        raise AudioDecodeError(f"not a readable audio file ({type(err).__name__}: {err})") from err
    with container:
        if not container.streams.audio:
            raise AudioDecodeError("not a readable audio file (no audio stream)")
        stream = container.streams.audio[0]
        rate = stream.codec_context.sample_rate or stream.rate
        if not rate:
            raise AudioDecodeError("not a readable audio file (the audio stream has no sample rate)")
        if rate > MAX_SOURCE_RATE:
            raise AudioDecodeError(f"sample rate {rate} Hz is above the {MAX_SOURCE_RATE} Hz this decoder accepts")
        stop = None if stop_seconds is None else int(stop_seconds * rate) + 1
        chunks: list[np.ndarray] = []
        bad = channels = decoded = 0
        skipped, next_pos = [], None
        packets = container.demux(stream)
        while stop is None or decoded < stop:
            try:
                packet = next(packets)
            except StopIteration:
                break
            except av.error.FFmpegError:  # a broken container past this point: keep what we have
                bad += 1
                break
            if packet.pos is not None and packet.pos >= 0 and packet.size:
                if next_pos is not None and packet.pos - next_pos > 4 * packet.size:
                    skipped.append((decoded / rate, packet.pos - next_pos))
                next_pos = packet.pos + packet.size
            try:
                for frame in packet.decode():
                    mono, n_channels = _frame_to_mono(frame)
                    chunks.append(mono)
                    channels, decoded = max(channels, n_channels), decoded + len(mono)
            except av.error.FFmpegError:
                bad += 1
                if skipped and skipped[-1][0] == decoded / rate:  # the same damaged stretch
                    skipped[-1] = (skipped[-1][0], skipped[-1][1] + (packet.size or 0))
                else:
                    skipped.append((decoded / rate, packet.size or 0))
        if not chunks:
            raise AudioDecodeError("not a readable audio file (no packet decodes)")
        return np.concatenate(chunks), int(rate), channels, bad, skipped


def load_audio(path: str | Path, sample_rate: int = 24_000, max_seconds: float | None = None,
               limit_seconds: float | None = None) -> DecodedAudio:
    """Decode `path` to mono float32 at `sample_rate`; keep at most `max_seconds` (a crop), and
    refuse a file longer than `limit_seconds` (never decoding more than that). Raises
    AudioDecodeError with a reason in words."""
    import soxr

    path = Path(path)
    if path.stat().st_size == 0:
        raise AudioDecodeError("the audio file is empty (0 bytes)")
    header = header_duration(path)
    if limit_seconds is not None and max_seconds is None and header and header > limit_seconds:
        raise AudioDecodeError(f"too long: {header:.0f} s, above the {limit_seconds:g} s limit (--max-song-seconds; "
                               "or crop with --max-seconds)")
    stop = max_seconds if max_seconds is not None else limit_seconds
    mono, rate, channels, bad, skipped = _decode_native(path, stop)
    decoded_seconds = len(mono) / rate
    if max_seconds is None and limit_seconds is not None and decoded_seconds > limit_seconds:
        raise AudioDecodeError(f"too long: more than the {limit_seconds:g} s limit (--max-song-seconds; "
                               "or crop with --max-seconds)")
    if header and decoded_seconds < min(TRUNCATION_TOLERANCE * header - 0.5, stop or np.inf):
        lost = f"decodes to {decoded_seconds:.1f} s but its header says {header:.1f} s"
        inside = [(at, size) for at, size in skipped if at < decoded_seconds - 0.05]  # audio follows
        if inside:  # damage inside a whole file, not a cut-off end
            seconds_per_byte = header / max(1, path.stat().st_size)
            where = ", ".join(f"{at:.1f}-{at + size * seconds_per_byte:.1f} s" for at, size in inside[:3])
            raise AudioDecodeError(f"undecodable region{'s' if len(inside) > 1 else ''} at {where}: {lost} "
                                   f"(more than {1 - TRUNCATION_TOLERANCE:.0%} of it lost)")
        raise AudioDecodeError(f"truncated: {lost}")
    if decoded_seconds < 0.5:
        raise AudioDecodeError(f"too short: {decoded_seconds:.2f} s of audio")
    if max_seconds is not None:
        mono = mono[: int(max_seconds * rate)]
    bad_values = int(np.count_nonzero(~np.isfinite(mono)))
    if bad_values:
        raise AudioDecodeError(f"{bad_values} samples are NaN or infinite ({100 * bad_values / len(mono):.3g} % of "
                               "the audio): re-export the file")
    if rate != sample_rate:
        mono = soxr.resample(mono, rate, sample_rate, quality="HQ")
    mono = np.clip(mono, -1.0, 1.0).astype(np.float32)
    return DecodedAudio(mono, sample_rate, rate, channels, bad)


def write_wav(path: str | Path, wav: np.ndarray, sample_rate: int) -> None:
    """16-bit PCM WAV, encoded in memory and written by Python, so that an unwritable path or a
    full disk is a plain OSError naming the file (libsndfile says only "System error")."""
    import io

    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, np.clip(wav, -1, 1), sample_rate, subtype="PCM_16", format="WAV")
    Path(path).write_bytes(buf.getvalue())
