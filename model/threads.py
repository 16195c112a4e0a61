"""How many CPU threads a command runs the model on: --threads, else OMP_NUM_THREADS, else the cores
the machine's load leaves free. No torch at import (the command lines' --help stays fast)."""
from __future__ import annotations

import os
import sys


def cpu_threads(requested: int | None = None) -> tuple[int, str]:
    """(threads, why): `requested`, else OMP_NUM_THREADS, else the cores the 1-minute load average
    leaves free (at least 1). Torch's own default, every core, turns a busy machine's CPU into a
    queue at each parallel region's barrier: beside two other jobs on 2 cores a song took 20x
    longer, where a fair share costs 3-4x (bench/RESULTS.md, "Threads")."""
    if requested:
        return requested, "--threads"
    env = os.environ.get("OMP_NUM_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return int(env), "OMP_NUM_THREADS"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    free = cores - os.getloadavg()[0] if hasattr(os, "getloadavg") else cores
    threads = max(1, min(cores, int(round(free))))
    return threads, ("every core" if threads == cores else
                     f"the machine is busy (load {os.getloadavg()[0]:.1f} on {cores} cores)")


def use_threads(requested: int | None = None, quiet: bool = False) -> int:
    """Set torch's CPU threads by cpu_threads' rule; says so on a terminal when the load made it fewer."""
    import torch

    threads, why = cpu_threads(requested)
    torch.set_num_threads(threads)
    if why.startswith("the machine is busy") and not quiet and sys.stderr.isatty():  # scripts' stderr stays theirs
        print(f"note: {threads} CPU thread{'s' if threads > 1 else ''}: {why}; --threads N to choose",
              file=sys.stderr)
    return threads
