"""Code usage per codebook, and the warning for a collapsed codec (build and inspect print both)."""
import numpy as np

from autosong.pipeline.code_usage import DEGENERATE_BELOW, CodeUsage


def test_a_collapsed_codec_is_named_and_a_healthy_one_is_not():
    rng = np.random.default_rng(0)
    healthy = CodeUsage(2, 1024)
    for _ in range(4):
        healthy.add(rng.integers(0, 1024, (2, 300)))
    assert healthy.warning() is None
    line = healthy.line()
    assert line.startswith("codes used  q0 ") and "/1024 (" in line and "(over 4 songs)" in line
    assert healthy.seen[0].sum() > 500 and f"q0 {healthy.seen[0].sum()}/1024" in line

    collapsed = CodeUsage(2, 1024)
    for _ in range(4):  # q0 holds 20 codes for all music, q1 is fine
        collapsed.add(np.stack([rng.integers(0, 20, 300), rng.integers(0, 1024, 300)]))
    warning = collapsed.warning()
    assert warning.startswith("warning: codebook(s) q0 use fewer than") and "q1" not in warning
    assert collapsed.seen[0].sum() == 20 < DEGENERATE_BELOW and "q0 20/1024 (20 per song)" in collapsed.line()
