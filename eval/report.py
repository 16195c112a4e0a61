"""eval's HTML report: one self-contained file (inline SVG charts, PNG spectrograms and Ogg Vorbis
audio as data URIs: a seventh of WAV's size, with exact durations; no network, no script dependencies). Every user-provided string is escaped."""
from __future__ import annotations

import base64
import html
import io
import json
import struct
import zlib
from pathlib import Path

import numpy as np
from autosong.eval.notes import collapse, matched_notes, singing_score


def png_bytes(gray: np.ndarray) -> bytes:
    """uint8 [H, W, 3] -> PNG bytes (no imaging library needed)."""
    h, w, _ = gray.shape
    raw = b"".join(b"\x00" + gray[y].tobytes() for y in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))


SPECTROGRAM_HZ = (60.0, 6000.0)  # a log-frequency axis: the melodies' notes sit in its middle


def _hz_to_height(hz: np.ndarray | float) -> np.ndarray | float:
    """Frequency -> fraction of the spectrogram's height from the bottom (log axis)."""
    lo, hi = np.log(SPECTROGRAM_HZ[0]), np.log(SPECTROGRAM_HZ[1])
    return (np.log(hz) - lo) / (hi - lo)


def spectrogram_png(wav: np.ndarray, sr: int, height: int = 160, width: int = 480) -> bytes:
    """Log-magnitude STFT on a log-frequency axis (SPECTROGRAM_HZ, low at the bottom), on a
    dark-to-warm colour ramp: each note shows as a stack of its harmonics."""
    n_fft, hop = 2048, max(1, len(wav) // width)
    if len(wav) < n_fft:
        wav = np.pad(wav, (0, n_fft - len(wav)))
    frames = np.lib.stride_tricks.sliding_window_view(wav, n_fft)[::hop][:width]
    mag = np.abs(np.fft.rfft(frames * np.hanning(n_fft), axis=1))  # [W, F]
    db = 20 * np.log10(mag + 1e-6)
    db = np.clip((db - db.max() + 80) / 80, 0, 1)
    row_hz = np.exp(np.linspace(np.log(SPECTROGRAM_HZ[1]), np.log(SPECTROGRAM_HZ[0]), height))  # top row first
    bins = np.arange(mag.shape[1]) * sr / n_fft
    img = np.stack([np.interp(row_hz, bins, column) for column in db], axis=1)  # [H, W]
    return png_bytes(_ramp(img))


def _ramp(img: np.ndarray) -> np.ndarray:
    """[H, W] in [0, 1] -> uint8 [H, W, 3] on a dark-to-warm colour ramp."""
    rgb = np.stack([np.clip(img * 1.6, 0, 1), np.clip(img * 1.6 - 0.5, 0, 1), np.clip(img * 0.6, 0, 1) * 0.8], -1)
    return (rgb * 255).astype(np.uint8)


def alignment_png(weights: np.ndarray, height: int = 128, width: int = 480) -> bytes:
    """Cross-attention weights [frames, lyric slots] -> PNG, time left to right, the first lyric
    token at the top; each frame's column scaled to its own maximum so the path shows."""
    w = weights / np.maximum(weights.max(axis=1, keepdims=True), 1e-9)  # [T, L]
    cols = np.linspace(0, w.shape[0] - 1, width).astype(int)
    rows = np.linspace(0, w.shape[1] - 1, min(height, max(w.shape[1], 1) * 4)).astype(int)
    return png_bytes(_ramp(w[cols][:, rows].T))


def _figure(png: bytes, alt: str, x_label: str, x_max: float, y_label: str, y_ticks: list[tuple[float, str]],
            w: int = 480, h: int = 128, overlay: str = "") -> str:
    """An image inside an SVG with labelled axes: x from 0 to x_max, y ticks as (fraction from the
    bottom, label); `overlay` is SVG drawn over the image, in its pixel coordinates."""
    left, bottom = 58, 34
    ticks = []
    step = max(0.5, round(x_max / 6 * 2) / 2) if x_max > 0 else 1
    x = 0.0
    while x <= x_max + 1e-9:
        px = left + x / max(x_max, 1e-9) * w
        ticks.append(f'<line x1="{px:.1f}" y1="{h}" x2="{px:.1f}" y2="{h + 4}" stroke="#444"/>'
                     f'<text x="{px:.1f}" y="{h + 15}" font-size="10" text-anchor="middle">{x:g}</text>')
        x += step
    for frac, label in y_ticks:
        py = h - frac * h
        ticks.append(f'<line x1="{left - 4}" y1="{py:.1f}" x2="{left}" y2="{py:.1f}" stroke="#444"/>'
                     f'<text x="{left - 6}" y="{py + 3:.1f}" font-size="10" text-anchor="end">{html.escape(label)}</text>')
    return (f'<svg class="figure" width="{left + w + 10}" height="{h + bottom}" role="img" aria-label="{html.escape(alt)}">'
            f'<image x="{left}" y="0" width="{w}" height="{h}" preserveAspectRatio="none" '
            f'href="{_data_uri("image/png", png)}"/><g transform="translate({left},0)">{overlay}</g>{"".join(ticks)}'
            f'<text x="{left + w / 2}" y="{h + 30}" font-size="11" text-anchor="middle">{html.escape(x_label)}</text>'
            f'<text transform="translate(12,{h / 2}) rotate(-90)" font-size="11" text-anchor="middle">'
            f'{html.escape(y_label)}</text></svg>')


def _note_marks(notes: list, kind: str, seconds: float, w: int, h: int) -> str:
    """Notes (start s, length s, MIDI) as bars at their fundamental on the spectrogram's axes."""
    marks = []
    for start, length, pitch in notes:
        if start >= seconds:
            continue
        y = h - float(_hz_to_height(440.0 * 2 ** ((pitch - 69) / 12))) * h
        x0, x1 = start / seconds * w, min(start + length, seconds) / seconds * w
        marks.append(f'<line class="{kind}" x1="{x0:.1f}" y1="{y:.1f}" x2="{x1:.1f}" y2="{y:.1f}"/>')
    return "".join(marks)


NOTE_STYLE = {"expected-note": 'stroke="#4dabf7" stroke-width="3" stroke-opacity="0.8"',
              "sung-note": 'stroke="#69db7c" stroke-width="1.5" stroke-dasharray="3 2"'}


def spectrogram_figure(wav: np.ndarray, sr: int, alt: str, expected: list | None = None,
                       sung: list | None = None) -> str:
    """The spectrogram with its axes in seconds and Hz; `expected` notes (what the synth rule
    sings for the lyrics) and `sung` ones (transcribed) drawn over it, as (start, length, MIDI)."""
    w, h, seconds = 480, 160, len(wav) / sr
    ticks = [(float(_hz_to_height(hz)), f"{hz:g}") for hz in (100, 200, 500, 1000, 2000, 5000)]
    overlay = ""
    for kind, notes in (("expected-note", expected), ("sung-note", sung)):
        if notes:
            overlay += f'<g {NOTE_STYLE[kind]}>{_note_marks(notes, kind, seconds, w, h)}</g>'
    return _figure(spectrogram_png(wav, sr, h, w), alt, "time (s)", seconds, "frequency (Hz)", ticks, w, h, overlay)


def alignment_figure(weights: np.ndarray, frame_rate: float, alt: str, line_starts: list[float] | None = None) -> str:
    """The alignment map with axes; `line_starts` (s): a numbered mark where each lyric line starts."""
    L = weights.shape[1] - 1  # slot 0 is the genre token
    seconds, w, h = weights.shape[0] / frame_rate, 480, 128
    overlay = "".join(f'<g class="line-start"><line x1="{t / seconds * w:.1f}" y1="0" x2="{t / seconds * w:.1f}" '
                      f'y2="{h}" stroke="#e0301e" stroke-dasharray="3,2"/><text x="{t / seconds * w + 2:.1f}" '
                      f'y="10" font-size="9" fill="#e0301e">{i + 1}</text></g>'
                      for i, t in enumerate(line_starts or []))
    return _figure(alignment_png(weights), alt, "time (s)", seconds, "lyric token (0 = genre)",
                   [(1.0, "0"), (0.5, f"{L // 2}"), (0.0, f"{L}")], w, h, overlay)


OGG_CHUNK_SECONDS = 5.0  # libsndfile 1.2.2's Vorbis encoder segfaults on one write of ~2 min or more


def ogg_bytes(wav: np.ndarray, sr: int) -> bytes:
    """Ogg Vorbis of a mono song of any length, written a few seconds at a time (one whole-song
    write of a real-length song kills the process inside libsndfile)."""
    import soundfile as sf

    buf = io.BytesIO()
    wav = np.clip(np.asarray(wav, dtype=np.float32), -1, 1)
    step = int(OGG_CHUNK_SECONDS * sr)
    with sf.SoundFile(buf, "w", sr, 1, format="OGG", subtype="VORBIS") as out:
        for start in range(0, len(wav), step):
            out.write(wav[start : start + step])
    return buf.getvalue()


def _data_uri(mime: str, data: bytes) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def line_chart(series: dict[str, list[tuple[float, float]]], x_label: str, y_label: str, w: int = 560,
                h: int = 240) -> str:
    """Curves (name -> [(x, y)]) as an SVG with labelled axes and a legend."""
    pts = [p for s in series.values() for p in s]
    if not pts:
        return "<p>no training metrics</p>"
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    x0, x1, y0, y1 = min(xs), max(xs) or 1, min(ys), max(ys)
    sx = lambda x: 62 + (x - x0) / max(x1 - x0, 1e-9) * (w - 72)  # noqa: E731
    sy = lambda y: h - 40 - (y - y0) / max(y1 - y0, 1e-9) * (h - 55)  # noqa: E731
    colours = ["#d9480f", "#1971c2", "#2f9e44", "#862e9c"]
    out = [f'<svg width="{w}" height="{h}" role="img"><rect width="{w}" height="{h}" fill="#fff"/>',
           f'<line x1="62" y1="{h - 40}" x2="{w - 10}" y2="{h - 40}" stroke="#888"/>'
           f'<line x1="62" y1="15" x2="62" y2="{h - 40}" stroke="#888"/>',
           f'<text x="58" y="{sy(y1) + 4:.1f}" font-size="10" text-anchor="end">{y1:.2f}</text>'
           f'<text x="58" y="{sy(y0) + 4:.1f}" font-size="10" text-anchor="end">{y0:.2f}</text>',
           f'<text x="62" y="{h - 26}" font-size="10">{x0:g}</text>'
           f'<text x="{w - 10}" y="{h - 26}" font-size="10" text-anchor="end">{x1:g}</text>',
           f'<text x="{(w + 52) / 2}" y="{h - 8}" font-size="11" text-anchor="middle">{html.escape(x_label)}</text>',
           f'<text transform="translate(14,{(h - 40) / 2}) rotate(-90)" font-size="11" text-anchor="middle">'
           f'{html.escape(y_label)}</text>']
    for i, (name, s) in enumerate(series.items()):
        poly = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in s)
        c = colours[i % len(colours)]
        out.append(f'<polyline fill="none" stroke="{c}" stroke-width="1.5" points="{poly}"/>')
        out.append(f'<text x="{w - 120}" y="{16 + 14 * i}" font-size="11" fill="{c}">{html.escape(name)}</text>')
    return "".join(out) + "</svg>"


