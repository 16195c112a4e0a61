"""One writer per folder: a build holds OUT/.build.lock, a training RUN/.train.lock. The lock is an
flock on a file that names its holder (pid, host, command), so a second writer is refused at once
in one line that says who holds it; the kernel frees it when the holder dies, however it dies."""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

from autosong.manifests.errors import AutoSongError


@contextlib.contextmanager
def folder_lock(folder: Path, name: str, work: str) -> Iterator[None]:
    """Hold folder/name while the block runs; `work` says what holds it ("a build", "a training").
    Raises AutoSongError naming the holder when another process holds it."""
    path = Path(folder) / name
    with open(path, "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if os.fstat(lock.fileno()).st_ino != os.stat(path).st_ino:
                raise BlockingIOError  # its holder just ended and removed it: another one may hold the new file
        except (BlockingIOError, FileNotFoundError):
            raise AutoSongError(f"{folder} is in use: {work} already writes it ({holder(path)}; lock {path}); wait "
                                f"for it to end, or use another folder") from None
        lock.seek(0)
        lock.truncate()
        lock.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "command": " ".join(sys.argv)}))
        lock.flush()
        try:
            yield
        finally:  # removed while still held: no writer is left waiting on a dead file
            path.unlink(missing_ok=True)


def holder(path: Path) -> str:
    """Who holds a lock file, in words, from what it says."""
    try:
        who = json.loads(Path(path).read_text())
        return f"process {who['pid']} on {who['host']}: {who['command']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"
