"""Where a resumed run starts: the checkpoint every rank loads (rank 0 picks the newest intact one
and all ranks agree before any moves on), the data position saved with it, and how a job with
another number of ranks or loader workers carries that position on (or why it cannot)."""
from __future__ import annotations

import json
import pickle
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from autosong.manifests.errors import AutoSongError

POSITION_FILE = "position.json"


@dataclass
class DataPosition:
    """How far the data stream of a run had gone at a checkpoint: the batches each rank took
    (`consumed[rank]`), under `num_workers` loader workers per rank."""
    step: int
    consumed: list[int]
    num_workers: int

    @property
    def world_size(self) -> int:
        return len(self.consumed)

    def write(self, ckpt: Path) -> None:
        (ckpt / POSITION_FILE).write_text(json.dumps({**asdict(self), "world_size": self.world_size}))

    @classmethod
    def read(cls, ckpt: Path) -> "DataPosition":
        saved = json.loads((ckpt / POSITION_FILE).read_text())
        return cls(saved["step"], saved["consumed"], saved["num_workers"])


def _complete(ckpt: Path, ranks: int) -> bool:
    """Every file a checkpoint needs is there: the model and optimizer states, and the RNG state
    of each of the `ranks` that saved it."""
    return (any(ckpt.glob("*model_states.pt")) and any(ckpt.glob("*optim_states.pt"))
            and all((ckpt / f"rng_rank{r}.pt").is_file() for r in range(ranks)))


def _refuse_another_world(ckpt: Path, saved: int, world: int, zero_stage: int) -> None:
    if saved != world and zero_stage > 0:
        raise AutoSongError(f"{ckpt} was saved by {saved} rank(s) and this job has {world}: ZeRO stage {zero_stage} "
                            f"splits the optimizer state per rank and DeepSpeed cannot split it again. Resume with "
                            f"{saved} rank(s) (deepspeed --num_gpus {saved} ..., or srun --ntasks {saved} ...)")


def load_newest_intact(engine, ckpt_dir: Path, rank: int, world: int):
    """Load the newest checkpoint that every rank can load; returns (DataPosition, this rank's RNG
    state, or None for a rank the checkpoint did not have). Rank 0 lists the candidates, and the
    ranks try each together and agree (all-reduce) before taking it or moving on, so no rank ever
    waits on one that chose another. DeepSpeed's `latest` is not trusted: a crash or a hand can
    leave it missing or naming a half-deleted step, while older intact checkpoints sit beside it."""
    import torch.distributed as dist

    listed = [sorted((d.name for d in ckpt_dir.glob("step_*") if d.is_dir()), reverse=True) if rank == 0 else None]
    dist.broadcast_object_list(listed, src=0)
    skipped = []
    for tag in listed[0]:
        d = ckpt_dir / tag
        why, position, rng = _try_load(engine, ckpt_dir, tag, rank, world)
        failed = torch.tensor([0.0 if why is None else 1.0], device=engine.device)
        dist.all_reduce(failed)
        if failed.item() == 0:
            if skipped:
                print(f"autosong: resuming from {tag}; skipped damaged checkpoint(s): {', '.join(skipped)}",
                      file=sys.stderr)
            return position, rng
        skipped.append(f"{tag} ({why or 'damaged on another rank'})")
        if why is None:
            print(f"autosong: {d} loaded here but not on every rank; trying an older one", file=sys.stderr)
    found = f"; damaged: {', '.join(skipped)}" if skipped else ""
    raise AutoSongError(f"--resume: no intact checkpoint in {ckpt_dir}{found}. Start the run again without --resume "
                        f"(or into a new --run)")


def _try_load(engine, ckpt_dir: Path, tag: str, rank: int, world: int):
    """(None, position, rng) when this rank loaded `tag`, else (why, None, None). A checkpoint of
    another world size that the optimizer state cannot follow is refused, not skipped."""
    d = ckpt_dir / tag
    stage = engine.zero_optimization_stage()
    try:  # the small files first: a damaged one skips the checkpoint before the big load
        position = DataPosition.read(d) if (d / POSITION_FILE).exists() else None  # None: saved before it existed
        if not _complete(d, position.world_size if position else 1):
            return "files missing", None, None
        if position is not None:
            _refuse_another_world(d, position.world_size, world, stage)
        rng_file = d / f"rng_rank{rank}.pt"
        rng = torch.load(rng_file, weights_only=True) if rng_file.exists() else None
        path, client = engine.load_checkpoint(str(ckpt_dir), tag=tag)
        if path is None or client is None or "step" not in client or (rng is not None and "cpu" not in rng):
            return "no state", None, None
        if position is None:  # its loader workers are unknown: taken as the same
            position = DataPosition(client["step"], client["consumed"], -1)
            _refuse_another_world(d, position.world_size, world, stage)
        return None, position, rng
    except (RuntimeError, OSError, KeyError, EOFError, ValueError, pickle.UnpicklingError) as err:
        return type(err).__name__, None, None


def rank_skip(stream, position: DataPosition, rank: int, world: int, num_workers: int) -> tuple[int, bool]:
    """(batches this rank skips, whether the position was remapped). The same ranks and workers
    go on exactly where they stopped. Another layout splits the shards among other readers, so
    no reader can continue the old order: each new reader starts at the mean progress of the old
    ones (epochs and the fraction of one), which keeps the samples seen to within about a batch
    per reader and epoch; the stream is then exact again from that point."""
    old_workers, workers = max(1, position.num_workers), max(1, num_workers)
    if position.world_size == world and (position.num_workers < 0 or old_workers == workers):
        return position.consumed[rank], False
    old_readers = [(r * old_workers + w, len(range(w, c, old_workers)))
                   for r, c in enumerate(position.consumed) for w in range(old_workers)]
    mean = sum(stream.progress(reader, len(old_readers), skip) for reader, skip in old_readers) / len(old_readers)
    return sum(stream.skip_at(mean, rank * workers + w, world * workers) for w in range(workers)), True
