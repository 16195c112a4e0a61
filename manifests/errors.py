"""The one error hierarchy: AutoSongError (bad input or state the user can fix, with the fix in its
message) and its kinds, and the machine's OSErrors in words (`os_error_words`).
autosong/command_line.py shows either as one line. The ground floor: it imports nothing of ours."""
from __future__ import annotations

import errno


class AutoSongError(Exception):
    """Raised with a message that names the file or value at fault and the fix."""


class ManifestError(AutoSongError):
    """A dataset directory whose manifests are missing, of another version, or inconsistent."""


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


def os_error_words(err: OSError, verb: str = "read", where: object = None) -> str:
    """'cannot read /x/audio.flac: permission denied (...)': an OSError as a sentence for a person;
    `where` names the place when the error itself names no file (a full disk met mid-write)."""
    reason = _OS_REASONS.get(err.errno, err.strerror or type(err).__name__).format(verb=verb)
    target = err.filename if err.filename is not None else where if where is not None else "a file"
    return f"cannot {verb} {target}: {reason}"
