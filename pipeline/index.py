"""The build's index of OUT while it runs: the rows in memory, written to disk two ways.

- `compact()`: every manifest rewritten whole and shards nobody references deleted. O(N); a
  build does it at its start and at its end.
- `add_shard()`: one small Parquet part per manifest for the shard just finished, and
  dataset.json with counts kept up to date incrementally. O(shard), whatever N is, so the
  bookkeeping of a 1M-song build costs per shard what it costs at 10k (bench/bookkeeping.py).

At any moment OUT is a consistent dataset: whatever a reader sees is every shard committed so far.
"""
from __future__ import annotations

from pathlib import Path

from autosong.manifests import DatasetCard, append_manifest, write_manifest
from autosong.pipeline.shards import ShardInfo


class DatasetIndex:
    def __init__(self, out: Path, card: DatasetCard, samples: dict[str, dict], rejects: dict[str, dict],
                 shard_rows: dict[str, dict]):
        self.out, self.shard_dir, self.card = out, out / "shards", card
        self.samples, self.rejects, self.shard_rows = samples, rejects, shard_rows
        self._fresh_rejects: list[dict] = []
        self._recount()

    def _recount(self) -> None:
        self._val = sum(r["split"] == "val" for r in self.samples.values())
        self._frames = sum(int(r["frames"]) for r in self.samples.values())
        self._seconds = sum(r["duration_s"] for r in self.samples.values())

    def _count(self, row: dict, sign: int) -> None:
        self._val += sign * (row["split"] == "val")
        self._frames += sign * int(row["frames"])
        self._seconds += sign * row["duration_s"]

    def reject(self, row: dict) -> None:
        self.rejects[row["key"]] = row
        self._fresh_rejects.append(row)

    def unreject(self, key: str) -> None:
        self.rejects.pop(key, None)

    def add_shard(self, shard: ShardInfo, rows: list[dict]) -> None:
        """Index a finished shard: its samples' rows, the rejects found since the last commit."""
        for row in rows:
            if row["key"] in self.samples:
                self._count(self.samples[row["key"]], -1)
            self.samples[row["key"]] = row
            self._count(row, +1)
        self.shard_rows[shard.path] = shard.row()
        append_manifest(self.out, "samples", rows)
        append_manifest(self.out, "rejects", self._fresh_rejects)
        append_manifest(self.out, "shards", [shard.row()])
        self._fresh_rejects = []
        self._save_card()

    def compact(self) -> None:
        """Manifests rewritten whole; shards whose every sample was replaced or removed deleted."""
        live = {r["shard"] for r in self.samples.values()}
        for name in list(self.shard_rows):
            if name not in live:
                (self.shard_dir / name).unlink(missing_ok=True)
                del self.shard_rows[name]
        write_manifest(self.out, "samples", sorted(self.samples.values(), key=lambda r: r["key"]))
        write_manifest(self.out, "rejects", sorted(self.rejects.values(), key=lambda r: r["key"]))
        write_manifest(self.out, "shards", sorted(self.shard_rows.values(), key=lambda r: r["path"]))
        self._fresh_rejects = []
        self._recount()
        self._save_card()

    def _save_card(self) -> None:
        """dataset.json last: it names the whole that the manifests now hold."""
        songs = len(self.samples)
        self.card.counts = {"songs": songs, "train": songs - self._val, "val": self._val,
                            "rejects": len(self.rejects), "shards": len(self.shard_rows), "frames": self._frames}
        self.card.hours = round(self._seconds / 3600, 4)
        self.card.save(self.out)
