"""A run's checkpoints and its inference bundle: save with the data position and every rank's
RNG (loading them back: train/resume.py), and export RUN/export (safetensors + config, no
pickle) with frozen parameters gathered under ZeRO-3."""
from __future__ import annotations

import shutil
from dataclasses import asdict
from pathlib import Path

import torch

from autosong.manifests import DatasetCard
from autosong.manifests.errors import AutoSongError, os_error_words
from autosong.model.bundle import save_bundle
from autosong.train.config import RunConfig
from autosong.train.resume import DataPosition

CKPT_DIR = "checkpoints"


def save_checkpoint(engine, run: Path, step: int, consumed: int, num_workers: int, rank: int, world: int,
                    device) -> None:
    """RUN/checkpoints/step_N: DeepSpeed's states, each rank's RNG, and the data position (the
    batches every rank took, the world size and the loader workers: train/resume.py)."""
    import torch.distributed as dist

    gathered = [torch.zeros(1, dtype=torch.long, device=device) for _ in range(world)]
    dist.all_gather(gathered, torch.tensor([consumed], device=device))
    position = DataPosition(step, [int(g.item()) for g in gathered], num_workers)
    tag = f"step_{step:08d}"
    rng = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        rng["cuda"] = torch.cuda.get_rng_state(device)
    ckpt = run / CKPT_DIR / tag
    try:
        ckpt.mkdir(parents=True, exist_ok=True)
        torch.save(rng, ckpt / f"rng_rank{rank}.pt")  # before `latest` names this checkpoint
        if rank == 0:
            position.write(ckpt)
        dist.barrier()
        engine.save_checkpoint(str(run / CKPT_DIR), tag=tag, client_state=asdict(position))
    except (OSError, RuntimeError) as err:  # a full disk: torch's writer raises RuntimeError
        shutil.rmtree(ckpt, ignore_errors=True)
        raise AutoSongError(unwritable_checkpoint(ckpt, err)) from err


def unwritable_checkpoint(ckpt: Path, err: Exception) -> str:
    """One line: which checkpoint could not be written, why, and that the older ones are intact."""
    if isinstance(err, OSError):
        why = os_error_words(err, "write")
    else:
        why = f"the write failed ({str(err).splitlines()[0][:120]})"
    free = shutil.disk_usage(ckpt.parent if ckpt.parent.exists() else ckpt.parent.parent).free
    older = sorted(d.name for d in ckpt.parent.glob("step_*") if d.is_dir()) if ckpt.parent.exists() else []
    kept = f"the newest intact one, {older[-1]}, is kept" if older else "no earlier checkpoint exists"
    return (f"cannot write checkpoint {ckpt}: {why}; {free / 1e6:.0f} MB free on its device. The partial "
            f"checkpoint was removed and {kept}: free some space and run the same command with --resume")


def export_bundle(engine, run: Path, cfg: RunConfig, card: DatasetCard, step: int, rank: int, tuning=None) -> None:
    """RUN/export/{model.safetensors, config.json}: fp32 weights and everything needed to use them.
    Trained parameters come from the optimizer's fp32 master copies, frozen ones from the module;
    one at a time (gathered under ZeRO-3): ZeRO's own fp32 reconstruction leaves frozen ones out.
    A fine-tune (`tuning`, train/finetune.py) merges its adapters and records its base."""
    import deepspeed

    from deepspeed.utils import safe_get_full_fp32_param

    state = {}
    inner = engine.module.model
    for name, param in inner.named_parameters():
        # a trained parameter's fp32 master copy (a bf16 run's module holds rounded weights);
        # every rank calls it (a gather under ZeRO-3). Frozen ones have none: the module's own.
        master = safe_get_full_fp32_param(param) if param.requires_grad else None
        if master is not None:
            if rank == 0:
                state[name] = master.detach().float().cpu().clone()
            continue
        with deepspeed.zero.GatheredParameters([param], modifier_rank=None):
            if rank == 0:
                state[name] = param.detach().float().cpu().clone()
    if rank == 0:
        saved = inner.state_dict(keep_vars=True).keys()  # persistent buffers only (not e.g. sung_units)
        for name, buf in inner.named_buffers():
            if name in saved:
                state[name] = buf.detach().cpu().clone()
        if tuning is not None:
            state = tuning.export_state(state, run / "export")
        save_bundle(run / "export", state, inner.cfg, codec=card.codec, text=card.text, genres=card.genres, step=step,
                    stage=cfg.stage, parent=card.parent, origin=tuning.origin if tuning is not None else None,
                    key_normalised=card.key_normalised)
