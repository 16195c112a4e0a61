"""The ranges of the configs' numeric fields, declared beside each field, and the one check that
enforces them. A config dataclass declares `n_heads: int = ranged(4, low=1)` and calls
`check_ranges(self, "model")` in `__post_init__`, so a YAML preset, a command-line override and a
loaded bundle are all checked the same way, with a message that names the field.
"""
from __future__ import annotations

import dataclasses
import math


def ranged(default, low=None, high=None, above: bool = False, each: bool = False):
    """A dataclass field whose value must lie in [low, high] ((low, high] with `above`); `each`:
    the field is a tuple and every element must."""
    return dataclasses.field(default=default, metadata={"range": (low, high, above, each)})


def describe_range(low, high, above: bool) -> str:
    left = "above" if above else "at least"
    if high is None:
        return f"{left} {low:g}"
    return f"in ({low:g}, {high:g}]" if above else f"in [{low:g}, {high:g}]"


def check_ranges(config, section: str) -> None:
    """Raise ValueError naming `section.field` for the first declared field out of its range."""
    for f in dataclasses.fields(config):
        if "range" not in f.metadata:
            continue
        low, high, above, each = f.metadata["range"]
        value = getattr(config, f.name)
        values = value if each else (value,)
        if each and not isinstance(value, (tuple, list)):
            raise ValueError(f"{section}.{f.name} must be a list of numbers, got {value!r}")
        for v in values:
            whole = f.type == "tuple[int, ...]" or isinstance(f.default, int) and not isinstance(f.default, bool)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or (whole and not isinstance(v, int)):
                raise ValueError(f"{section}.{f.name} must be a {'whole ' if whole else ''}number, got {v!r}")
            bad = (not math.isfinite(v) or (low is not None and (v <= low if above else v < low))
                   or (high is not None and v > high))
            if bad:
                raise ValueError(f"{section}.{f.name} must be {describe_range(low, high, above)}, got {value!r}")
