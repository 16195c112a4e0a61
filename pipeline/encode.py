"""The per-song work of a build, run inside Ray actors: lyrics -> ids (or BERT states), audio ->
decoded (in a child process: pipeline/decode_worker.py) -> the key signature heard in it
(model/song_key.py) -> moved to C under --key-normalise (model/key_shift.py) -> EnCodec codes.
Models load once per actor. A job comes in as a `SongJob`; what comes back is an `EncodedSong`, which says, for a song
that failed, the stage and the reason in words. It never raises, so one bad file cannot stop a build.
"""
from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, replace

import numpy as np

from autosong.manifests.codec_identity import CodecIdentity
from autosong.manifests.errors import AutoSongError, os_error_words
from autosong.manifests.sample_rows import META_FIELDS, SampleRow
from autosong.model.bert_text import BertLyrics
from autosong.model.codec import Codec
from autosong.model.key_shift import moved_to_c
from autosong.model.lyrics import default_tokenizer, weak_encoding_warning
from autosong.model.song_key import key_signatures
from autosong.pipeline.decode_worker import IsolatedDecoder
from autosong.pipeline.song_lyrics import SongLyrics, read_song_lyrics, refuse_past_the_end


FAULT_HOOK = "AUTOSONG_FAULT_DEVICE_ONCE"  # =PATH: the first encode in any actor that creates PATH raises a
                                            # CUDA error, so a test can prove the requeue without a GPU


class DeviceFault(Exception):
    """The GPU failed, not the song (a sticky CUDA error, or memory one window still exceeds)."""


def _on_the_device(err: RuntimeError) -> bool:
    text = str(err)
    return _out_of_memory(err) or any(w in text for w in ("CUDA", "cuDNN", "CUBLAS", "device-side assert"))


def _out_of_memory(err: RuntimeError) -> bool:
    return type(err).__name__ == "OutOfMemoryError" or "out of memory" in str(err).lower()


def _injected_device_fault() -> None:
    import os

    path = os.environ.get(FAULT_HOOK)
    if path:
        try:
            os.close(os.open(path, os.O_CREAT | os.O_EXCL))
        except FileExistsError:
            return
        raise RuntimeError("CUDA error: an illegal memory access was encountered (injected by " + FAULT_HOOK + ")")


def npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


@dataclass(frozen=True)
class CodecFacts:
    """What dataset.json records of the codec that encoded it."""

    identity: CodecIdentity
    frame_rate: int
    num_codebooks: int
    codebook_size: int

    @classmethod
    def of(cls, codec) -> "CodecFacts":
        return cls(codec.identity, codec.frame_rate, codec.num_codebooks, codec.codebook_size)


@dataclass(frozen=True)
class SongJob:
    """A song the build will encode, as the plan found it."""

    key: str
    source: str            # audio path relative to the corpus
    audio: str
    lyrics: str | None     # lyrics.txt, when the folder has one
    genre: str
    genre_slot: int
    genre_source: str
    audio_sha256: str
    lyrics_sha256: str
    content_sha256: str
    split: str
    lrc: str | None = None  # lyrics.lrc, when the folder has one (timed lyrics)


@dataclass
class EncodedSong:
    """What an encoder gives back for one job: the sample's files, or the stage that failed and why."""

    key: str
    ok: bool = False
    stage: str = ""            # the failing stage: lyrics | decode | encode | text
    reason: str = ""
    warning: str = ""          # built, but worth a line (a weak guess at the lyrics' encoding)
    codes: bytes = b""         # codes.npy
    text: bytes = b""          # text.npy
    bert: bytes = b""          # bert.npy ("" without BERT)
    lyrics: str = ""
    meta: dict | None = None   # the manifest row (without shard), codec identity, genre slot, BERT length
    decode_s: float = 0.0
    encode_s: float = 0.0

    def sample(self) -> dict:
        """The WebDataset sample the shard holds."""
        sample = {"__key__": self.key, "codes.npy": self.codes, "text.npy": self.text,
                  "lyrics.txt": self.lyrics, "meta.json": json.dumps(self.meta, ensure_ascii=False)}
        if self.bert:
            sample["bert.npy"] = self.bert
        return sample

    def row(self) -> dict:
        """The samples manifest's row, but for its shard."""
        return {f: self.meta[f] for f in META_FIELDS}