def _bar_chart(values: list[float], labels: list[str], x_label: str, y_label: str, w: int = 560, h: int = 200) -> str:
    top = max(values) or 1
    bw = (w - 40) / len(values)
    x0, base, tall = 34, h - 44, h - 64
    bars = "".join(
        f'<rect x="{x0 + i * bw:.1f}" y="{base - v / top * tall:.1f}" width="{bw * 0.8:.1f}" '
        f'height="{v / top * tall:.1f}" fill="#1971c2"/><text x="{x0 + i * bw:.1f}" y="{base + 14}" font-size="10">'
        f'{html.escape(labels[i])}</text><text x="{x0 + i * bw:.1f}" y="{base - 4 - v / top * tall:.1f}" '
        f'font-size="10">{v:.2f}</text>' for i, v in enumerate(values))
    axes = (f'<text x="{(w + x0) / 2}" y="{h - 8}" font-size="11" text-anchor="middle">{html.escape(x_label)}</text>'
            f'<text transform="translate(14,{base / 2 + 10}) rotate(-90)" font-size="11" text-anchor="middle">'
            f'{html.escape(y_label)}</text>')
    return f'<svg width="{w}" height="{h}" role="img"><rect width="{w}" height="{h}" fill="#fff"/>{bars}{axes}</svg>'


