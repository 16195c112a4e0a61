"""`autosong studio` as a user meets it: started from the command line over a folder of runs, driven
in Debian's headless Chromium (no browser download) with every non-local request blocked and
recorded, and called through Gradio's own client for the concurrent and refused requests."""
import shutil
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import urlopen
from urllib.error import HTTPError

import pytest
import torch

from tests.conftest import ROOT

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
LYRICS = "[verse]\nI walk along the river\nshine away tonight\n"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def studio(trained_run, tmp_path_factory):
    """The studio over two runs (copies of the trained one), on a free local port: (URL, runs, out)."""
    root = tmp_path_factory.mktemp("studio")
    from autosong.model.line_times import AlignmentHeads

    for name in ("run_a", "run_b"):
        shutil.copytree(trained_run, root / "runs" / name, ignore=shutil.ignore_patterns("checkpoints"))
        AlignmentHeads([(0, 0), (1, 1)]).save(root / "runs" / name / "export")  # line times, for the Edit view
    port = _free_port()
    console = open(root / "console.txt", "w")  # what the studio prints, read by the tests
    proc = subprocess.Popen([sys.executable, "-m", "autosong_cli", "studio", "--runs", str(root / "runs"),
                             "--port", str(port), "--out", str(root / "out")],
                            cwd=ROOT, stdout=console, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 180
    while time.time() < deadline:
        try:
            urlopen(url, timeout=2)
            break
        except OSError:
            if proc.poll() is not None:
                pytest.fail(f"the studio exited: {(root / 'console.txt').read_text()[-3000:]}")
            time.sleep(1)
    else:
        proc.kill()
        pytest.fail("the studio did not answer within 180 s")
    yield url, root / "runs", root / "out"
    proc.terminate()
    proc.wait(timeout=30)


def _wait_for_audio(page, selector: str, count: int, seconds: float = 120) -> None:
    """Until `count` audio elements under `selector` have loaded their metadata. Gradio's player keeps
    its <audio> in a shadow root: Playwright's selectors reach it, document.querySelectorAll does not."""
    deadline = time.time() + seconds
    while len(page.eval_on_selector_all(selector, "els => els.filter(a => a.src && a.readyState >= 1)")) < count:
        if time.time() > deadline:
            raise AssertionError(f"fewer than {count} audio players loaded under {selector!r}")
        page.wait_for_timeout(250)


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (make test installs it when run as root)")
def test_generate_and_compare_in_a_browser_offline(studio, tmp_path):
    from playwright.sync_api import sync_playwright

    url, _, out = studio
    outside, errors = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        context = browser.new_context(viewport={"width": 1280, "height": 900})

        def only_local(route):  # anything the page asks of another host is recorded and refused
            request = route.request.url
            if request.startswith(("data:", "blob:")) or urlparse(request).hostname in ("127.0.0.1", "localhost"):
                route.continue_()
            else:
                outside.append(request)
                route.abort()

        context.route("**/*", only_local)
        page = context.new_page()
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(url, wait_until="networkidle")

        page.fill("#lyrics textarea", LYRICS)
        page.fill("#seconds input", "1")
        page.click("#generate")
        page.wait_for_selector("#figures svg.figure", timeout=120_000)
        _wait_for_audio(page, "#song audio", 1)
        durations = page.eval_on_selector_all("#song audio", "els => els.filter(a => a.src).map(a => a.duration)")
        figures = page.eval_on_selector_all(
            "#figures svg.figure", "els => els.map(f => [f.getAttribute('aria-label'), "
                                   "f.querySelector('image').getBBox().width, f.textContent.includes('time (s)')])")
        page.screenshot(path=str(tmp_path / "generate.png"), full_page=True)

        page.fill("#lyrics textarea", "")  # bad input: the CLI's one line, in the page
        page.click("#generate")
        toast = page.wait_for_selector("text=the lyrics are empty", timeout=30_000).inner_text()

        page.get_by_role("tab", name="Compare").click()
        page.fill("#compare-lyrics textarea", LYRICS)
        page.locator("input[type=number]").nth(1).fill("1")  # the Compare tab's length
        page.click("#compare")
        _wait_for_audio(page, "audio", 3)  # the Generate tab's song and two compared
        players = page.eval_on_selector_all("audio", "els => els.filter(a => a.src).map(a => a.duration)")
        page.get_by_role("tab", name="Edit").click()  # the last song generated, sung again from line 2
        page.wait_for_function("document.querySelector('#edit-lyrics textarea').value.length > 0", timeout=30_000)
        page.fill("#edit-lyrics textarea", "[verse]\nI walk along the river\nriver of golden stars\n")
        page.click("#edit")
        _wait_for_audio(page, "#after audio", 1)
        _wait_for_audio(page, "#before audio", 1)
        edited = page.eval_on_selector_all("#before audio, #after audio",
                                           "els => els.filter(a => a.src).map(a => a.duration)")
        page.get_by_role("tab", name="Runs").click()  # the run's training curves from its metrics.jsonl
        curves = page.wait_for_selector("#run-page .curves svg", timeout=30_000).text_content()
        browser.close()
    assert outside == [] and errors == [], (outside, errors)
    assert len(durations) == 1 and abs(durations[0] - 1.0) < 0.05, durations
    assert [f[0] for f in figures] == ["spectrogram of the generated song",
                                       "cross-attention alignment: lyric token by time"]
    assert all(width > 0 and has_axis for _, width, has_axis in figures), figures
    assert toast.strip().endswith("the lyrics are empty: generation is conditioned on the full lyrics")
    assert len(players) == 3 and all(abs(d - 1.0) < 0.05 for d in players), players  # 1 generated, 2 compared
    assert "training step" in curves and "loss" in curves
    # before and after, side by side; the edit's length is fitted to its new lines (model/edit.fitted_seconds)
    assert len(edited) == 2 and abs(edited[0] - 1.0) < 0.05 and 0.5 < edited[1] < 3.0, edited
    assert len(list(out.glob("*/song.wav"))) == 4 and len(list(out.glob("*/settings.json"))) == 4


def test_concurrent_requests_both_finish_and_outside_paths_are_refused(studio):
    from gradio_client import Client

    url, runs, _ = studio
    client = Client(url, verbose=False)
    request = (LYRICS, "unknown", 0.5, 3, 1, 250, 0, 4, 0, None)  # ... top-p, note hold, seed, prompt
    with ThreadPoolExecutor(2) as pool:  # two requests at once: the second queues behind the first
        jobs = [pool.submit(client.predict, name, *request, api_name="/generate") for name in ("run_a", "run_b")]
        results = [job.result(timeout=300) for job in jobs]
    assert all(Path(wav).stat().st_size > 0 for wav, _, _ in results)
    assert all("svg" in figures for _, figures, _ in results)

    before = (runs.parent / "console.txt").read_text().count("studio: refused")  # the browser test's own
    for name in ("../run_a", str(runs / "run_a"), "/etc", "../../etc"):  # a run is named, never a path
        with pytest.raises(Exception, match="is not one of this studio's"):
            client.predict(name, *request, api_name="/generate")
    with pytest.raises(Exception, match="is not one of this studio's"):
        client.predict(["run_a", "../../etc"], LYRICS, "unknown", 0.5, 3, 1, 250, 0, 4, 0, api_name="/compare")
    with pytest.raises(Exception, match="unknown genre 'jazz'"):
        client.predict("run_a", LYRICS, "jazz", *request[2:], api_name="/generate")
    with pytest.raises(Exception, match="the lyrics are empty"):
        client.predict("run_a", "  \n", *request[1:], api_name="/generate")
    with pytest.raises(Exception, match="model.max_frames"):  # past the model's frame positions
        client.predict("run_a", LYRICS, "unknown", 1000, *request[3:], api_name="/generate")
    for path in ("/etc/passwd", str(runs / "run_a" / "export" / "config.json")):
        with pytest.raises(HTTPError) as refused:
            urlopen(f"{url}gradio_api/file={path}", timeout=10)
        assert refused.value.code == 403
    console = (runs.parent / "console.txt").read_text()
    assert "Traceback" not in console, console[-3000:]
    assert console.count("studio: refused") - before == 8, console[-3000:]  # one line per refused call


def test_the_service_refuses_runs_it_was_not_given(trained_run, tmp_path):
    from autosong.eval.studio_service import Studio, find_runs
    from autosong.manifests.errors import AutoSongError

    studio = Studio(find_runs(None, [str(trained_run)]), tmp_path)
    name = trained_run.name  # the export, and the steps of its checkpoints (20 steps: one, at the end)
    assert list(studio.runs) == [name, f"{name} @ step 20"]
    export, step = (studio.song(n).bundle for n in studio.runs)
    assert step.step == 20 and step.alignment is None  # alignment heads are the export's
    assert all(torch.equal(v, step.model.state_dict()[k]) for k, v in export.model.state_dict().items())
    with pytest.raises(AutoSongError, match="is not one of the runs this studio serves"):
        studio.run_dir(str(trained_run))
    with pytest.raises(AutoSongError, match="holds no exported model"):
        find_runs(None, [str(tmp_path)])
    with pytest.raises(AutoSongError, match="no runs to serve"):
        find_runs(None, [])


def test_binding_beyond_this_machine_warns(tmp_path):
    out = subprocess.run([sys.executable, "-m", "autosong_cli", "studio", "--runs", str(tmp_path), "--host", "0.0.0.0"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.stderr.startswith("warning: --host 0.0.0.0 lets other machines reach this studio")
    assert out.returncode == 2 and "no runs to serve" in out.stderr  # and nothing was bound: no runs
