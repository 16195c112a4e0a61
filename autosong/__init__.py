"""AutoSong: whole songs from full lyrics and a genre. The Python API: `from autosong import AutoSong`.

Every module lives under this one name. The stage folders (manifests/, model/, pipeline/, train/,
eval/) sit at the top of the repository, as the design card lays them out, and are installed as
`autosong.manifests`, `autosong.model`, ... (pyproject.toml's package-dir); this folder holds the
commands. A user's own `model.py` or `train/` therefore hides nothing of ours.
"""
from __future__ import annotations

from autosong.model.sampling import SamplingConfig  # torch-free

__all__ = ["AutoSong", "Songs", "SamplingConfig", "SourceSong", "Edit"]


def __getattr__(name: str):
    """The API loads on first use (it imports torch), so that `autosong.command_line`, which every
    command imports, stays light."""
    if name in ("AutoSong", "Songs"):
        from autosong.model import api  # start-up time: torch

        return getattr(api, name)
    if name in ("SourceSong", "Edit"):
        from autosong.model import edit  # start-up time: torch

        return getattr(edit, name)
    raise AttributeError(f"module 'autosong' has no attribute {name!r}")
