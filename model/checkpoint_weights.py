"""Reads a model's weights out of a run's DeepSpeed training checkpoints, to load a step other than the export's."""

from __future__ import annotations

from pathlib import Path

import torch

from autosong.manifests.errors import AutoSongError


def checkpoint_steps(run: Path) -> list[int]:
    """The steps of a run's training checkpoints whose model weights can be read (step_weights)."""
    found = sorted(Path(run).glob("checkpoints/step_*/mp_rank_00_model_states.pt"))
    return [int(p.parent.name[5:]) for p in found if p.parent.name[5:].isdigit()]


def step_weights(run: Path, step: int) -> dict:
    """The model's weights in the run's DeepSpeed checkpoint at `step` (ZeRO 0-2 keep them whole in
    mp_rank_00_model_states.pt, in the run's precision), named as in the export. Read with
    weights_only: tensors and plain containers, no code. ZeRO-3 and adapter runs are refused."""
    path = Path(run) / "checkpoints" / f"step_{step:08d}" / "mp_rank_00_model_states.pt"
    if not path.is_file():
        raise AutoSongError(f"{run} has no checkpoint at step {step} ({path} is missing)")
    module = torch.load(path, map_location="cpu", weights_only=True)["module"]
    state = {k.removeprefix("model."): v.float() for k, v in module.items()}
    if any(v.numel() == 0 for v in state.values()) or any(k.startswith("base_model.") for k in state):
        raise AutoSongError(f"{path} does not hold whole weights (a ZeRO-3 or adapter run): compare its exports")
    return state
