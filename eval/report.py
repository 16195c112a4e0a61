"""eval's HTML report: one self-contained file (inline SVG charts, PNG spectrograms and WAV audio
as data URIs; no network, no script dependencies). Every user-provided string is escaped."""
from __future__ import annotations

import base64
import html
import io
import json
import struct
import zlib
from pathlib import Path

import numpy as np


def png_bytes(gray: np.ndarray) -> bytes:
    """uint8 [H, W, 3] -> PNG bytes (no imaging library needed)."""
    h, w, _ = gray.shape
    raw = b"".join(b"\x00" + gray[y].tobytes() for y in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))


def spectrogram_png(wav: np.ndarray, sr: int, height: int = 128, width: int = 480) -> bytes:
    """Log-magnitude STFT, low frequencies at the bottom, on a dark-to-warm colour ramp."""
    n_fft, hop = 1024, max(1, len(wav) // width)
    if len(wav) < n_fft:
        wav = np.pad(wav, (0, n_fft - len(wav)))
    frames = np.lib.stride_tricks.sliding_window_view(wav, n_fft)[::hop][:width]
    mag = np.abs(np.fft.rfft(frames * np.hanning(n_fft), axis=1))  # [W, F]
    db = 20 * np.log10(mag + 1e-6)
    db = np.clip((db - db.max() + 80) / 80, 0, 1)
    rows = np.linspace(0, db.shape[1] - 1, height).astype(int)[::-1]
    img = db[:, rows].T  # [H, W]
    rgb = np.stack([np.clip(img * 1.6, 0, 1), np.clip(img * 1.6 - 0.5, 0, 1), np.clip(img * 0.6, 0, 1) * 0.8], -1)
    return png_bytes((rgb * 255).astype(np.uint8))


def wav_bytes(wav: np.ndarray, sr: int) -> bytes:
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, np.clip(wav, -1, 1), sr, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def _data_uri(mime: str, data: bytes) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def _line_chart(series: dict[str, list[tuple[float, float]]], w: int = 560, h: int = 220) -> str:
    pts = [p for s in series.values() for p in s]
    if not pts:
        return "<p>no training metrics</p>"
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    x0, x1, y0, y1 = min(xs), max(xs) or 1, min(ys), max(ys)
    sx = lambda x: 40 + (x - x0) / max(x1 - x0, 1e-9) * (w - 50)  # noqa: E731
    sy = lambda y: h - 25 - (y - y0) / max(y1 - y0, 1e-9) * (h - 40)  # noqa: E731
    colours = ["#d9480f", "#1971c2", "#2f9e44", "#862e9c"]
    out = [f'<svg width="{w}" height="{h}" role="img"><rect width="{w}" height="{h}" fill="#fff"/>',
           f'<text x="4" y="14" font-size="11">{y1:.2f}</text><text x="4" y="{h - 25}" font-size="11">{y0:.2f}</text>',
           f'<text x="40" y="{h - 6}" font-size="11">step {x0:g}</text><text x="{w - 70}" y="{h - 6}" font-size="11">{x1:g}</text>']
    for i, (name, s) in enumerate(series.items()):
        poly = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in s)
        c = colours[i % len(colours)]
        out.append(f'<polyline fill="none" stroke="{c}" stroke-width="1.5" points="{poly}"/>')
        out.append(f'<text x="{w - 120}" y="{16 + 14 * i}" font-size="11" fill="{c}">{html.escape(name)}</text>')
    return "".join(out) + "</svg>"


def _bar_chart(values: list[float], labels: list[str], w: int = 560, h: int = 180) -> str:
    top = max(values) or 1
    bw = (w - 20) / len(values)
    bars = "".join(
        f'<rect x="{10 + i * bw:.1f}" y="{h - 30 - v / top * (h - 50):.1f}" width="{bw * 0.8:.1f}" '
        f'height="{v / top * (h - 50):.1f}" fill="#1971c2"/><text x="{10 + i * bw:.1f}" y="{h - 14}" font-size="10">'
        f'{html.escape(labels[i])}</text><text x="{10 + i * bw:.1f}" y="{h - 34 - v / top * (h - 50):.1f}" '
        f'font-size="10">{v:.2f}</text>' for i, v in enumerate(values))
    return f'<svg width="{w}" height="{h}" role="img"><rect width="{w}" height="{h}" fill="#fff"/>{bars}</svg>'


def write_report(path: Path, result: dict, metrics: list[dict], songs: list[dict], sample_rate: int) -> Path:
    """songs: [{"title", "lyrics", "genre", "wav" (float array)}]."""
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
    song_html = []
    for s in songs:
        spec = _data_uri("image/png", spectrogram_png(s["wav"], sample_rate))
        audio = _data_uri("audio/wav", wav_bytes(s["wav"], sample_rate))
        song_html.append(
            f'<section class="song"><h3>{e(s["title"])} <small>genre: {e(s["genre"])}</small></h3>'
            f'<img alt="spectrogram of {e(s["title"])}" src="{spec}"/>'
            f'<audio controls preload="metadata" src="{audio}"></audio> <span class="duration"></span>'
            f'<pre>{e(s["lyrics"])}</pre></section>')
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>AutoSong eval: {e(str(result['checkpoint']))}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:980px;margin:2em auto;color:#222}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}
td:first-child{{text-align:left}}pre{{background:#f6f6f6;padding:.5em;white-space:pre-wrap}}
img{{display:block;margin:.3em 0}}.song{{border-top:1px solid #ddd;margin-top:1em}}</style></head>
<body><h1>AutoSong evaluation</h1>
<p>checkpoint <code>{e(str(result['checkpoint']))}</code> (step {result['step']}), data <code>{e(str(result['data']))}</code>,
split <b>{e(result['split'])}</b>: {result['songs']} songs, {result['tokens']:,} tokens.</p>
<h2>Per-codebook cross-entropy</h2>
<table><tr><th>codebook</th><th>CE (nats)</th><th>bits</th><th>perplexity</th><th>top-1</th></tr>{ce_rows}</table>
<h2>Does the conditioning work?</h2>
<p>CE with an altered condition minus CE with the true one, nats per token; &gt; 0 means the model uses it.</p>
<table><tr><th>comparison</th><th>gain</th><th>95% CI</th><th>songs</th></tr>{gain_rows}</table>
<h2>Training curves</h2>{_line_chart(curves)}
<h2>CE by position in the song</h2>{_bar_chart(result['ce_by_position'], [f'{i}0%' for i in range(10)])}
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
