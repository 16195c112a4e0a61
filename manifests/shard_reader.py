"""Reading a built dataset's shards (WebDataset tars): each sample's bytes, and a song decoded.
The writer is pipeline/shards.py; training and eval read through here (and manifests/dataset.py)."""
from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import webdataset as wds

from autosong.manifests.errors import AutoSongError
from autosong.manifests.sample_rows import SampleRow


class DamagedShard(AutoSongError):
    """A shard that is not a readable tar (truncated, overwritten): one line naming it and the fix."""


def iter_shard(path: str | Path, keys: set[str] | None = None) -> Iterator[dict]:
    """The samples of one shard in the order written, through WebDataset's own reader:
    {"__key__": key, "codes.npy": bytes, "text.npy": bytes, ...} (all, or those in `keys`). A
    damaged tar raises DamagedShard when reading reaches the damage."""
    try:
        for sample in wds.WebDataset(str(path), shardshuffle=False, nodesplitter=None, workersplitter=None,
                                     empty_check=False):
            if keys is None or sample["__key__"] in keys:
                yield {k: v for k, v in sample.items() if k not in ("__url__", "__local_path__")}
    except (tarfile.TarError, EOFError) as err:
        out = Path(path).parent.parent
        raise DamagedShard(f"{path} is damaged ({type(err).__name__}: {err}): run `autosong pipeline verify "
                           f"{out}`, then `autosong pipeline build` again, which sets it aside and encodes its "
                           f"songs again") from err


def read_samples(path: str | Path, keys: set[str] | None = None) -> dict[str, dict[str, bytes]]:
    """{key: {"codes.npy": bytes, ...}} for the samples of a shard (all, or those in `keys`)."""
    return {s["__key__"]: {k: v for k, v in s.items() if k != "__key__"} for s in iter_shard(path, keys)}


def read_shard_meta(path: Path) -> list[dict]:
    """meta.json of every sample in a shard."""
    return [json.loads(s["meta.json"]) for s in iter_shard(path)]


@dataclass
class Sample:
    """One song of a shard, decoded."""

    key: str
    codes: np.ndarray          # int16 [C, T]
    text: np.ndarray           # int32 [L]: lyric ids, genre token first
    bert: np.ndarray | None    # float16 [Lb, d]: BERT states, in a BERT dataset
    lyrics: str                # as the build stored them (normalised)
    meta: dict                 # its manifest row (without shard), codec identity, genre slot

    @classmethod
    def decode(cls, raw: dict) -> "Sample":
        """From iter_shard's bytes."""
        load = lambda b: np.load(io.BytesIO(b), allow_pickle=False)  # noqa: E731
        return cls(raw["__key__"], load(raw["codes.npy"]), load(raw["text.npy"]),
                   load(raw["bert.npy"]) if "bert.npy" in raw else None, raw["lyrics.txt"].decode("utf-8"),
                   json.loads(raw["meta.json"]))

    @property
    def genre(self) -> str:
        return self.meta["genre"]

    @property
    def key_signatures(self) -> tuple[int, ...]:
        """The key signatures the build heard in the audio, best first (model/song_key.py); empty: unknown."""
        return tuple(int(k) for k in self.meta.get("key_signatures") or ())

    @property
    def key_shift(self) -> int:
        """Semitones the audio was moved before encoding (--key-normalise; model/key_shift.py); 0: as heard."""
        return int(self.meta.get("key_shift") or 0)

    def line_timing(self) -> tuple[np.ndarray, np.ndarray]:
        """Where each timed line (lyrics.lrc) starts: frames of these codes (float32 [N]) and the
        memory slot of its first word (int64 [N]); both empty for an untimed song."""
        starts, slots = self.meta.get("line_starts_s") or [], self.meta.get("line_slots") or []
        if not slots or len(slots) != len(starts) or min(slots) < 0:
            return np.zeros(0, np.float32), np.zeros(0, np.int64)
        frames = np.asarray(starts, np.float32) * (self.codes.shape[1] / max(self.meta["duration_s"], 1e-9))
        return frames, np.asarray(slots, np.int64)


def read_rows(out: str | Path, rows: list[SampleRow]) -> Iterator[tuple[SampleRow, dict]]:
    """(row, its sample's bytes) for manifest rows, each shard read once; a row its shard lacks
    is refused in one line that names it and the fix."""
    by_shard: dict[str, list[SampleRow]] = {}
    for row in rows:
        by_shard.setdefault(row.shard, []).append(row)
    for shard, shard_rows in by_shard.items():
        samples = read_samples(Path(out) / "shards" / shard, {r.key for r in shard_rows})
        for row in shard_rows:
            if row.key not in samples:
                raise AutoSongError(f"{out}/shards/{shard} lacks {row.key}, which the manifest lists there: run "
                                    f"`autosong pipeline verify {out}`, then `autosong pipeline build` again")
            yield row, samples[row.key]


def load_samples(out: str | Path, rows: list[SampleRow]) -> list[Sample]:
    """The decoded samples of manifest rows, in the rows' order."""
    decoded = {row.key: Sample.decode({"__key__": row.key, **raw}) for row, raw in read_rows(out, rows)}
    return [decoded[row.key] for row in rows]
