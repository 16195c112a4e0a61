"""RUN/metrics.jsonl, one JSON object per logged step: the trainer writes it (with TensorBoard
scalars beside it), eval's report and anything else that plots a run read it back."""
from __future__ import annotations

import json
import sys
from pathlib import Path


def parse_metrics_line(line: str) -> dict | None:
    """One metrics.jsonl row, or None for a blank or torn line (what a kill in mid-write leaves)."""
    try:
        row = json.loads(line)
    except json.JSONDecodeError:
        return None
    return row if isinstance(row, dict) and isinstance(row.get("step"), int) else None


def read_metrics(path: str | Path) -> list[dict]:
    """The rows of a metrics.jsonl, torn lines left out; [] when there is none."""
    path = Path(path)
    lines = path.read_text(errors="replace").splitlines() if path.exists() else []
    return [row for row in map(parse_metrics_line, lines) if row is not None]


class MetricsLog:
    """RUN/metrics.jsonl (one JSON per logged step) and TensorBoard scalars; rank 0 only."""

    def __init__(self, run: Path, resume_step: int | None):
        self.path = run / "metrics.jsonl"
        if resume_step is not None and self.path.exists():  # drop steps logged after the checkpoint
            rows = [parse_metrics_line(ln) for ln in self.path.read_text(errors="replace").splitlines() if ln.strip()]
            keep = [row for row in rows if row is not None and row["step"] <= resume_step]
            if len(keep) < sum(1 for row in rows if row is None or row["step"] <= resume_step):
                print(f"autosong: {self.path}: dropped a torn line (a kill in mid-write)", file=sys.stderr)
            self.path.write_text("".join(json.dumps(row) + "\n" for row in keep))
        elif resume_step is None:
            self.path.write_text("")
        from torch.utils.tensorboard import SummaryWriter

        self.tb = SummaryWriter(str(run / "tensorboard"))

    def write(self, row: dict) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")
        for key, value in row.items():
            if key != "step" and value is not None:
                self.tb.add_scalar(key, value, row["step"])

    def close(self) -> None:
        self.tb.close()
