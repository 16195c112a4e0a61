"""Progress for long work, the same in every stage: a tqdm bar on a terminal, and where output
goes to a file (a cluster's log, `nohup`), a plain line every few seconds with what is done of
the total, the rate and an ETA, so a log never goes silent for minutes."""
from __future__ import annotations

import sys
import time

PLAIN_EVERY_SECONDS = 10.0


def progress(total: int, desc: str, unit: str, initial: int = 0, file=None):
    """A tqdm bar when `file` (stderr) is a terminal, else a PlainProgress with the same methods."""
    file = file or sys.stderr
    if file.isatty():
        from tqdm import tqdm

        return tqdm(total=total, initial=initial, unit=unit, desc=desc, dynamic_ncols=True, file=file)
    return PlainProgress(total, desc, unit, initial, file)


class PlainProgress:
    """tqdm's update / set_postfix / write / close, printing `desc: n/total unit (pct), elapsed, ETA`
    at most every PLAIN_EVERY_SECONDS, and once at the end."""

    disable = False

    def __init__(self, total: int, desc: str, unit: str, initial: int = 0, file=None):
        self.total, self.desc, self.unit, self.n, self.file = total, desc, unit, initial, file or sys.stderr
        self.first, self.started = initial, time.perf_counter()
        self.last_print, self.postfix = self.started, ""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.perf_counter()
        if now - self.last_print >= PLAIN_EVERY_SECONDS:
            self.last_print = now
            self._print(now)

    def set_postfix(self, **values) -> None:
        self.postfix = ", ".join(f"{k}={v}" for k, v in values.items())

    def write(self, line: str, file=None) -> None:
        print(line, file=file or self.file, flush=True)

    def close(self) -> None:
        if self.n > self.first:
            self._print(time.perf_counter())

    def _print(self, now: float) -> None:
        elapsed = now - self.started
        done = self.n - self.first
        eta = elapsed / done * (self.total - self.n) if done and self.total else None
        share = f" ({self.n / self.total:.0%})" if self.total else ""
        line = f"{self.desc}: {self.n}/{self.total} {self.unit}s{share}, {format_duration(elapsed)}"
        if eta is not None and self.n < self.total:
            line += f", ETA {format_duration(eta)}"
        print(line + (f"  {self.postfix}" if self.postfix else ""), file=self.file, flush=True)


def format_duration(seconds: float) -> str:
    """'45 s', '12 min 5 s', '3 h 20 min': a wall time or an ETA for a log line."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"
