"""A private Ray must not outlive the build that started it. `python -m autosong.pipeline.ray_watchdog PID`
runs beside the driver, reading its stdin: while the driver lives it notes the driver's descendants
(Ray's GCS, raylet, dashboard and runtime-env agents, workers) every half second; when stdin ends,
because the driver exited or was killed (SIGKILL included), it terminates the ones still running.
The raylet's agents are otherwise left behind, adopted by init, after a SIGKILL."""
from __future__ import annotations

import os
import select
import signal
import subprocess
import sys

POLL_SECONDS = 0.5


def start(driver: int | None = None) -> subprocess.Popen:
    """The watchdog of this process (or `driver`); it acts when the returned process's stdin closes,
    which happens when this process ends, however it ends."""
    return subprocess.Popen([sys.executable, "-m", "autosong.pipeline.ray_watchdog", str(driver or os.getpid())],
                            stdin=subprocess.PIPE, cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                            start_new_session=True)  # a Ctrl-C to the build's group is the driver's, not ours


def watch(driver: int) -> None:
    import psutil

    seen: dict[int, float] = {}  # pid -> create_time, so a reused pid is never killed
    me = os.getpid()
    while True:
        ready, _, _ = select.select([sys.stdin], [], [], POLL_SECONDS)
        if ready and not os.read(sys.stdin.fileno(), 1024):
            break  # the driver is gone
        try:
            for p in psutil.Process(driver).children(recursive=True):
                if p.pid != me:
                    seen.setdefault(p.pid, p.create_time())
        except psutil.Error:
            break
    left = []
    for pid, created in seen.items():
        try:
            p = psutil.Process(pid)
            if p.create_time() == created:
                p.send_signal(signal.SIGTERM)
                left.append(p)
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(left, timeout=3)
    for p in alive:
        try:
            p.kill()
        except psutil.Error:
            pass


if __name__ == "__main__":
    watch(int(sys.argv[1]))