def _note_errors_html(ner: dict | None) -> str:
    """The note error rate section (synth data only): own lyrics, the control, the codec's ceiling."""
    if not ner:
        return ""
    d = ner["difference"]
    return (f'<h2>Do generated songs sing their lyrics?</h2><p>Note error rate (edit distance between the '
            f'pitches sung and those the lyrics call for, over the expected count; lower is better), '
            f'{ner["songs"]} held-out synth songs, each generated from its own lyrics and, as the control, '
            f'from another song\'s lyrics with the same model, genre and seed.</p>'
            f'<table class="note-errors"><tr><th>songs generated from</th><th>note error rate</th></tr>'
            f'<tr><td>their own lyrics</td><td>{ner["ner_true"]:.3f}</td></tr>'
            f'<tr><td>another song\'s lyrics (control)</td><td>{ner["ner_control"]:.3f}</td></tr>'
            f'<tr><td>the true audio, through the codec (ceiling)</td><td>{ner["ner_codec"]:.3f}</td></tr>'
            f'<tr><td>control - own lyrics (95% CI)</td><td>{d["mean"]:+.4f} [{d["ci95"][0]:+.4f}, '
            f'{d["ci95"][1]:+.4f}]</td></tr>' + _pooled_rows(ner.get("own")) + '</table>')


