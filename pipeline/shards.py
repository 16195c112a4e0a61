"""WebDataset tar shards, written atomically: a shard is built under a hidden temporary name and
renamed to `shard-NNNNNN.tar` only once closed, so a crash never leaves a partial shard under a
final name. Each sample's meta.json carries its full manifest row, so a shard finished just
before a crash (renamed, not yet in the manifests) is adopted by the next build, not redone.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from manifests import file_sha256
from manifests.sample_rows import SampleRow
from manifests.errors import AutoSongError

SHARD_NAME = re.compile(r"^shard-(\d{6})\.tar$")


@dataclass
class ShardInfo:
    path: str        # file name under OUT/shards
    samples: int
    bytes: int
    sha256: str
    keys: list[str]

    def row(self) -> dict:
        return {"path": self.path, "samples": self.samples, "bytes": self.bytes, "sha256": self.sha256}


def final_shards(shard_dir: Path) -> list[Path]:
    return sorted(p for p in shard_dir.glob("shard-*.tar") if SHARD_NAME.match(p.name))


def remove_partial_shards(shard_dir: Path) -> int:
    """Delete temporaries a killed build left behind; returns how many."""
    stale = list(shard_dir.glob(".shard-*.tmp*"))
    for path in stale:
        path.unlink()
    return len(stale)


class DamagedShard(AutoSongError):
    """A shard that is not a readable tar (truncated, overwritten): one line naming it and the fix."""


def iter_shard(path: str | Path, keys: set[str] | None = None) -> Iterator[dict]:
    """The samples of one shard in the order written, through WebDataset's own reader:
    {"__key__": key, "codes.npy": bytes, "text.npy": bytes, ...} (all, or those in `keys`). A
    damaged tar raises DamagedShard when reading reaches the damage."""
    import tarfile

    import webdataset as wds

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


class ShardSink:
    """Groups samples into shards of `samples_per_shard`; `add` returns the shards it finished."""

    def __init__(self, shard_dir: Path, samples_per_shard: int):
        self.shard_dir = shard_dir
        self.samples_per_shard = max(1, samples_per_shard)
        existing = [int(SHARD_NAME.match(p.name).group(1)) for p in final_shards(shard_dir)]
        self.next_index = max(existing, default=-1) + 1
        self._writer = None
        self._tmp: Path | None = None
        self._keys: list[str] = []

    def _open(self) -> None:
        import webdataset as wds

        self._tmp = self.shard_dir / f".shard-{self.next_index:06d}.tmp-{os.getpid()}"
        self._writer = wds.TarWriter(str(self._tmp))
        self._keys = []

    def add(self, sample: dict) -> ShardInfo | None:
        """`sample`: {"__key__": key, "codes.npy": bytes, ...}. Returns a shard when one completes."""
        if self._writer is None:
            self._open()
        self._writer.write(sample)
        self._keys.append(sample["__key__"])
        return self.finish() if len(self._keys) >= self.samples_per_shard else None

    @contextlib.contextmanager
    def aborting(self):
        """On an exception inside the block, the shard being written is closed and deleted."""
        try:
            yield self
        except BaseException as err:
            tmp = self._tmp
            if self._writer is not None:
                try:
                    self._writer.close()
                except OSError:
                    pass
                tmp.unlink(missing_ok=True)
                self._writer = self._tmp = None
            if isinstance(err, OSError) and err.filename is None and tmp is not None:
                raise OSError(err.errno, err.strerror, str(tmp)) from err  # a write error names its file
            raise

    def finish(self) -> ShardInfo | None:
        if self._writer is None:
            return None
        self._writer.close()
        final = self.shard_dir / f"shard-{self.next_index:06d}.tar"
        info = ShardInfo(final.name, len(self._keys), self._tmp.stat().st_size, file_sha256(self._tmp), self._keys)
        with open(self._tmp, "rb") as f:  # the bytes are on disk before the name says "complete"
            os.fsync(f.fileno())
        os.replace(self._tmp, final)
        self.next_index += 1
        self._writer, self._tmp, self._keys = None, None, []
        return info


class ShardCommitter:
    """Samples with their manifest rows in, committed shards out: each shard the sink finishes
    goes to `on_shard(info, rows)` with the rows of the samples it holds, their shard filled in
    (the build indexes them as it goes; encode-latents collects them)."""

    def __init__(self, sink: ShardSink, on_shard):
        self.sink, self.on_shard = sink, on_shard
        self._rows: dict[str, dict] = {}  # rows of the samples in the shard being written

    def add(self, sample: dict, row: dict) -> None:
        self._rows[sample["__key__"]] = row
        self._commit(self.sink.add(sample))

    def finish(self) -> None:
        self._commit(self.sink.finish())

    def _commit(self, info: ShardInfo | None) -> None:
        if info is not None:
            self.on_shard(info, [{**self._rows.pop(key), "shard": info.path} for key in info.keys])
