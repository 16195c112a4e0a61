"""`autosong studio`: a local web app to generate songs, listen to them and compare runs
(eval/studio_app.py). It binds to 127.0.0.1 unless told otherwise and fetches nothing from the
network; the page can reach only the runs it was started with."""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from autosong.command_line import HelpFormatter, add_device_arguments, run_cli, whole
from autosong.eval.studio_service import Studio, find_runs
from autosong.model.threads import use_threads

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="autosong studio", description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--runs", default=None, help="a folder of runs (each RUN/export), all served")
    p.add_argument("--checkpoint", action="append", default=[], help="a run to serve (repeatable)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind; anything but this machine is a warning")
    p.add_argument("--port", type=whole(1, 65535), default=7860)
    p.add_argument("--out", default=None, help="where generated songs are written (default: a new temporary folder)")
    add_device_arguments(p)
    return p


def run(argv) -> int:
    args = parser().parse_args(argv)
    from autosong.eval.studio_app import CSS, build, theme  # start-up time: Gradio takes seconds; --help answers first

    use_threads(args.threads)
    if args.host not in LOCAL_HOSTS:
        print(f"warning: --host {args.host} lets other machines reach this studio and the runs it serves; "
              f"there is no login", file=sys.stderr)
    runs = find_runs(args.runs, args.checkpoint)
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="autosong-studio-"))
    studio = Studio(runs, out, args.device, args.dtype)
    reports = sorted({str(ref.path / "eval") for ref in runs.values() if (ref.path / "eval").is_dir()})
    print(f"serving {len(runs)} run(s): {', '.join(runs)}; songs go to {out}", flush=True)
    build(studio).queue(default_concurrency_limit=1).launch(
        server_name=args.host, server_port=args.port, theme=theme(), css=CSS, allowed_paths=[str(out), *reports],
        show_error=True, share=False, inbrowser=False, quiet=False)
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_cli(run, argv)
