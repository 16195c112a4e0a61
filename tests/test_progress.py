"""Long work reports progress in plain lines when its output is a file, not a terminal."""
import io

from autosong.manifests import progress as progress_module
from autosong.manifests.progress import PlainProgress, format_duration, progress


def test_plain_lines_with_counts_and_eta_when_the_output_is_a_file(monkeypatch):
    out = io.StringIO()  # not a terminal
    bar = progress(40, "encoding", "song", file=out)
    assert isinstance(bar, PlainProgress)
    clock = iter([0.0] + [5.0 * i for i in range(1, 41)] + [300.0])
    monkeypatch.setattr(progress_module.time, "perf_counter", lambda: next(clock))
    bar = PlainProgress(40, "encoding", "song", file=out)
    with bar:
        for _ in range(40):
            bar.update(1)
            bar.set_postfix(hours="0.01")
    lines = out.getvalue().splitlines()
    assert lines[0] == "encoding: 2/40 songs (5%), 10 s, ETA 3 min 10 s  hours=0.01"
    assert len(lines) == 21 and lines[-1].startswith("encoding: 40/40 songs (100%), 5 min 0 s")
    assert "ETA" not in lines[-1]
    assert [format_duration(s) for s in (4.4, 65, 7260)] == ["4 s", "1 min 5 s", "2 h 1 min"]