def _pooled_rows(own: dict | None) -> str:
    """Recall, precision and sung/expected of the songs sung from their own lyrics (eval/singing.pooled)."""
    if not own:
        return ""
    return (f'<tr><td>notes asked for that were sung (recall)</td><td>{own["recall"]:.2f}</td></tr>'
            f'<tr><td>notes sung that were asked for (precision)</td><td>{own["precision"]:.2f}</td></tr>'
            f'<tr><td>notes sung per note asked for</td><td>{own["sung_ratio"]:.2f}</td></tr>')


def write_report(path: Path, result: dict, metrics: list[dict], songs: list[dict], sample_rate: int) -> Path:
    """songs: [{"title", "lyrics", "genre", "wav" (float array), optional "reference_wav" (the true
    song, decoded from its codes), "alignment" ([frames, lyric slots] cross-attention weights),
    "frame_rate" (of the alignment's frames), "expected" (the notes the lyrics call for, synth
    data), "sung" and "reference_sung" (the notes transcribed from each)}]; result["note_errors"]
    (eval/singing.py) adds its section."""
    e = html.escape
    keys = [k for k in result["ce"] if k != "mean"] + ["mean"]
    ce_rows = "".join(
        f"<tr><td>{e(k)}</td><td>{result['ce'][k]:.3f}</td><td>{result['bits'][k]:.2f}</td>"
        f"<td>{result['perplexity'][k]:.1f}</td><td>{result['accuracy'][k]:.1%}</td></tr>" for k in keys)
    gain_rows = "".join(
        f"<tr><td>true vs {e(name)}</td><td>{g['mean']:+.4f}</td><td>[{g['ci95'][0]:+.4f}, {g['ci95'][1]:+.4f}]</td>"
        f"<td>{g['songs']}</td></tr>" for name, g in result["conditioning_gain"].items())
    curves = {k: [(m["step"], m[k]) for m in metrics if m.get(k) is not None]
              for k in ["loss"] + [k for k in (metrics[0] if metrics else {}) if k.startswith("ce_q")]}
    song_html = [_song_section(s, sample_rate) for s in songs]
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>AutoSong eval: {e(str(result['checkpoint']))}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:980px;margin:2em auto;color:#222}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}
td:first-child{{text-align:left}}pre{{background:#f6f6f6;padding:.5em;white-space:pre-wrap}}
img{{display:block;margin:.3em 0}}.song{{border-top:1px solid #ddd;margin-top:1em}}
.panels{{display:flex;flex-wrap:wrap;gap:1em}}h4{{margin:.4em 0;font-weight:500;font-size:.9em}}</style></head>
<body><h1>AutoSong evaluation</h1>
<p>checkpoint <code>{e(str(result['checkpoint']))}</code> (step {result['step']}), data <code>{e(str(result['data']))}</code>,
split <b>{e(result['split'])}</b>: {result['songs']} songs, {result['tokens']:,} tokens.</p>
<h2>Per-codebook cross-entropy</h2>
<table><tr><th>codebook</th><th>CE (nats)</th><th>bits</th><th>perplexity</th><th>top-1</th></tr>{ce_rows}</table>
<h2>Does the conditioning work?</h2>
<p>CE with an altered condition minus CE with the true one, nats per token; &gt; 0 means the model uses it.</p>
<table><tr><th>comparison</th><th>gain</th><th>95% CI</th><th>songs</th></tr>{gain_rows}</table>
{_note_errors_html(result.get("note_errors"))}
<h2>Training curves</h2>{line_chart(curves, "training step", "cross-entropy (nats/token)")}
<h2>CE by position in the song</h2>{_bar_chart(result['ce_by_position'], [f'{i}0%' for i in range(10)],
                                                "position in the song (tenths)", "CE (nats/token)")}
<h2>Generated songs</h2>{''.join(song_html) or '<p>none generated</p>'}
<script>
for (const a of document.querySelectorAll('audio')) {{
  a.addEventListener('loadedmetadata', () => {{
    a.dataset.duration = a.duration.toFixed(2);
    a.nextElementSibling.textContent = a.duration.toFixed(1) + ' s';
  }});
}}
</script>
<script type="application/json" id="eval-json">{e(json.dumps(result))}</script>
</body></html>
"""
    path.write_text(page, encoding="utf-8")
    return path


def _line_list(lines: list[str] | None, starts: list[float] | None) -> str:
    """Each lyric line with the time the alignment heads put its start at (the marks on the map)."""
    if not lines or not starts:
        return ""
    rows = "".join(f"<li>{t:.2f} s: {html.escape(text)}</li>" for text, t in zip(lines, starts))
    return f'<ol class="line-times">{rows}</ol>'


def _song_section(s: dict, sample_rate: int) -> str:
    """One generated song: its player and spectrogram, its lyric alignment, the true song beside it."""
    e = html.escape
    audio = _data_uri("audio/ogg", ogg_bytes(s["wav"], sample_rate))
    panels = [f'<div class="panel"><h4>generated</h4>'
              f'{spectrogram_figure(s["wav"], sample_rate, "spectrogram of the generated song", s.get("expected"), s.get("sung"))}'
              f'<audio controls preload="metadata" src="{audio}"></audio> <span class="duration"></span></div>']
    if s.get("alignment") is not None:
        share = s.get("prior_share")
        prior = ("no alignment prior" if share is None else
                 f'drawn with the alignment prior on; it moves <span class="prior-share">{share:.0%}</span> '
                 "of the attention (against the same map without it)")
        panels.append('<div class="panel"><h4>where it reads the lyrics (cross-attention, heads and layers '
                      f'averaged; {prior})</h4>' + alignment_figure(s["alignment"], s["frame_rate"],
                                                                   "cross-attention alignment: lyric token by time",
                                                                   s.get("line_starts"))
                      + _line_list(s.get("lines"), s.get("line_starts")) + '</div>')
    if s.get("reference_wav") is not None:
        ref = _data_uri("audio/ogg", ogg_bytes(s["reference_wav"], sample_rate))
        panels.append(f'<div class="panel"><h4>the true song (its codes, decoded)</h4>'
                      f'{spectrogram_figure(s["reference_wav"], sample_rate, "spectrogram of the true song", s.get("expected"), s.get("reference_sung"))}'
                      f'<audio controls preload="metadata" src="{ref}"></audio> <span class="duration"></span></div>')
    legend = ('<p class="legend"><span style="color:#1c7ed6">&#9473; notes the lyrics should be sung to</span> '
              '<span style="color:#2b8a3e">&#9476; notes heard (transcribed)</span></p>' if s.get("expected") else "")
    return (
        f'<section class="song"><h3>{e(s["title"])} <small>genre: {e(s["genre"])}</small></h3>{legend}'
        f'<div class="panels">{"".join(panels)}</div>{_note_rows(s)}<pre>{e(s["lyrics"])}</pre></section>')


NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


def note_name(midi: float) -> str:
    m = int(round(midi))
    return f"{NOTE_NAMES[m % 12]}{m // 12 - 1}"


def _note_rows(s: dict) -> str:
    """The notes the lyrics call for against those sung (repeats collapsed, as they are scored), the
    pairs a longest common subsequence matches in bold, and the song's score."""
    if not s.get("expected") or s.get("sung") is None:
        return ""

    expected, sung = collapse([n[2] for n in s["expected"]]), collapse([n[2] for n in s["sung"]])
    pairs = matched_notes(sung, expected)
    hit_e, hit_s = {i for i, _ in pairs}, {j for _, j in pairs}
    cells = lambda notes, hit: " ".join(f"<b>{note_name(p)}</b>" if i in hit else note_name(p)  # noqa: E731
                                        for i, p in enumerate(notes))
    score = singing_score(sung, expected)
    return (f'<table class="notes"><tr><th>asked for ({len(expected)})</th><td>{cells(expected, hit_e)}</td></tr>'
            f'<tr><th>sung ({len(sung)})</th><td>{cells(sung, hit_s)}</td></tr></table>'
            f'<p class="note-score">note error rate {score.ner:.2f}, recall {score.recall:.2f}, precision '
            f'{score.precision:.2f} (matched notes in bold)</p>')
