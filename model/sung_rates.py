"""How fast lyrics are sung (syllables a second, line by line), and whether line times found for a
recording sing its lyrics at a plausible rate (an alignment to be trusted, or a wrong recording)."""
from __future__ import annotations

import numpy as np

from autosong.model.lyrics import default_tokenizer, sung_units

DEFAULT_RATES = (1.0, 8.0)  # syllables per second, for heads chosen before their songs' rates were recorded


def line_units(text_ids, line_slots) -> np.ndarray:
    """Sung syllables in each line (model/lyrics.sung_units over its ids, from its first word's slot
    to the next line's), [N]."""
    units = np.asarray(sung_units(default_tokenizer()))[np.asarray(text_ids)]
    bounds = list(line_slots) + [len(units)]
    return np.array([units[a:b].sum() for a, b in zip(bounds[:-1], bounds[1:])])


def sung_rates(starts, end_s: float, units: np.ndarray) -> np.ndarray:
    """Syllables per second each line is sung at, given the line starts (s) and where the audio ends."""
    ends = np.append(np.asarray(starts[1:], dtype=np.float64), end_s)
    return units / np.maximum(ends - np.asarray(starts, dtype=np.float64), 0.05)


RATE_MARGIN = 1.5  # beyond the usual rates by this factor: not a way these lyrics are sung


def weak_alignment(starts, end_s: float, units: np.ndarray, usual: tuple[float, float]) -> str | None:
    """Why an alignment of these lyrics to a recording of `end_s` seconds is not to be trusted, or
    None: the lyrics sung far slower or faster than the songs the heads were chosen on (`usual`:
    their 5th and 95th percentile syllables per second), over the whole recording or line by line.
    Only a line's being too fast counts alone, and never the last line's slowness: breaks and an
    outro stretch a line without saying anything."""
    low, high = usual[0] / RATE_MARGIN, usual[1] * RATE_MARGIN
    rates = sung_rates(starts, end_s, units)
    overall = units.sum() / max(end_s, 1e-9)
    fast = [i for i, r in enumerate(rates) if r > high]
    slow = [i for i, r in enumerate(rates[:-1]) if 0 < r < low]
    if low <= overall <= high and not fast:
        return None
    lines = lambda ids: f"{'lines' if len(ids) > 1 else 'line'} {', '.join(str(i + 1) for i in ids)}"  # noqa: E731
    said = [f"the lyrics hold {units.sum():.0f} syllables for {end_s:.1f} s of audio ({overall:.2f} a second, where "
            f"the songs the model's alignment heads were chosen on sing {usual[0]:.2f} to {usual[1]:.2f})"]
    if fast:
        said.append(f"{lines(fast)} would be sung implausibly fast")
    if slow:
        said.append(f"{lines(slow)} implausibly slowly")
    return "; ".join(said) + ": is this the recording of these lyrics?"
