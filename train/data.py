"""Streaming training data: OUT/shards -> padded, length-bucketed batches of song windows.

Each (rank, DataLoader worker) streams its own shards (disjoint; or every world-th sample when
there are fewer shards than readers), in an order that is a function of (seed, epoch) only, and
cuts each song to a window of at most `window_frames` at a seeded offset, keeping its absolute
frame positions. The stream is endless (epoch after epoch) and deterministic, so a resumed run
sees the same data as one never stopped; it finds its place from the consumed-batch count by
arithmetic over the manifest's per-shard counts (whole epochs, shards and buffers are never
read), so resuming costs the same at step 20 and at step 200,000.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from itertools import count

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from autosong.manifests.codec_identity import require_same_codec
from autosong.manifests.dataset import Dataset
from autosong.manifests.errors import AutoSongError
from autosong.manifests.shard_reader import Sample, iter_shard
from autosong.model.padding import SongBatch, key_sets, line_inputs, text_inputs


@dataclass
class StreamConfig:
    data: str | Dataset  # an open Dataset (the trainer's), or its path
    split: str = "train"
    micro_batch: int = 4
    window_frames: int = 9000
    max_frames: int = 27000
    bucket_songs: int = 32
    seed: int = 0
    with_bert: bool = False
    rank: int = 0
    world_size: int = 1
    skip_batches: int = 0  # batches this rank already consumed (a resumed run): found by arithmetic, not replay
    verify: bool = False   # check each sample's codes against the hash the build recorded


def collate(windows: list[dict], with_bert: bool) -> SongBatch:
    """Pad a list of windows into one SongBatch: codes [B, C, T], text_ids/text_mask [B, L] ..."""
    B = len(windows)
    C = windows[0]["codes"].shape[0]
    T = max(w["codes"].shape[1] for w in windows)
    codes = torch.zeros(B, C, T, dtype=torch.long)
    for i, w in enumerate(windows):
        codes[i, :, : w["codes"].shape[1]] = torch.from_numpy(w["codes"].astype(np.int64))
    return SongBatch(codes=codes, lengths=torch.tensor([w["codes"].shape[1] for w in windows]),
                     frame_offset=torch.tensor([w["offset"] for w in windows]),
                     song_frames=torch.tensor([w["song_frames"] for w in windows]), keys=[w["key"] for w in windows],
                     song_keys=key_sets([w["song_keys"] for w in windows]),
                     **text_inputs([w["text"] for w in windows], [w["bert"] for w in windows] if with_bert else None),
                     **line_inputs([w.get("lines") for w in windows]))


class ShardStream(IterableDataset):
    """Endless iterator of collated micro-batches for one rank (split across DataLoader workers)."""

    def __init__(self, cfg: StreamConfig):
        self.cfg = cfg
        self.dataset = dataset = Dataset.of(cfg.data)
        out, self.card = dataset.path, dataset.card
        rows = dataset.split(cfg.split)
        if not rows:
            raise AutoSongError(f"{out} has no {cfg.split!r} songs (see `autosong pipeline inspect {out}`)")
        self.index = {(r.shard, r.key) for r in rows}  # what the manifest says is current
        self.shards = sorted({r.shard for r in rows})
        self.counts = {s: 0 for s in self.shards}  # this split's samples per shard: positions by arithmetic
        for r in rows:
            self.counts[r.shard] += 1
        self.decoded = 0  # samples whose arrays were loaded (resume reads at most one buffer's)
        self.shard_dir = out / "shards"
        dataset.refuse_missing_shards(self.shards, cfg.split)  # before training starts, not mid-epoch

    def _my_plan(self, epoch: int, reader: int, readers: int) -> tuple[list[str], int, int]:
        """(shards to read, sample stride, sample phase) for one reader in one epoch."""
        order = list(self.shards)
        np.random.default_rng([self.cfg.seed, epoch]).shuffle(order)
        if len(order) >= readers:
            return order[reader::readers], 1, 0
        return order, readers, reader  # fewer shards than readers: split by sample instead

    def _windows_in_epoch(self, epoch: int, reader: int, readers: int) -> int:
        shards, stride, phase = self._my_plan(epoch, reader, readers)
        return len(range(phase, sum(self.counts[s] for s in shards), stride))

    def _batches_in_epoch(self, epoch: int, reader: int, readers: int) -> int:
        K, S, B = self._windows_in_epoch(epoch, reader, readers), self.cfg.bucket_songs, self.cfg.micro_batch
        return (K // S) * -(-S // B) + -(-(K % S) // B)

    def _windows(self, epoch: int, reader: int, readers: int, start: int = 0):
        """This reader's windows of one epoch from its `start`-th on. Reading starts at the shard
        that holds it (counts from the manifest) and passes over at most one shard's samples
        without loading them; each window's crop comes from its own seeded generator."""
        shards, stride, phase = self._my_plan(epoch, reader, readers)
        first = start * stride + phase  # the accepted-sample number (0-based) of window `start`
        n = 0
        while shards and n + self.counts[shards[0]] <= first:
            n += self.counts[shards[0]]
            shards = shards[1:]
        for shard in shards:
            listed = n + self.counts[shard]
            for raw in iter_shard(self.shard_dir / shard):
                if (shard, raw["__key__"]) not in self.index:
                    continue  # replaced or other split
                n += 1
                if n - 1 < first or (n - 1) % stride != phase:
                    continue
                sample = self._checked(raw, shard)
                self.decoded += 1
                T, W = sample.codes.shape[1], self.cfg.window_frames
                last_start = max(0, min(T, self.cfg.max_frames) - W)
                rng = np.random.default_rng([self.cfg.seed, epoch, reader, 1, (n - 1) // stride])
                offset = int(rng.integers(0, last_start + 1)) if T > W else 0
                yield {"key": sample.key, "codes": sample.codes[:, offset : offset + W], "offset": offset,
                       "song_frames": T, "text": sample.text, "bert": sample.bert, "lines": sample.line_timing(),
                       "song_keys": sample.key_signatures}
            if n < listed:  # positions are counted from the manifest: a shard short of them would shift them all
                raise AutoSongError(f"{self.shard_dir / shard} lacks {listed - n} of the {self.counts[shard]} "
                                    f"{self.cfg.split} samples the manifest lists there: run `autosong pipeline "
                                    f"verify {self.dataset.path}`, then `autosong pipeline build` again to rebuild it")

    def _checked(self, raw: dict, shard: str) -> Sample:
        """The decoded sample, refused in one line when it is not this dataset's codec, when a damaged
        shard put a code outside the codebook (always: one min/max) or, with `verify`, when its
        codes are not the bytes the build wrote."""
        where = f"{self.shard_dir / shard}: sample {raw['__key__']}"
        fix = f"run `autosong pipeline verify {self.dataset.path}`, then `autosong pipeline build` again to rebuild it"
        meta = json.loads(raw["meta.json"])
        require_same_codec(meta["codec"], self.card.codec, f"{shard}:{raw['__key__']} and "
                           f"{self.dataset.path}/dataset.json", "rebuild the dataset")
        if self.cfg.verify and hashlib.sha256(raw["codes.npy"]).hexdigest() != meta["codes_sha256"]:
            raise AutoSongError(f"{where}: its codes differ from the hash the build recorded (a damaged shard); {fix}")
        sample = Sample.decode(raw)
        codes, size = sample.codes, self.card.codebook_size
        if codes.size and (int(codes.min()) < 0 or int(codes.max()) >= size):
            bad = int(codes.min()) if int(codes.min()) < 0 else int(codes.max())
            raise AutoSongError(f"{where}: code {bad} is outside the codebook (0-{size - 1}), a damaged shard; {fix}")
        return sample

    def progress(self, reader: int, readers: int, skip: int) -> float:
        """The epochs a reader has read once it gave `skip` batches: whole ones plus the fraction
        of the one it is in (counted, never read)."""
        epoch, buffer, drop = self._start(reader, readers, skip)
        done = buffer * -(-self.cfg.bucket_songs // self.cfg.micro_batch) + drop
        return epoch + done / self._batches_in_epoch(epoch, reader, readers)

    def skip_at(self, progress: float, reader: int, readers: int) -> int:
        """The batches a reader gives before it reaches `progress` epochs (progress's inverse)."""
        epoch = int(progress)
        whole = sum(self._batches_in_epoch(e, reader, readers) for e in range(epoch))
        return whole + round((progress - epoch) * self._batches_in_epoch(epoch, reader, readers))

    def _start(self, reader: int, readers: int, skip: int) -> tuple[int, int, int]:
        """Where a reader that already gave `skip` batches goes on: (epoch, buffer, batches of
        that buffer to drop). Whole epochs and buffers are counted, never read."""
        epoch = 0
        while True:
            batches = self._batches_in_epoch(epoch, reader, readers)
            if batches == 0:
                raise AutoSongError(f"reader {reader} of {readers} got no {self.cfg.split} songs from "
                                    f"{len(self.shards)} shards: use fewer ranks/workers or more songs")
            if skip < batches:
                break
            skip, epoch = skip - batches, epoch + 1
        per_buffer = -(-self.cfg.bucket_songs // self.cfg.micro_batch)
        return epoch, skip // per_buffer, skip % per_buffer

    def __iter__(self):
        info = get_worker_info()
        workers, worker = (info.num_workers, info.id) if info else (1, 0)
        readers = self.cfg.world_size * workers
        reader = self.cfg.rank * workers + worker
        # The DataLoader takes batches from its workers in turn: this worker gave every
        # workers-th of the rank's consumed batches.
        first_epoch, first_buffer, drop = self._start(reader, readers, len(range(worker, self.cfg.skip_batches, workers)))
        for epoch in count(first_epoch):
            buffer_index = first_buffer if epoch == first_epoch else 0
            buffer: list[dict] = []
            windows = self._windows(epoch, reader, readers, start=buffer_index * self.cfg.bucket_songs)
            for window in windows:
                buffer.append(window)
                if len(buffer) >= self.cfg.bucket_songs:
                    yield from self._bucketed(buffer, epoch, reader, buffer_index, drop)
                    buffer, buffer_index, drop = [], buffer_index + 1, 0
            if buffer:
                yield from self._bucketed(buffer, epoch, reader, buffer_index, drop)
                drop = 0

    def _bucketed(self, buffer: list[dict], epoch: int, reader: int, index: int, drop: int = 0):
        """Similar lengths together (little padding), batches in a seeded random order (one
        generator per buffer, so a resumed stream needs no generator replay)."""
        buffer = sorted(buffer, key=lambda w: (w["codes"].shape[1], w["key"]))
        B = self.cfg.micro_batch
        batches = [buffer[i : i + B] for i in range(0, len(buffer), B)]
        order = np.random.default_rng([self.cfg.seed, epoch, reader, 2, index]).permutation(len(batches))
        for i in order[drop:]:
            yield collate(batches[i], self.cfg.with_bert)


def make_loader(cfg: StreamConfig, num_workers: int = 0):
    from torch.utils.data import DataLoader

    return DataLoader(ShardStream(cfg), batch_size=None, num_workers=num_workers,
                      persistent_workers=num_workers > 0)
