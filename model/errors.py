"""The one exception family a CLI shows as a single line: bad input or state the user can fix."""
from __future__ import annotations

import errno
import os
import sys


class AutoSongError(Exception):
    """Raised with a message that names the file or value at fault and the fix."""


def run_cli(main, argv: list[str] | None) -> int:
    """Run a stage's `main(argv)`; user errors become one line on stderr and exit code 2.
    AUTOSONG_DEBUG=1 shows the traceback instead."""
    from manifests import ManifestError

    try:
        return int(main(argv) or 0)
    except (AutoSongError, ManifestError) as err:
        if os.environ.get("AUTOSONG_DEBUG"):
            raise
        print(f"autosong: error: {without_worker_traceback(str(err))}", file=sys.stderr)
        return 2
    except OSError as err:
        # The machine's state, never a bug: a path the user may not read or write, a full or
        # read-only disk. Other OSErrors keep their traceback.
        if err.errno not in _ENVIRONMENT_ERRNOS or os.environ.get("AUTOSONG_DEBUG"):
            raise
        verb = "write" if err.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS) else "access"
        print(f"autosong: error: {os_error_words(err, verb)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("autosong: interrupted", file=sys.stderr)
        return 130


def without_worker_traceback(message: str) -> str:
    """A DataLoader worker's error reaches the main process as 'Caught X in DataLoader worker
    process 0. Original Traceback ...', ending in 'X: message': keep the message only."""
    if "Original Traceback" not in message:
        return message
    return message.strip().splitlines()[-1].split(": ", 1)[-1]


_ENVIRONMENT_ERRNOS = (errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EDQUOT, errno.EROFS)
_OS_REASONS = {
    errno.EACCES: "permission denied (fix its permissions, or run as a user who may {verb} it)",
    errno.EPERM: "operation not permitted (fix its permissions)",
    errno.ENOENT: "it does not exist (moved or deleted while the build ran?)",
    errno.EISDIR: "it is a directory, not a file",
    errno.ENOTDIR: "a part of its path is not a directory",
    errno.ELOOP: "a symlink loop",
    errno.ENOSPC: "no space left on the device (free some space and run the same command again)",
    errno.EDQUOT: "disk quota exceeded (free some space and run the same command again)",
    errno.EROFS: "a read-only file system (choose a writable location)",
    errno.EIO: "an I/O error (a failing disk or a network file system?)",
    errno.ENAMETOOLONG: "its name is too long for the file system",
}


def os_error_words(err: OSError, verb: str = "read") -> str:
    """'cannot read /x/audio.flac: permission denied (...)': an OSError as a sentence for a person."""
    reason = _OS_REASONS.get(err.errno, err.strerror or type(err).__name__).format(verb=verb)
    target = err.filename if err.filename is not None else "a file"
    return f"cannot {verb} {target}: {reason}"


def check_writable_dir(folder) -> None:
    """Create `folder` if needed and prove a file can be written in it, before long work whose
    result would go there; raises the OSError (which run_cli shows as one line)."""
    import tempfile
    from pathlib import Path

    Path(folder).mkdir(parents=True, exist_ok=True)
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        raise OSError(err.errno, err.strerror, str(folder)) from None
