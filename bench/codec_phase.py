"""Phase from magnitudes: which reconstruction should the spectral decoder use?

For unseen synth songs, each recipe turns STFT magnitudes (n_fft 1280, hop 320) into a waveform:
Griffin-Lim from zero phase, the peak-locked phase vocoder alone, and the vocoder followed by
Griffin-Lim iterations. Magnitudes come from two places: the exact STFT of the song (what phase
reconstruction can do at best), and a spectral-decoder codec's prediction through its VQ (what
ships). Figures: the share of sung notes within a semitone, the log-mel distance to the
original, and the phase step's speed as audio seconds per wall second.

Usage: python bench/codec_phase.py [--codec tiny] [--songs 8]
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

RECIPES = {  # name: (phase_init, griffin_lim_iterations)
    "griffin-lim 32, zero phase": ("zeros", 32),
    "vocoder": ("vocoder", 0),
    "vocoder + griffin-lim 8": ("vocoder", 8),
    "vocoder + griffin-lim 16": ("vocoder", 16),
    "vocoder + griffin-lim 32": ("vocoder", 32),
}


def main() -> None:
    import numpy as np
    import torch

    from bench.codec import unseen_songs
    from autosong.eval.audio_metrics import mel_distance, note_pitch_accuracy
    from autosong.model.codec import Codec
    from autosong.model.phase import griffin_lim, stft, vocoder_phase

    p = argparse.ArgumentParser()
    p.add_argument("--codec", default="tiny", help="a spectral-decoder codec (tiny or a directory)")
    p.add_argument("--songs", type=int, default=8)
    p.add_argument("--out", default=str(ROOT / "bench/results/codec_phase.json"))
    args = p.parse_args()
    codec = Codec.load(args.codec)
    decoder, quantizer = codec.model.decoder, codec.model.quantizer
    n_fft, hop = decoder.cfg.n_fft, decoder.cfg.hop
    rows = []
    songs = unseen_songs(args.songs)
    for source in ("exact", "codec"):
        for name, (init, iterations) in RECIPES.items():
            hits = notes = 0
            mels, audio_s, wall = [], 0.0, 0.0
            for wav, timeline in songs:
                wav = wav[: len(wav) // hop * hop]
                with torch.no_grad():
                    if source == "exact":
                        mag = stft(torch.from_numpy(wav)[None], n_fft, hop).abs()
                    else:
                        codes = torch.from_numpy(codec.encode(wav, 24_000).astype(np.int64))
                        mag = decoder.magnitudes(quantizer.decode(codes[:, None]))
                    t0 = time.perf_counter()
                    phase = vocoder_phase(mag, n_fft, hop) if init == "vocoder" else None
                    out = griffin_lim(mag, n_fft, hop, len(wav), iterations, phase=phase)[0].numpy()
                    wall += time.perf_counter() - t0
                audio_s += len(wav) / 24_000
                share, n = note_pitch_accuracy(out, 24_000, timeline)
                hits, notes = hits + share * n, notes + n
                mels.append(mel_distance(wav, out, 24_000))
            rows.append({"magnitudes": source, "recipe": name, "pitch_accuracy": hits / notes, "notes": notes,
                         "mel_distance": float(np.mean(mels)), "audio_s_per_s": audio_s / wall})
    print(f"{len(songs)} unseen synth songs, {rows[0]['notes']} sung notes; codec {args.codec} "
          f"({decoder.cfg.phase_init}, {decoder.cfg.griffin_lim_iterations} iterations ships)")
    print(f"{'magnitudes':11}{'phase':30}{'notes within a semitone':>25}{'log-mel':>9}{'audio s/s':>11}")
    for r in rows:
        print(f"{r['magnitudes']:11}{r['recipe']:30}{r['pitch_accuracy']:25.1%}{r['mel_distance']:9.3f}"
              f"{r['audio_s_per_s']:11.0f}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"codec": args.codec, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
