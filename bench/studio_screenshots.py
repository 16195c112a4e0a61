"""The README's screenshots of `autosong studio`: its three views over real runs, in Debian's
headless Chromium.

Usage: python bench/studio_screenshots.py --runs out/bench_timed
       (the runs of `python bench/lyrics.py --quick --codec tiny --align syllables,timed --seeds 0
       --work out/bench_timed`, one of them evaluated into RUN/eval) -> bench/results/studio_*.png
"""
from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.request import urlopen

ROOT = Path(__file__).resolve().parents[1]
LYRICS = ("[verse]\nI walk along the river\nGolden summer midnight\n\n[chorus]\nShine away tonight\n"
          "Hold the light forever\n")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", required=True)
    p.add_argument("--genre", default="pop")
    p.add_argument("--seconds", default="8")
    p.add_argument("--out", default=str(ROOT / "bench/results"))
    args = p.parse_args()
    from playwright.sync_api import sync_playwright

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "autosong_cli", "studio", "--runs", args.runs, "--port", str(port)],
                              cwd=ROOT)
    url = f"http://127.0.0.1:{port}/"
    try:
        for _ in range(180):
            try:
                urlopen(url, timeout=2)
                break
            except OSError:
                time.sleep(1)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(url, wait_until="networkidle")
            page.fill("#lyrics textarea", LYRICS)
            page.fill("#seconds input", args.seconds)
            page.click("#generate")
            page.wait_for_selector("#figures svg.figure", timeout=600_000)
            page.wait_for_timeout(2000)
            page.screenshot(path=f"{args.out}/studio_generate.png", full_page=True)
            page.get_by_role("tab", name="Compare").click()
            page.fill("#compare-lyrics textarea", LYRICS)
            page.locator("input[type=number]").nth(1).fill(args.seconds)
            page.click("#compare")
            page.wait_for_selector("text=held-out CE", timeout=600_000)
            page.wait_for_timeout(3000)
            page.screenshot(path=f"{args.out}/studio_compare.png", full_page=True)
            page.get_by_role("tab", name="Runs").click()
            page.wait_for_selector("#run-page .curves svg", timeout=60_000)
            page.wait_for_timeout(1000)
            page.screenshot(path=f"{args.out}/studio_runs.png", full_page=True)
            browser.close()
    finally:
        server.terminate()
    print(f"wrote {args.out}/studio_{{generate,compare,runs}}.png")


if __name__ == "__main__":
    main()
