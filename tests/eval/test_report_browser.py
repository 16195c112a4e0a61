"""The report in a real headless Chromium (Debian's, driven by Playwright; no browser download)."""
import shutil

import pytest

from tests.eval.test_eval import autosong

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (make test installs it when run as root)")
def test_report_loads_without_errors_and_plays(trained_run, small_data, tmp_path):
    from playwright.sync_api import sync_playwright

    run = shutil.copytree(trained_run, tmp_path / "run", ignore=shutil.ignore_patterns("checkpoints"))  # eval
    out = autosong("eval", "--checkpoint", str(run), "--data", str(small_data), "--out", str(tmp_path),  # adds heads
                   "--generate", "2", "--seconds", "1")
    assert out.returncode == 0, out.stderr[-2000:]
    errors = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        page = browser.new_page()
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto((tmp_path / "report.html").as_uri())
        page.wait_for_function("[...document.querySelectorAll('audio')].every(a => a.readyState >= 1)", timeout=20_000)
        durations = page.eval_on_selector_all("audio", "els => els.map(a => a.duration)")
        figures = page.eval_on_selector_all(
            "svg.figure", "els => els.map(f => ({label: f.getAttribute('aria-label'), text: f.textContent, "
                          "href: f.querySelector('image').getAttribute('href').slice(0, 22), "
                          "width: f.querySelector('image').getBBox().width}))")
        charts = page.eval_on_selector_all("h2 + svg", "els => els.map(s => s.textContent)")
        # the notes the lyrics call for, drawn over each spectrogram, and the note error rate's table
        expected_marks = page.eval_on_selector_all(
            "svg.figure", "els => els.map(f => f.querySelectorAll('line.expected-note').length)")
        note_table = page.eval_on_selector_all("table.note-errors td", "els => els.map(td => td.textContent)")
        shot = page.screenshot(full_page=True)
        browser.close()
    assert errors == []
    # two generated songs, each beside the true song it took its lyrics from
    assert len(durations) == 4, durations
    generated = durations[0::2]
    assert all(abs(d - 1.0) < 0.05 for d in generated), durations
    kinds = [f["label"] for f in figures]
    assert kinds.count("spectrogram of the generated song") == 2
    assert kinds.count("spectrogram of the true song") == 2
    assert kinds.count("cross-attention alignment: lyric token by time") == 2
    for f in figures:  # an image with labelled axes
        assert f["href"] == "data:image/png;base64," and f["width"] > 0
        assert "time (s)" in f["text"]
        assert ("frequency (Hz)" in f["text"]) or ("lyric token" in f["text"])
    spectrograms = [n for f, n in zip(figures, expected_marks) if f["label"].startswith("spectrogram")]
    assert len(spectrograms) == 4 and all(n > 0 for n in spectrograms), expected_marks
    assert "their own lyrics" in note_table and "another song's lyrics (control)" in note_table, note_table
    assert any("training step" in c and "cross-entropy" in c for c in charts), charts
    assert any("position in the song" in c for c in charts), charts
    from PIL import Image  # noqa: F401  (webdataset's decode pulls Pillow in; used to read the screenshot)
    import io

    import numpy as np

    pixels = np.asarray(Image.open(io.BytesIO(shot)).convert("L"))
    assert pixels.std() > 10  # not a blank page
