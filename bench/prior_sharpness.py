"""A trained model's singing with its alignment prior sharpened at sampling time: every cross-attention
head's learned width w_h multiplied by K (sigma divided by sqrt K), so each frame reads the lyric
slots nearer its own place in the song harder; K = 1 is the model as trained. note_error_rates on 32
held-out songs (at most 6 s each), the default sampler with the given seed, one line per K.

Usage: python bench/prior_sharpness.py RUN DATA SEED K [K ...]   (THREADS=1 by default)
"""
import sys, os, math
import torch
from autosong.eval.singing import note_error_rates
from autosong.model.api import AutoSong
from autosong.model.attention import CrossAttention
from autosong.model.sampling import SamplingConfig
from autosong.model.threads import use_threads

run, data, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
use_threads(int(os.environ.get('THREADS', '1')))
song = AutoSong.load(run, 'cpu', 'fp32')  # once: each K is set from the trained widths, not stacked
heads = [m for m in song.bundle.model.modules() if isinstance(m, CrossAttention) and m.prior_log_w is not None]
if not heads:
    sys.exit(f"{run} has no alignment prior (model.cross_align none)")
trained = [m.prior_log_w.detach().clone() for m in heads]
for k in map(float, sys.argv[4:]):
    with torch.no_grad():
        for m, w in zip(heads, trained):
            m.prior_log_w.copy_(w + math.log(k))
    r = note_error_rates(song, data, 'val', 32, 6.0, SamplingConfig(seed=seed))
    o, d = r['own'], r['difference']
    print(f"RESULT {run} seed {seed} sharpness {k:g}: own {r['ner_true']:.3f} ctl {r['ner_control']:.3f} "
          f"diff {d['mean']:+.2f} [{d['ci95'][0]:+.2f}, {d['ci95'][1]:+.2f}] rec {o['recall']:.2f} "
          f"prec {o['precision']:.2f} ratio {o['sung_ratio']:.2f}", flush=True)
