"""The build's encoders: SongEncoder actors on Ray (a private local Ray unless --ray-address names a
cluster), started as soon as the pool is made, so that they import torch and load their codec
while the driver goes on; the driver takes the codec's facts from the first of them instead of
loading a codec of its own. `encode(jobs)` keeps every actor busy (two calls in
flight each) and yields results in completion order.

Ray core actors, not a Ray Data `map`: Ray Data starts its actors only when the dataset executes,
after the driver knows every job, and its planning adds seconds before the first song
(bench/RESULTS.md, "Pipeline, run 6"). Scheduling, placement and GPU shares are Ray's either way.
"""
from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator

from autosong.manifests.errors import AutoSongError
from autosong.pipeline import ray_watchdog
from autosong.pipeline.encode import CodecFacts, DeviceFault, EncodedSong, SongEncoder, SongJob

IN_FLIGHT = 2  # calls queued per actor: the next one is there when the current one ends
MAX_REPLACED = 3  # actors replaced after device faults before the build gives up


def start_ray(address: str | None) -> bool:
    """Connect to `address`, or start a private local Ray; True if this call started it."""
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a local, private cluster: no token file
    import ray

    if ray.is_initialized():
        return False
    quiet = {"log_to_driver": False, "logging_level": logging.WARNING}
    if address:
        ray.init(address=address, **quiet)
    else:
        # "local": always a private Ray of our own, never a cluster that RAY_ADDRESS or a stale
        # address in Ray's temp folder points at (a dead one fails to connect).
        global _watchdog
        _watchdog = _watchdog or ray_watchdog.start()  # before Ray: it outlives nothing of ours
        # Ray runs its workers at niceness 15, to yield to its own daemons: beside any other busy process
        # (a training run, a second build) the encoders then got a few per cent of a core, 25x slower
        # (bench/RESULTS.md, "The build's encoder, time-major"). Our private Ray's workers run as we do.
        os.environ.setdefault("RAY_worker_niceness", "0")
        ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False,
                 object_store_memory=256 * 2**20, **quiet)
    return True


_watchdog = None  # pipeline/ray_watchdog.py: ends our private Ray's processes when this process ends


class EncoderPool:
    """`cfg`: a BuildConfig (codec, text front-end, limits, workers, GPU share, batch size);
    `songs`: how many songs this build encodes (no more actors than that)."""

    def __init__(self, cfg, songs: int):
        import ray

        self.started = start_ray(cfg.ray_address)
        resources = ray.cluster_resources()
        cpus, gpus = int(resources.get("CPU", 1)), resources.get("GPU", 0)
        if cfg.gpus_per_worker > 0 and gpus < cfg.gpus_per_worker:
            self.close()
            raise AutoSongError(f"--gpus-per-worker {cfg.gpus_per_worker:g}: the Ray cluster has {gpus:g} GPUs; "
                                "drop the flag to encode on CPUs, or join a cluster with GPUs (--ray-address)")
        if cfg.gpus_per_worker > 0 and not cfg.workers:
            cpus = int(gpus / cfg.gpus_per_worker)  # one actor per GPU share
        workers = max(1, min(cfg.workers or cpus, songs))
        # Whole CPUs per actor would leave none for Ray's own work on a small machine: a fraction.
        cpu_per_actor = min(1.0, max(0.1, (cpus - 0.25) / workers))
        self.batch = cfg.songs_per_batch or (8 if cfg.gpus_per_worker > 0 else 1)
        # max_restarts=0: a song cannot kill its actor (decoding runs in a child process), so an
        # actor that dies anyway (the machine's OOM killer) fails the build instead of being
        # restarted without end; finished shards are kept for the next run.
        remote = ray.remote(SongEncoder).options(num_cpus=cpu_per_actor, num_gpus=cfg.gpus_per_worker or None,
                                                 max_restarts=0)
        device = "cuda" if cfg.gpus_per_worker > 0 else "cpu"
        self._new_actor = lambda: remote.remote(cfg.codec, cfg.text, cfg.max_seconds, cfg.limits(), device,
                                                           cfg.key_normalise)
        self.actors = [self._new_actor() for _ in range(workers)]
        self.replaced = 0  # actors replaced after a device fault

    def codec_facts(self) -> CodecFacts | None:
        """The codec as the first actor loaded it, once it has (None if it failed to load it:
        the driver's own load then says why in one line)."""
        import ray

        try:
            return ray.get(self.actors[0].codec_facts.remote())
        except ray.exceptions.RayActorError:
            return None

    def encode(self, jobs: list[SongJob]) -> Iterator[EncodedSong]:
        """Every job's result, in completion order. A batch of `songs_per_batch` songs per call
        (1 on CPUs: a window per forward, so codes do not depend on the batch). An actor whose
        device fails is replaced and its batches go back in the queue: a GPU's fault never
        becomes a song's reject."""
        import ray

        batches = [jobs[i : i + self.batch] for i in range(0, len(jobs), self.batch)][::-1]
        windows = 1 if self.batch == 1 else 4 * self.batch
        running: dict = {}  # object ref -> (actor, batch)

        def submit(actor) -> None:
            if batches:
                batch = batches.pop()
                running[actor.encode_songs.remote(batch, windows)] = (actor, batch)

        for actor in self.actors:
            for _ in range(IN_FLIGHT):
                submit(actor)
        while running:
            [ref], _ = ray.wait(list(running), num_returns=1)
            actor, batch = running.pop(ref)
            try:
                results = ray.get(ref)
            except DeviceFault as err:
                new = self._replace(actor, batch, err, running, batches)
                for _ in range(IN_FLIGHT):
                    submit(new)
                continue
            except ray.exceptions.RayActorError as err:
                raise AutoSongError(f"an encoder process died ({type(err).__name__}; out of memory?): the shards "
                                    "finished so far are kept; run the same build again to finish it") from None
            submit(actor)
            yield from results

    def _replace(self, actor, batch: list[SongJob], err: Exception, running: dict, batches: list):
        """A new actor in place of one whose device failed; its batches (this one and those still
        queued on it) go back in the queue. Refuses after MAX_REPLACED."""
        import ray

        self.replaced += 1
        cause = str(err).strip().splitlines()[-1]
        if self.replaced > MAX_REPLACED:
            raise AutoSongError(f"the encoders' device failed {self.replaced} times (last: {cause}): the shards "
                                "finished so far are kept; check the GPU (nvidia-smi), then run the same build again")
        print(f"warning: an encoder's device failed ({cause}); replaced it, and its songs are encoded again",
              file=sys.stderr)
        for ref, (owner, _) in list(running.items()):
            if owner is actor:
                batches.append(running.pop(ref)[1])
        batches.append(batch)
        ray.kill(actor)
        new = self._new_actor()
        self.actors[self.actors.index(actor)] = new
        return new

    def close(self) -> None:
        import ray

        for actor in getattr(self, "actors", []):
            ray.kill(actor)
        if self.started:
            ray.shutdown()
