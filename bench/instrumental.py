"""`edit --instrumental` on two models, 4 held-out songs each: the share of each backing's length
that holds a note in the lead's range, and its RMS (so that silence cannot pass).

Usage: python bench/instrumental.py RUN_A DATA_A RUN_B DATA_B
"""
import sys, numpy as np, torch
from autosong.eval.evaluate import load_split
from autosong.eval.notes import transcribe
from autosong.model.api import AutoSong
from autosong.model.edit import Edit, SourceSong
from autosong.model.sampling import SamplingConfig
from autosong.model.synth_music import lowest_lead_pitch
torch.set_num_threads(1)
for run, data in [(sys.argv[1], sys.argv[2]), (sys.argv[3], sys.argv[4])]:
    song = AutoSong.load(run, 'cpu', 'fp32')
    _, songs = load_split(data, 'val', model=song.bundle)
    songs = [s for s in songs if '[instrumental]' not in s.lyrics][:4]
    shares, rms = [], []
    for s in songs:
        src = SourceSong(s.codes, s.lyrics, s.genre)
        b = song.edit(src, Edit(instrumental=True), None, SamplingConfig(seed=0))
        notes = transcribe(b.audio, b.sample_rate)
        sec = len(b.audio) / b.sample_rate
        shares.append(sum(n.length for n in notes if n.pitch >= lowest_lead_pitch(s.genre) - 0.5) / sec)
        rms.append(float(np.sqrt((b.audio ** 2).mean())))
    print(run, 'lead share', np.round(shares, 3), 'rms', np.round(rms, 3))
