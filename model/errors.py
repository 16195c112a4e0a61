"""The one exception family a CLI shows as a single line: bad input or state the user can fix."""
from __future__ import annotations

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
        print(f"autosong: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("autosong: interrupted", file=sys.stderr)
        return 130
