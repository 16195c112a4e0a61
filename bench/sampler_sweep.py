"""A trained model's singing under other sampler settings: note_error_rates on 32 held-out songs
(at most 6 s each; CAP=SECONDS for another cap), one line per setting (JSON of SamplingConfig fields; seed 0 unless given).
With SAVE=DIR each setting's whole result (per song: expected and sung notes) is written to
DIR/N.json, N the setting's place on the command line (0 first), for bench/sung_errors.py.

Usage: python bench/sampler_sweep.py RUN DATA '{"guidance": 5.0}' '{"temperature": 0.0}'   (THREADS=1 by default)
"""
import sys, json, os
from autosong.eval.singing import note_error_rates
from autosong.model.api import AutoSong
from autosong.model.sampling import SamplingConfig
from autosong.model.threads import use_threads
run, data = sys.argv[1], sys.argv[2]
use_threads(int(os.environ.get('THREADS', '1')))
song = AutoSong.load(run, 'cpu', 'fp32')
for n, spec in enumerate(sys.argv[3:]):
    kw = json.loads(spec)
    r = note_error_rates(song, data, 'val', 32, float(os.environ.get('CAP', '6')), SamplingConfig(**{'seed': 0, **kw}))
    if os.environ.get('SAVE'):
        os.makedirs(os.environ['SAVE'], exist_ok=True)
        json.dump(r, open(os.path.join(os.environ['SAVE'], f'{n}.json'), 'w'))
    o, d = r['own'], r['difference']
    print(f"RESULT {run} {kw}: own {r['ner_true']:.3f} ctl {r['ner_control']:.3f} diff {d['mean']:+.2f} "
          f"[{d['ci95'][0]:+.2f}, {d['ci95'][1]:+.2f}] rec {o['recall']:.2f} prec {o['precision']:.2f} ratio {o['sung_ratio']:.2f}", flush=True)
