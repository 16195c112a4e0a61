"""WebDataset tar shards, written atomically: a shard is built under a hidden temporary name and
renamed to `shard-NNNNNN.tar` only once closed, so a crash never leaves a partial shard under a
final name. Each sample's meta.json carries its full manifest row, so a shard finished just
before a crash (renamed, not yet in the manifests) is adopted by the next build, not redone.
Reading them is manifests/shard_reader.py's job.
"""
from __future__ import annotations

import contextlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from autosong.manifests import file_sha256

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
