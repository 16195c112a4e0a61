"""The Python API under a name nobody's folder shadows: `from autosong import AutoSong`.

The project's own packages keep the design's short names (`model`, `train`, `eval`, `pipeline`,
`manifests`), which a `model.py` in the working folder would hide (`'model' is not a package`).
Importing them through here puts the installation's own folder first, so they are always ours.
"""
from __future__ import annotations

import sys
from pathlib import Path

_HOME = str(Path(__file__).resolve().parents[1])  # the folder that holds model/, train/, ...
_OURS = ("model", "train", "eval", "pipeline", "manifests")

for _name in _OURS:
    _loaded = sys.modules.get(_name)
    if _loaded is not None and not str(getattr(_loaded, "__file__", "") or "").startswith(_HOME):
        raise ImportError(f"a module named {_name!r} from {getattr(_loaded, '__file__', '?')} is already imported and "
                          f"hides AutoSong's own {_name!r} package: import autosong before it, or rename it")
if sys.path[:1] != [_HOME]:
    sys.path.insert(0, _HOME)

__all__ = ["AutoSong", "Songs", "SamplingConfig", "SourceSong", "Edit"]


def __getattr__(name: str):
    """The API loads on first use (it imports torch), so that `autosong.command_line`, which every
    command imports, stays light."""
    if name in ("AutoSong", "Songs"):
        from model import api

        return getattr(api, name)
    if name == "SamplingConfig":
        from model.sampling import SamplingConfig

        return SamplingConfig
    if name in ("SourceSong", "Edit"):
        from model import edit

        return getattr(edit, name)
    raise AttributeError(f"module 'autosong' has no attribute {name!r}")
