"""Which codec config learns melodies fastest? Equal-wall-time runs of `autosong codec train`.

Each row trains one EnCodec config (transformers' `EncodecModel`: strides, width, latent) for the
same wall time on one thread, then reconstructs unseen synth songs either through the plain
autoencoder (`ae_warmup=1`: the quantizer never starts, the upper bound of what the codes could
carry) or through the 2 x 1024 residual VQ, and reports the share of sung notes that come back
within a semitone and the log-mel distance (eval/audio_metrics.py), with the pitch each note of
one song came back at, which shows the failure mode: a decoder whose output repeats every frame
(320 samples) puts all its energy on multiples of 75 Hz, and notes snap there.

Usage: python bench/codec_configs.py NAME MINUTES [field=value ...]   (CodecTrainConfig fields)
       e.g. python bench/codec_configs.py strides-320 12 upsampling_ratios=320 num_filters=48 ae_warmup=1
Rows are appended to bench/results/codec_configs.jsonl.
"""
from __future__ import annotations

import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def reconstruct(model, wav, through_vq: bool):
    """float32 [N] at 24 kHz -> the codec's reconstruction [N] (autoencoder or VQ path)."""
    import numpy as np
    import torch

    hop = model.config.hop_length
    x = torch.from_numpy(np.pad(wav, (0, (-len(wav)) % hop)))[None, None]
    with torch.no_grad():
        emb = model.encoder(x)
        if through_vq:
            emb = model.quantizer.decode(model.quantizer.encode(emb, 1.5))
        return model.decoder(emb)[0, 0, : len(wav)].numpy()


def evaluate(model, through_vq: bool, songs: int = 6) -> dict:
    import numpy as np
    import soxr

    from autosong.eval.audio_metrics import estimate_pitch, mel_distance, note_pitch_accuracy
    from autosong.model.lyrics import default_tokenizer
    from autosong.model.synth_music import GENRES, SAMPLE_RATE, make_lyrics, note_timeline, render_song, song_seconds

    tok, sr = default_tokenizer(), 24_000
    hits = notes = 0
    mels, first_song = [], []
    for i in range(songs):  # seeds no codec training saw
        rng = np.random.default_rng([4242, i])
        genre = sorted(GENRES)[i % len(GENRES)]
        lyrics = make_lyrics(rng, 6.0, genre, tok)
        wav = soxr.resample(render_song(lyrics, genre, song_seconds(lyrics, genre, tok), rng, tok).mean(1),
                            SAMPLE_RATE, sr, quality="HQ").astype(np.float32)
        out = reconstruct(model, wav, through_vq)
        timeline = note_timeline(lyrics, genre, tok)
        share, n = note_pitch_accuracy(out, sr, timeline)
        hits, notes = hits + share * n, notes + n
        mels.append(mel_distance(wav, out, sr))
        if i == 0:
            first_song = [(p, round(estimate_pitch(out[int((s + .25 * d) * sr):int((s + .75 * d) * sr)], sr), 1))
                          for s, d, p in timeline if d >= 0.12]
    return {"pitch_accuracy": hits / notes, "notes": notes, "mel_distance": float(np.mean(mels)),
            "song0_true_vs_heard": first_song}


def main() -> None:
    import torch
    from transformers import EncodecModel

    from autosong.train.codec.config import CodecTrainConfig
    from autosong.train.codec.trainer import train_codec

    name, minutes, *fields = sys.argv[1:]
    types = {f.name: type(f.default) for f in dataclasses.fields(CodecTrainConfig)}
    overrides = {k: types[k](v) for k, v in (f.split("=", 1) for f in fields)}
    cfg = CodecTrainConfig(minutes=float(minutes), threads=1, save_every=10**9, **overrides)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.time()
        log = train_codec(cfg, tmp, log=lambda line: None)
        model = EncodecModel.from_pretrained(tmp).eval()
    torch.set_num_threads(1)
    through_vq = cfg.ae_warmup < 1
    row = {"name": name, "overrides": overrides, "minutes": float(minutes), "steps": log["history"][-1]["step"],
           "seconds": time.time() - t0, "path": "vq" if through_vq else "autoencoder",
           "parameters_m": sum(p.numel() for p in model.parameters()) / 1e6, **evaluate(model, through_vq)}
    print(f"{name}: {row['steps']} steps in {minutes} min, {row['path']}: {row['pitch_accuracy']:.1%} of "
          f"{row['notes']} notes within a semitone, log-mel distance {row['mel_distance']:.3f}")
    print("song 0, true MIDI pitch : heard:", " ".join(f"{p}:{h}" for p, h in row["song0_true_vs_heard"]))
    out = ROOT / "bench/results/codec_configs.jsonl"
    with out.open("a") as f:
        f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
