"""AutoSong from Python: a trained model, its codec (and autoencoder), on one device.

    from autosong.model.api import AutoSong
    song = AutoSong.load("runs/tiny", device="auto")          # a GPU with bf16 where there is one
    out = song.generate("[verse]\\n我爱你\\n...", "pop", seconds=30)
    out.save("song.wav")                                        # or out.audio[0], out.codes[0]
    print(song.lrc(out.codes[0], lyrics))                       # where it sings each line (LRC)

`autosong generate` and the eval's song writer go through this object, so a notebook gets exactly
what the command line gets.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from autosong.manifests.errors import AutoSongError
from autosong.model.audio import write_wav
from autosong.model.bundle import Bundle, load_bundle
from autosong.model.code_notes import code_notes
from autosong.model.codec import Codec
from autosong.model.devices import resolve_device, resolve_dtype
from autosong.model.edit import Edit, EditedSong, SourceSong, edit_song, prior_anchors
from autosong.model.key_shift import normalising_shift, pitch_shift
from autosong.model.generate import autoencoder_for, codec_for, generate_codes, real_time_factor, text_batch
from autosong.model.line_times import LineTimes, attention_map, keep_known, line_times, sung_lines
from autosong.model.lrc import LrcLine, write_lrc
from autosong.model.lyrics import default_tokenizer
from autosong.model.sampler import SamplingConfig
from autosong.model.song_key import key_name, parse_key
from autosong.model.sung_rates import line_units, weak_alignment


@dataclass
class Songs:
    """What `AutoSong.generate` returns: one entry per song."""

    audio: list[np.ndarray]  # float32 [samples] at sample_rate
    codes: np.ndarray        # int16 [N, C, frames]: the EnCodec codes the audio was decoded from
    sample_rate: int
    timing: dict = field(default_factory=dict)

    def save(self, path: str | Path) -> list[Path]:
        """song.wav (one song) or song_0.wav, song_1.wav ... (several); returns the paths."""
        paths = song_paths(path, len(self.audio))
        paths[0].parent.mkdir(parents=True, exist_ok=True)
        for p, wav in zip(paths, self.audio):
            write_wav(p, wav, self.sample_rate)
        return paths


def song_paths(path: str | Path, count: int) -> list[Path]:
    """Where `count` songs saved at `path` go: the path itself for one, path_0, path_1 ... for several."""
    path = Path(path)
    return [path] if count == 1 else [path.with_name(f"{path.stem}_{i}{path.suffix}") for i in range(count)]


def lrc_text(lines: list[str], times: LineTimes) -> str:
    """AutoSong.line_times' answer as an LRC file's text."""
    return write_lrc([LrcLine(start, text) for start, text in zip(times.starts, lines)])


class AutoSong:
    """A trained model ready to sing. `load` resolves the device and dtype; `generate` takes
    lyrics, genres and a length in seconds and returns audio and codes."""

    def __init__(self, bundle: Bundle, codec: Codec, autoencoder: Bundle | None = None):
        self.bundle, self.codec, self.autoencoder = bundle, codec, autoencoder

    @classmethod
    def load(cls, checkpoint: str | Path, device: str = "auto", dtype: str = "auto",
             codec: str | None = None, adapter: str | Path | None = None) -> "AutoSong":
        """checkpoint: a run directory or its export; device: auto | cpu | cuda[:N]; dtype: auto |
        fp32 | bf16 | fp16 (the transformer's; the codec and autoencoder stay fp32); codec: where
        to load the codec from if not the source recorded in the bundle (same weights); adapter:
        a fine-tune's RUN/export/adapter, merged onto this checkpoint (its base)."""
        dev = resolve_device(device)
        bundle = load_bundle(checkpoint, device=dev, dtype=resolve_dtype(dtype, dev), adapter=adapter)
        return cls.from_bundle(bundle, codec)

    @classmethod
    def from_bundle(cls, bundle: Bundle, codec: str | None = None) -> "AutoSong":
        """A bundle already loaded (on its device): add its codec and autoencoder there."""
        dev = next(bundle.model.parameters()).device
        return cls(bundle, codec_for(bundle, codec).to(dev), autoencoder_for(bundle))

    @property
    def device(self) -> torch.device:
        return next(self.bundle.model.parameters()).device

    @property
    def genres(self) -> list[str]:
        return list(self.bundle.genres)

    @property
    def sample_rate(self) -> int:
        return self.codec.sample_rate

    def code_notes_for(self, sampling: SamplingConfig) -> np.ndarray | None:
        """The note each codebook-0 code sounds, where `sampling` holds notes (model/code_notes.py);
        None when it does not, or for a latent model, whose positions are not codec codes."""
        return code_notes(self.codec) if sampling.note_hold > 0 and self.autoencoder is None else None

    def generate(self, lyrics: str | list[str], genres: str | list[str], seconds: float,
                 sampling: SamplingConfig | None = None, prompt_audio: np.ndarray | None = None,
                 progress: bool = False, song_seconds: float | None = None, key: str | None = None) -> Songs:
        """lyrics, genres: one song, or lists of equal length (one batch); seconds: each song's
        length (longer than the training window is fine); prompt_audio: mono float32 at
        `sample_rate`, continued by every song; song_seconds: the whole song's length when only its
        first `seconds` are wanted (the lyrics then keep the pace of the whole song); key: the key
        every song is sung in, as 'A minor' (a model.song_key model; None: the one its lyrics call for)."""
        lyrics = [lyrics] if isinstance(lyrics, str) else list(lyrics)
        genres = [genres] * len(lyrics) if isinstance(genres, str) else list(genres)
        if len(genres) != len(lyrics):
            raise ValueError(f"{len(lyrics)} lyrics but {len(genres)} genres")
        keys = self._sung_keys(lyrics, genres, key)
        prompt = None if prompt_audio is None else self.encode(prompt_audio, keys[0] if keys else None)
        sampling = sampling or SamplingConfig()
        codes, timing = generate_codes(self.bundle, lyrics, genres, seconds, sampling, self.codec.frame_rate, prompt,
                                       progress, self.autoencoder, code_notes=self.code_notes_for(sampling),
                                       song_seconds=song_seconds, song_key=keys)
        t0 = time.perf_counter()
        audio = [self.decode(c, k) for c, k in zip(codes, keys or [None] * len(codes))]
        timing["seconds_decode"] = time.perf_counter() - t0
        timing["rtf"] = real_time_factor(timing)
        return Songs(audio, codes, self.codec.sample_rate, timing)

    def key_for(self, lyrics: str, genre: str) -> str | None:
        """The key the model sings these lyrics in unless told (its key head's, named as
        model/song_key.key_name does), or None for a model trained without keys."""
        signature = self.key_signature_for(lyrics, genre)
        return None if signature is None else key_name(signature)

    def _sung_keys(self, lyrics: list[str], genres: list[str], key: str | None) -> list[int] | None:
        """The key signature each song is sung in, as the sampler takes them: `key` for all when
        given; else, for a key-normalised model (whose songs are moved there from C), the key head's,
        as the sampler would choose them itself; else None (the sampler chooses)."""
        if key is not None:
            return [parse_key(key)] * len(lyrics)
        if not (self.bundle.key_normalised and self.bundle.model.cfg.song_key):
            return None
        return self._key_head(lyrics, genres)

    def key_signature_for(self, lyrics: str, genre: str) -> int | None:
        """key_for's signature (0-11), or None for a model trained without keys."""
        return self._key_head([lyrics], [genre])[0] if self.bundle.model.cfg.song_key else None

    @torch.no_grad()
    def _key_head(self, lyrics: list[str], genres: list[str]) -> list[int]:
        """The key signature the key head calls for, per song (a model.song_key model)."""
        batch = text_batch(self.bundle, lyrics, genres, self.device)
        return self.bundle.model.text.key_logits(batch["text_ids"], batch["text_mask"]).argmax(-1).tolist()

    def decode(self, codes: np.ndarray, key: int | None = None) -> np.ndarray:
        """EnCodec codes [C, frames] -> float32 audio at `sample_rate`. A key-normalised model's
        codes sound in C: the audio is moved from there to `key` (a signature, model/song_key.py;
        None: left in C)."""
        return pitch_shift(self.codec.decode(codes), self.sample_rate, -self._normalising_shift(key))

    def encode(self, wav: np.ndarray, key: int | None = None) -> np.ndarray:
        """Mono float32 audio at `sample_rate` -> EnCodec codes [C, frames]; for a key-normalised
        model, of the audio moved to C from `key` (its signature; None: not moved), as its
        training songs were."""
        return self.codec.encode(pitch_shift(wav, self.sample_rate, self._normalising_shift(key)), self.sample_rate)

    def _normalising_shift(self, key: int | None) -> int:
        """Semitones from `key` to C in this model's codes (0 but for a key-normalised model)."""
        return normalising_shift(key) if self.bundle.key_normalised and key is not None and key >= 0 else 0

    def require_alignment(self) -> Bundle:
        """The bundle, once it is known to have alignment heads (else one line that says how to get them)."""
        bundle = self.bundle
        if self.autoencoder is not None:
            raise AutoSongError("line times are read from a sound-stage model; this one models latent codes")
        if bundle.alignment is None:
            raise AutoSongError(f"{bundle.path} has no alignment heads to read line times from: run "
                                f"`autosong eval --checkpoint {bundle.path} --data OUT` on data whose held-out songs "
                                f"have lyrics.lrc, which chooses them")
        return bundle

    def line_times(self, codes: np.ndarray, lyrics: str, genre: str = "unknown", known: list[float] | None = None,
                   song_seconds: float | None = None, keys: tuple[int, ...] = ()) -> tuple[list[str], LineTimes]:
        """Where the song of these EnCodec codes [C, frames] sings each line of `lyrics` (the lines
        that hold words), read from the bundle's alignment heads teacher-forced over the codes:
        (the lines, their LineTimes). The codes may be generated or encoded from a recording.
        known: the starts (s) of the first lines, when known (an edit's kept lines and its cut,
        EditedSong.known_starts): kept as they are, and the prior is pinned through them as the
        edit generated; the heads time the lines after them. song_seconds: the codes are the
        opening of a song this long (generate's song_seconds): read with its length as the
        prior's, and only the lines that start in the opening are timed. keys: for a model.song_key
        model, the key signatures the audio is heard in (model/song_key.key_signatures of a recording;
        a song generated in a given key, that key), read as training reads them; none: the key the
        lyrics call for, the one a song generated without a key is sung in."""
        bundle = self.require_alignment()
        ids = text_batch(bundle, [lyrics], [genre])["text_ids"][0].numpy()
        lines, slots = sung_lines(lyrics, default_tokenizer())
        if not lines:
            raise AutoSongError("the lyrics have no words to time")
        rate = self.codec.frame_rate
        pinned = [(t * rate, slot) for t, slot in prior_anchors(self, lyrics, known or []) or []]
        whole = None if song_seconds is None else round(song_seconds * rate)
        opening = whole is not None and whole > codes.shape[-1]
        amap = attention_map(bundle.model, codes, ids, bundle.alignment.heads, pinned, whole, heard=keys)
        times = line_times(amap, slots, rate, offsets=bundle.alignment.offsets, opening=opening)
        times.starts = keep_known(times.starts, (known or [])[: len(lines)])
        times.doubt = weak_alignment(times.starts, codes.shape[-1] / rate, line_units(ids, slots)[: len(times.starts)],
                                     bundle.alignment.usual_rates)
        return lines, times

    def lrc(self, codes: np.ndarray, lyrics: str, genre: str = "unknown", known: list[float] | None = None,
            keys: tuple[int, ...] = ()) -> str:
        """line_times as an LRC file's text."""
        return lrc_text(*self.line_times(codes, lyrics, genre, known, keys=keys))

    def edit(self, source: SourceSong, edit: Edit, new_lyrics: str | None = None,
             sampling: SamplingConfig | None = None) -> EditedSong:
        """Keep part of `source` and regenerate the rest (model/edit.py): from a line, past the end,
        or the backing alone. Deterministic for sampling.seed."""
        return edit_song(self, source, edit, new_lyrics, sampling)
