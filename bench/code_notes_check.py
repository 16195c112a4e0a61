"""How well the codec's note table (model/code_notes.py: each first-codebook code held and pitch-tracked)
names the pitch of real decoded songs: DATA's train songs decoded, pitch-tracked at the codec's frame
rate, and each frame's code looked up; beside a table fitted by majority vote on the first three
quarters of the songs, both scored on the last quarter.

Usage: python bench/code_notes_check.py DATA [SONGS=200]
"""
import collections
import sys
import time

import numpy as np

from autosong.manifests.dataset import Dataset
from autosong.model.code_notes import UNVOICED, code_notes
from autosong.model.codec import Codec
from autosong.model.pitch import pitch_track

data, count = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 200
dataset = Dataset.open(data)
codec = Codec.load(dataset.card.codec.source)
t0 = time.perf_counter()
from_codec = code_notes(codec)
print(f"codec table: {time.perf_counter() - t0:.1f} s (0 if cached), {(from_codec != UNVOICED).sum()} of "
      f"{len(from_codec)} codes voiced")
songs = []  # (first-codebook codes [T], tracked MIDI per frame [T], UNVOICED where none)
for sample in dataset.samples("train", count):
    track = pitch_track(codec.decode(sample.codes), codec.sample_rate, hop=1 / codec.frame_rate)
    n = min(len(track), sample.codes.shape[1])
    songs.append((sample.codes[0, :n].astype(int), np.where(np.isnan(track[:n]), UNVOICED, np.round(track[:n])).astype(int)))
fit, held_out = songs[: len(songs) * 3 // 4], songs[len(songs) * 3 // 4:]
votes = collections.defaultdict(collections.Counter)
for codes, pitch in fit:
    for code, p in zip(codes, pitch):
        votes[code][p] += 1
from_songs = np.full(len(from_codec), UNVOICED)
for code, counter in votes.items():
    from_songs[code] = counter.most_common(1)[0][0]
codes = np.concatenate([c for c, _ in held_out])
pitch = np.concatenate([p for _, p in held_out])
voiced = pitch != UNVOICED
for name, table in (("the codec's (shipped)", from_codec), ("fitted on the songs", from_songs)):
    right = table[codes] == pitch
    print(f"{name}: right on {right.mean():.1%} of frames, {right[voiced].mean():.1%} of voiced frames")
print(f"the two tables agree on {(from_codec == from_songs).mean():.1%} of codes")
