"""WebDataset tar shards, written atomically: a shard is built under a hidden temporary name and
renamed to `shard-NNNNNN.tar` only once closed, so a crash never leaves a partial shard under a
final name. Each sample's meta.json carries its full manifest row, so a shard finished just
before a crash (renamed, not yet in the manifests) is adopted by the next build, not redone.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path

from manifests import file_sha256

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


def read_samples(path: Path, keys: set[str] | None = None) -> dict[str, dict[str, bytes]]:
    """{key: {"codes.npy": bytes, ...}} for the samples of a tar shard (all, or those in `keys`).
    WebDataset's convention: a member `KEY.EXT`, the key ending at the first dot."""
    samples: dict[str, dict[str, bytes]] = {}
    with tarfile.open(path) as tar:
        for member in tar:
            key, _, ext = member.name.partition(".")
            if member.isfile() and (keys is None or key in keys):
                samples.setdefault(key, {})[ext] = tar.extractfile(member).read()
    return samples


def read_shard_meta(path: Path) -> list[dict]:
    """meta.json of every sample in a shard, without reading codes."""
    metas = []
    with tarfile.open(path) as tar:
        for member in tar:
            if member.name.endswith(".meta.json"):
                metas.append(json.loads(tar.extractfile(member).read()))
    return metas


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
