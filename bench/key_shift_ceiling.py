"""Where a key-normalised build loses notes: the shifter, the codec, or the key the codec is asked
to render. For each synth song (a `pipeline synth` corpus), the note error rate against the rule's
notes of audio made six ways:

- heard: the song as written;
- shifter: moved to C by the build's shift and back (model/key_shift.py), no codec;
- codec: through the codec in its own key;
- moved: moved to C, through the codec, moved back: what a normalised dataset holds, as the eval's
  "true audio through the codec" scores it;
- written in C: the song rendered in the key the shift moves it to (render_song(transpose=)), through
  the codec: the move without the shifter, scored against the rule moved by the shift;
- the other octave: the same, rendered in C an octave the other way (the shift -12 or +12).

Rows by genre and shift. If "moved" loses what "written in C" loses too, the codec is the limit, not
the shifter; if "the other octave" keeps what they lose, the octave the shift chooses is.

Usage: python bench/key_shift_ceiling.py CORPUS [--songs 40] [--codec tiny] [--out bench/results/key_shift_ceiling.json]
"""
from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import soxr
import torch

from autosong.eval.notes import singing_score, transcribe
from autosong.model.audio import load_audio
from autosong.model.codec import Codec
from autosong.model.key_shift import pitch_shift, shift_to_c
from autosong.model.lyrics import default_tokenizer
from autosong.model.song_key import key_signatures
from autosong.model.synth_music import SAMPLE_RATE, note_timeline, render_song

ROOT = Path(__file__).resolve().parents[1]
COLUMNS = ("heard", "shifter", "codec", "moved", "written in C", "the other octave")


def song_row(folder: Path, codec: Codec, tokenizer) -> dict | None:
    """The six NERs of one song, with its genre and shift; None for a song without notes."""
    sr = codec.sample_rate
    lyrics = (folder / "lyrics.txt").read_text(encoding="utf-8")
    genre = (folder / "genre.txt").read_text(encoding="utf-8").strip()

    def rule(transpose: int = 0) -> list[int]:
        return [p for _, _, p in note_timeline(lyrics, genre, tokenizer, transpose=transpose)]

    own = rule()
    if not own:
        return None
    wav = load_audio(next(folder.glob("audio.*")), sr).wav
    shift = shift_to_c(key_signatures(wav, sr))
    other = shift + 12 if shift < 0 else shift - 12

    def ner(audio: np.ndarray, notes: list[int]) -> float:
        return singing_score([n.pitch for n in transcribe(audio, sr)], notes).ner

    def through_codec(audio: np.ndarray) -> np.ndarray:
        return codec.decode(codec.encode(audio, sr))[: len(audio)]

    def written(transpose: int) -> np.ndarray:
        stereo = render_song(lyrics, genre, len(wav) / sr, np.random.default_rng(0), tokenizer, transpose=transpose)
        return soxr.resample(stereo.mean(1), SAMPLE_RATE, sr).astype(np.float32)

    moved = pitch_shift(wav, sr, shift)
    return {"song": folder.name, "genre": genre, "shift": shift, "other": other, "ner": {
        "heard": ner(wav, own), "shifter": ner(pitch_shift(moved, sr, -shift), own),
        "codec": ner(through_codec(wav), own),
        "moved": ner(pitch_shift(through_codec(moved), sr, -shift), own),
        "written in C": ner(through_codec(written(shift)), rule(shift)),
        "the other octave": ner(through_codec(written(other)), rule(other))}}


def table(rows: list[dict]) -> str:
    groups = defaultdict(list)
    for r in rows:
        groups[(r["genre"], r["shift"], r["other"])].append(r["ner"])
    lines = ["| genre | shift (other octave) | songs | " + " | ".join(COLUMNS) + " |",
             "|---|---|---:|" + "---:|" * len(COLUMNS)]
    for (genre, shift, other), ners in sorted(groups.items()):
        means = [np.mean([n[c] for n in ners]) for c in COLUMNS]
        cells = " | ".join(f"{m:.3f}" for m in means)
        lines.append(f"| {genre} | {shift:+d} ({other:+d}) | {len(ners)} | {cells} |")
    means = [np.mean([r["ner"][c] for r in rows]) for c in COLUMNS]
    lines.append(f"| all | | {len(rows)} | " + " | ".join(f"{m:.3f}" for m in means) + " |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("corpus")
    p.add_argument("--songs", type=int, default=40)
    p.add_argument("--codec", default="tiny")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=str(ROOT / "bench/results/key_shift_ceiling.json"))
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    codec, tokenizer = Codec.load(args.codec), default_tokenizer()
    rows = []
    for folder in sorted(Path(args.corpus).glob("song_*"))[: args.songs]:
        row = song_row(folder, codec, tokenizer)
        if row is not None:
            rows.append(row)
            print(row["song"], row["genre"], f"{row['shift']:+d}", {k: round(v, 3) for k, v in row["ner"].items()},
                  flush=True)
    print(table(rows))
    Path(args.out).write_text(json.dumps({"args": vars(args), "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
