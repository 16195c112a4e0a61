"""The per-song work of a build, run inside Ray actors: lyrics -> ids (or BERT states), audio ->
decoded (in a child process: pipeline/decode_worker.py) -> EnCodec codes. Models load once per actor. A song that fails comes back as a row with
the failing stage and a reason in words; it never raises, so one bad file cannot stop a build.
"""
from __future__ import annotations

import hashlib
import io
import json

import numpy as np

from model.errors import AutoSongError, os_error_words
from model.lyrics import read_lyrics_file, weak_encoding_warning
from pipeline.decode_worker import IsolatedDecoder



def npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


class SongEncoder:
    """Callable class for `Dataset.map`: one instance per actor, models loaded in __init__."""

    def __init__(self, codec_source: str, text: str, max_seconds: float | None, limits: dict, device: str = "cpu"):
        import torch

        from model.codec import Codec
        from model.lyrics import default_tokenizer

        # One intra-op thread per actor, always: float reductions (and so near-tie codes) depend on
        # the thread count, and a build must give the same codes whatever the cluster's shape.
        # Parallelism comes from actors, one per CPU. (GPU actors' codes may differ from CPU ones in
        # near-ties, as any two devices' float reductions do; a dataset mixing both stays valid.)
        torch.set_num_threads(1)
        self.codec = Codec.load(codec_source).to(device)  # cuda: the GPU Ray gave this actor (num_gpus)
        self.tokenizer = default_tokenizer()
        self.bert = None
        if text.startswith("bert:"):
            from model.bert_text import BertLyrics

            self.bert = BertLyrics(text.split(":", 1)[1])
        self.max_seconds = max_seconds
        self.limits = limits  # BuildConfig.limits(): max_song_seconds, max_text_len, max_lyrics_bytes
        self.decoder = IsolatedDecoder()  # a file that crashes FFmpeg kills this child, not the actor

    def __call__(self, song: dict) -> dict:
        return self.encode_songs([song], batch_windows=1)[0]

    def encode_songs(self, songs: list[dict], batch_windows: int = 1) -> list[dict]:
        """One result row per song, in order. The songs that decode are encoded together, equal
        windows batched up to `batch_windows` per forward (Codec.encode_many; 1 = exact)."""
        import time

        rows = [self._decode(song) for song in songs]
        ready = [(song, row) for song, row in zip(songs, rows) if row[1] is not None]
        if ready:
            t0 = time.perf_counter()
            try:
                codes = self.codec.encode_many([row[1].wav for _, row in ready], self.codec.sample_rate, batch_windows)
            except (AutoSongError, ValueError, RuntimeError) as err:  # e.g. the GPU ran out of memory
                if len(songs) > 1:  # again one song at a time, so the error lands on its own song
                    return [self.encode_songs([song], 1)[0] for song in songs]
                ready[0][1][0].update(stage="encode", reason=str(err) or type(err).__name__)
                return [ready[0][1][0]]
            seconds = time.perf_counter() - t0
            total = sum(len(row[1].wav) for _, row in ready)
            for (song, (out, audio, lyrics, encoding)), song_codes in zip(ready, codes):
                out["encode_s"] = seconds * len(audio.wav) / max(1, total)  # the batch's time, shared by length
                self._finish(out, song, audio, lyrics, encoding, song_codes)
        return [out for out, *_ in rows]

    def _decode(self, song: dict):
        """(row, audio, lyrics, encoding); audio is None when the song already failed (row says why)."""
        import os
        import time

        from model.lyrics import normalize_lyrics

        out = {"key": song["key"], "ok": False, "stage": "", "reason": "", "codes": b"", "text": b"",
               "bert": b"", "lyrics": "", "meta": "", "decode_s": 0.0, "encode_s": 0.0, "warning": ""}
        stage = "lyrics"
        limits = self.limits
        try:
            size = os.path.getsize(song["lyrics"])
            if size > limits["max_lyrics_bytes"]:
                raise ValueError(f"lyrics.txt is {size / 1e6:.1f} MB, far more than a song's lyrics (limit "
                                 f"{limits['max_lyrics_bytes'] // 1000} kB for --max-text-len {limits['max_text_len']})")
            decoded = read_lyrics_file(song["lyrics"])
            encoding = decoded.encoding
            if decoded.weak:
                out["warning"] = weak_encoding_warning("lyrics.txt", decoded)
            lyrics = normalize_lyrics(decoded.text)
            if not lyrics:
                raise ValueError("lyrics.txt is empty")
            stage = "decode"
            t0 = time.perf_counter()
            audio = self.decoder(song["audio"], self.codec.sample_rate, self.max_seconds, limits["max_song_seconds"])
            out["decode_s"] = time.perf_counter() - t0
        except OSError as err:  # unreadable, vanished, a directory, ...
            out.update(stage=stage, reason=os_error_words(err))
            return out, None, None, None
        except (AutoSongError, ValueError, RuntimeError) as err:  # AudioDecodeError included
            out.update(stage=stage, reason=str(err) or type(err).__name__)
            return out, None, None, None
        return out, audio, lyrics, encoding

    def _finish(self, out: dict, song: dict, audio, lyrics: str, encoding: str, codes: np.ndarray) -> None:
        """Lyrics -> ids (and BERT states), then the sample's fields; a failure fills the reason."""
        try:
            ids = np.asarray(self.tokenizer.encode(lyrics, song["genre_slot"]), dtype=np.int32)
            limits = self.limits
            if len(ids) > limits["max_text_len"]:
                raise ValueError(f"the lyrics are {len(ids)} ids long, above the limit of {limits['max_text_len']} "
                                 "(--max-text-len; a model reads at most model.max_text_len)")
            states = self.bert.states(lyrics) if self.bert is not None else None
        except (AutoSongError, ValueError, RuntimeError) as err:
            out.update(stage="text", reason=str(err) or type(err).__name__)
            return
        codes_npy = npy_bytes(codes)
        meta = {
            "key": song["key"], "source": song["source"], "genre": song["genre"],
            "genre_source": song["genre_source"], "duration_s": round(audio.seconds, 4),
            "frames": int(codes.shape[1]), "text_len": int(len(ids)), "audio_sha256": song["audio_sha256"],
            "lyrics_sha256": song["lyrics_sha256"], "codes_sha256": hashlib.sha256(codes_npy).hexdigest(),
            "lyrics_encoding": encoding, "source_rate": audio.source_rate, "channels": audio.channels,
            "bad_packets": audio.bad_packets, "split": song["split"],
            "genre_slot": song["genre_slot"], "codec": self.codec.identity.to_dict(),
            "bert_len": int(states.shape[0]) if states is not None else 0,
        }
        out.update(ok=True, codes=codes_npy, text=npy_bytes(ids), lyrics=lyrics,
                   bert=npy_bytes(states) if states is not None else b"", meta=json.dumps(meta, ensure_ascii=False))


class SongBatchEncoder(SongEncoder):
    """For `Dataset.map_batches` on GPU actors: a batch of songs in, their rows out, the decoded
    songs' equal windows encoded together (`batch_windows` per forward)."""

    def __init__(self, *args, batch_windows: int = 16, **kwargs):
        super().__init__(*args, **kwargs)
        self.batch_windows = batch_windows

    def __call__(self, batch: dict) -> dict:
        columns = {k: (v.tolist() if hasattr(v, "tolist") else list(v)) for k, v in batch.items()}
        songs = [dict(zip(columns, values)) for values in zip(*columns.values())]
        rows = self.encode_songs(songs, self.batch_windows)
        return {k: [row[k] for row in rows] for k in rows[0]}
