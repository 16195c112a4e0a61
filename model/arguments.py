"""argparse types that refuse a bad number at parse time, with one line and exit 2:
`whole(1)` (an integer >= 1), `real(0, 1)` (a finite float in [0, 1])."""
from __future__ import annotations

import argparse
import copy
import math


def whole(low: int | None = None, high: int | None = None):
    def parse(raw: str) -> int:
        try:
            value = float(raw)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {raw!r}") from None
        if not math.isfinite(value) or not value.is_integer():
            raise argparse.ArgumentTypeError(f"expected a whole number, got {raw!r}")
        _check_range(int(value), low, high, raw)
        return int(value)

    return parse


def real(low: float | None = None, high: float | None = None, above: bool = False):
    """A finite float in [low, high] (or (low, high] with above=True)."""
    def parse(raw: str) -> float:
        try:
            value = float(raw)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {raw!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"expected a finite number, got {raw!r}")
        if above and low is not None and value <= low:
            raise argparse.ArgumentTypeError(f"must be above {low:g}, got {raw}")
        _check_range(value, low, high, raw)
        return value

    return parse


def _check_range(value, low, high, raw: str) -> None:
    if low is not None and value < low:
        raise argparse.ArgumentTypeError(f"must be at least {low:g}, got {raw}")
    if high is not None and value > high:
        raise argparse.ArgumentTypeError(f"must be at most {high:g}, got {raw}")


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Every command's --help: each option's default where it has one ("(default: 10.0)"; not
    for flags and unset options), and the description's own line breaks."""

    def _format_action(self, action):
        default = action.default
        shown = action.option_strings and default is not None and default is not False and default != argparse.SUPPRESS
        if shown and action.help != argparse.SUPPRESS and "%(default)" not in (action.help or ""):
            action = copy.copy(action)
            action.help = f"{action.help or ''} (default: %(default)s)".strip()
        return super()._format_action(action)
