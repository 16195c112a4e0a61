"""What every `autosong` command shares: argparse types that refuse a bad number at parse time
(`whole(1)`: an integer >= 1, `real(0, 1)`: a finite float in [0, 1]), the --help format, a check
that an output folder is writable before long work, and `run_cli`, which runs a command's
`main` so that a user's error prints one line and exits 2 instead of a traceback, and the sampling
flags every command that samples takes (`add_sampling_arguments`, defaults from SamplingConfig),
and where a model runs (`add_device_arguments`: --device, --dtype, --threads).

Each command's module (autosong/*_cli.py, autosong/demo.py) imports this one; it imports no command.
"""
from __future__ import annotations

import argparse
import copy
import errno
import math
import os
import sys

from autosong.manifests.errors import AutoSongError, os_error_words
from autosong.model.devices import DEVICES
from autosong.model.sampling import SamplingConfig

_ENVIRONMENT_ERRNOS = (errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EDQUOT, errno.EROFS)


def whole(low: int | None = None, high: int | None = None):
    def parse(raw: str) -> int:
        try:
            value = float(raw)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {raw!r}") from None
        if not math.isfinite(value) or not value.is_integer():
            raise argparse.ArgumentTypeError(f"expected a whole number, got {raw!r}")
        _check_range(int(value), low, high, raw)
        return int(value)

    return parse


def real(low: float | None = None, high: float | None = None, above: bool = False):
    """A finite float in [low, high] (or (low, high] with above=True)."""
    def parse(raw: str) -> float:
        try:
            value = float(raw)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {raw!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"expected a finite number, got {raw!r}")
        if above and low is not None and value <= low:
            raise argparse.ArgumentTypeError(f"must be above {low:g}, got {raw}")
        _check_range(value, low, high, raw)
        return value

    return parse


def _check_range(value, low, high, raw: str) -> None:
    if low is not None and value < low:
        raise argparse.ArgumentTypeError(f"must be at least {low:g}, got {raw}")
    if high is not None and value > high:
        raise argparse.ArgumentTypeError(f"must be at most {high:g}, got {raw}")


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Every command's --help: each option's default where it has one ("(default: 10.0)"; not
    for flags and unset options), and the description's own line breaks."""

    def _format_action(self, action):
        default = action.default
        shown = action.option_strings and default is not None and default is not False and default != argparse.SUPPRESS
        if shown and action.help != argparse.SUPPRESS and "%(default)" not in (action.help or ""):
            action = copy.copy(action)
            action.help = f"{action.help or ''} (default: %(default)s)".strip()
        return super()._format_action(action)


def run_cli(main, argv: list[str] | None) -> int:
    """Run a stage's `main(argv)`; user errors become one line on stderr and exit code 2.
    AUTOSONG_DEBUG=1 shows the traceback instead."""
    try:
        return int(main(argv) or 0)
    except AutoSongError as err:  # ManifestError and every other kind of it too
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


def add_sampling_arguments(parser) -> None:
    """--temperature, --top-k, --top-p, --note-hold, --note-fade, --cfg, --lyric-cfg, --seed on an argparse parser, each
    defaulting to SamplingConfig's field: one set of defaults for every command that samples."""
    d = SamplingConfig()
    parser.add_argument("--temperature", type=real(0), default=d.temperature, help="0 = greedy")
    parser.add_argument("--top-k", type=whole(0), default=d.top_k, help="0 = off")
    parser.add_argument("--top-p", type=real(0, 1), default=d.top_p, help="0 = off")
    parser.add_argument("--note-hold", type=real(0), default=d.note_hold,
                        help="nats by which a note just begun is held (codebook 0 drawn note by note; 0 = off: "
                             "drawn code by code)")
    parser.add_argument("--note-fade", type=real(0), default=d.note_fade,
                        help="seconds over which that hold fades to none")
    parser.add_argument("--cfg", type=real(0), default=d.guidance, help="classifier-free guidance weight (1 = off)")
    parser.add_argument("--lyric-cfg", type=real(0), default=d.lyric_guidance,
                        help="weight of what the lyrics add over the genre alone (default: --cfg's)")
    parser.add_argument("--seed", type=whole(0), default=d.seed)


def sampling_from_args(args, **fields) -> SamplingConfig:
    """The SamplingConfig that add_sampling_arguments' flags ask for (plus `fields`)."""
    return SamplingConfig(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, note_hold=args.note_hold,
                          note_fade=args.note_fade, guidance=args.cfg, lyric_guidance=args.lyric_cfg, seed=args.seed, **fields)


def add_threads_argument(parser) -> None:
    parser.add_argument("--threads", type=whole(1), default=None,
                        help="CPU threads for the model (default: OMP_NUM_THREADS if set, else the cores "
                             "this machine's load leaves free, at least 1)")


def add_device_arguments(parser) -> None:
    """--device, --dtype and --threads, the same on every command that runs a model
    (model/devices.py and model/threads.py resolve them)."""
    parser.add_argument("--device", default="auto", help=f"where the model runs: {DEVICES} (default auto: "
                                                         "the GPU if there is one)")
    parser.add_argument("--dtype", default="auto", help="auto (bf16 on a GPU, fp32 on the CPU), fp32, bf16, fp16")
    add_threads_argument(parser)