class SongEncoder:
    """One per actor (pipeline/encoder_pool.py), its models loaded in __init__."""

    def __init__(self, codec_source: str, text: str, max_seconds: float | None, limits: dict, device: str = "cpu",
                 key_normalise: bool = False):
        import torch

        # One intra-op thread per actor, always: float reductions (and so near-tie codes) depend on
        # the thread count, and a build must give the same codes whatever the cluster's shape.
        # Parallelism comes from actors, one per CPU. (GPU actors' codes may differ from CPU ones in
        # near-ties, as any two devices' float reductions do; a dataset mixing both stays valid.)
        torch.set_num_threads(1)
        self.codec = Codec.load(codec_source).to(device)  # cuda: the GPU Ray gave this actor (num_gpus)
        self.tokenizer = default_tokenizer()
        self.bert = None
        if text.startswith("bert:"):
            self.bert = BertLyrics(text.split(":", 1)[1])
        self.max_seconds = max_seconds
        self.limits = limits  # BuildConfig.limits(): max_song_seconds, max_text_len, max_lyrics_bytes
        self.decoder = IsolatedDecoder()  # a file that crashes FFmpeg kills this child, not the actor
        self.key_normalise = key_normalise  # move each song to C before encoding (BuildConfig.key_normalise)

    def codec_facts(self) -> "CodecFacts":
        return CodecFacts.of(self.codec)

    def encode_songs(self, songs: list[SongJob], batch_windows: int = 1) -> list[EncodedSong]:
        """One result per song, in order. The songs that decode are encoded together, equal
        windows batched up to `batch_windows` per forward (Codec.encode_many; 1 = exact)."""
        import time

        rows = [self._decode(song) for song in songs]
        ready = [(song, self._heard(row)) for song, row in zip(songs, rows) if row[1] is not None]
        if ready:
            t0 = time.perf_counter()
            try:
                codes = self._encode_audio([row[1].wav for _, row in ready], batch_windows)
            except (AutoSongError, ValueError, RuntimeError) as err:  # the song's own fault (a DeviceFault is not)
                if len(songs) > 1:  # again one song at a time, so the error lands on its own song
                    return [self.encode_songs([song], 1)[0] for song in songs]
                failed = ready[0][1][0]
                failed.stage, failed.reason = "encode", str(err) or type(err).__name__
                return [failed]
            seconds = time.perf_counter() - t0
            total = sum(len(row[1].wav) for _, row in ready)
            for (song, (out, audio, lyrics, keys, shift)), song_codes in zip(ready, codes):
                out.encode_s = seconds * len(audio.wav) / max(1, total)  # the batch's time, shared by length
                self._finish(out, song, audio, lyrics, song_codes, keys, shift)
        return [out for out, *_ in rows]

    def _encode_audio(self, wavs: list, batch_windows: int) -> list[np.ndarray]:
        """Codes of decoded songs. Out of GPU memory: the cache is freed and the songs encoded
        again with half the windows per forward, down to one. Any other CUDA error, or memory that
        one window still exceeds, is the device's fault and not the songs': a DeviceFault, which
        the pool answers by replacing this actor and encoding its songs again."""
        while True:
            try:
                _injected_device_fault()
                return self.codec.encode_many(wavs, self.codec.sample_rate, batch_windows)
            except RuntimeError as err:
                if not _on_the_device(err):
                    raise
                if _out_of_memory(err) and batch_windows > 1:
                    import torch

                    if torch.cuda.is_available():
                        torch.cuda.empty_cache()
                    batch_windows //= 2
                    continue
                raise DeviceFault(f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}") from err

    def _decode(self, song: SongJob):
        """(result, audio, SongLyrics); audio is None when the song already failed (result says why)."""
        import time

        out = EncodedSong(song.key)
        stage = "lyrics"
        limits = self.limits
        try:
            lyrics = read_song_lyrics(song.lyrics, song.lrc, limits["max_lyrics_bytes"],
                                      f"{limits['max_lyrics_bytes'] // 1000} kB for --max-text-len "
                                      f"{limits['max_text_len']}")
            if lyrics.weak:
                out.warning = weak_encoding_warning("lyrics.txt" if song.lyrics else "lyrics.lrc", lyrics)
            stage = "decode"
            t0 = time.perf_counter()
            audio = self.decoder(song.audio, self.codec.sample_rate, self.max_seconds, limits["max_song_seconds"])
            out.decode_s = time.perf_counter() - t0
            stage = "lyrics"
            if self.max_seconds is None:  # under --max-seconds the cut is deliberate: later lines go unsung
                refuse_past_the_end(lyrics, audio.seconds)
        except OSError as err:  # unreadable, vanished, a directory, ...
            out.stage, out.reason = stage, os_error_words(err)
            return out, None, None
        except (AutoSongError, ValueError, RuntimeError) as err:  # AudioDecodeError included
            out.stage, out.reason = stage, str(err) or type(err).__name__
            return out, None, None
        return out, audio, lyrics

    def _heard(self, decoded: tuple) -> tuple:
        """(result, audio, lyrics) -> (result, audio to encode, lyrics, key signatures heard, the
        semitones the audio was moved by: to C under key_normalise, else 0)."""
        out, audio, lyrics = decoded
        keys = key_signatures(audio.wav, audio.sample_rate)
        if not self.key_normalise:
            return out, audio, lyrics, keys, 0
        wav, shift = moved_to_c(audio.wav, audio.sample_rate, keys)
        return out, replace(audio, wav=wav), lyrics, keys, shift

    def _finish(self, out: EncodedSong, song: SongJob, audio, song_lyrics: SongLyrics, codes: np.ndarray,
                keys: tuple[int, ...], shift: int) -> None:
        """Lyrics -> ids (and BERT states), then the sample's fields; a failure fills the reason."""
        lyrics = song_lyrics.text
        try:
            ids = np.asarray(self.tokenizer.encode(lyrics, song.genre_slot), dtype=np.int32)
            limits = self.limits
            if len(ids) > limits["max_text_len"]:
                raise ValueError(f"the lyrics are {len(ids)} ids long, above the limit of {limits['max_text_len']} "
                                 "(--max-text-len; a model reads at most model.max_text_len)")
            states = self.bert.states(lyrics) if self.bert is not None else None
        except (AutoSongError, ValueError, RuntimeError) as err:
            out.stage, out.reason = "text", str(err) or type(err).__name__
            return
        codes_npy = npy_bytes(codes)
        sung = [t for t in song_lyrics.line_starts if t < audio.seconds]  # the lines the kept audio sings
        slots = song_lyrics.line_slots(self.tokenizer)[: len(sung)] or [-1] * len(sung)  # -1: not paired
        row = SampleRow(
            key=song.key, shard="", source=song.source, genre=song.genre, genre_source=song.genre_source,
            duration_s=round(audio.seconds, 4), frames=int(codes.shape[1]), text_len=int(len(ids)),
            audio_sha256=song.audio_sha256, lyrics_sha256=song.lyrics_sha256,
            codes_sha256=hashlib.sha256(codes_npy).hexdigest(), lyrics_encoding=song_lyrics.encoding,
            source_rate=audio.source_rate, channels=audio.channels, bad_packets=audio.bad_packets, split=song.split,
            line_starts_s=tuple(round(t, 3) for t in sung),  # lyrics.lrc's, () untimed
            line_slots=tuple(slots),  # the memory slot (text id) where each timed line's words start, -1 unpaired
            key_signatures=keys, key_shift=shift)
        meta = {**row.meta(), "genre_slot": song.genre_slot, "codec": self.codec.identity.to_dict(),
                "bert_len": int(states.shape[0]) if states is not None else 0}
        out.ok, out.codes, out.text, out.lyrics, out.meta = True, codes_npy, npy_bytes(ids), lyrics, meta
        out.bert = npy_bytes(states) if states is not None else b""

