"""A one-seed screen of a training change for the singing benchmark: the demo's training (its recipe
and SINGING_DESIGN, a seed, a number of steps) on a dataset already built, with config overrides,
then the demo's teacher-forced eval (its conditioning gains, whose genre-only term runs a memory with
no lyric slot, as the demo does) and its note-error eval (32 held-out songs, the default sampler).
Writes OUT/ner.json.

Usage: python bench/demo_screen.py DATA OUT SEED STEPS -- --model.future_weight 1.0   (THREADS=2 by default)
"""
import sys, os, time, json
os.environ.setdefault("DS_ACCELERATOR", "cpu"); os.environ.setdefault("RAY_AUTH_MODE", "disabled")
from pathlib import Path
import torch.distributed as dist
from autosong.demo import DEMO_TRAINING, CONFIGS
from autosong.eval.evaluate import evaluate
from autosong.eval.singing import note_error_rates
from autosong.model.api import AutoSong
from autosong.model.sampling import SamplingConfig
from autosong.model.threads import use_threads
from autosong.train.config import load_config
from autosong.train.trainer import train
data, out, seed, steps = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
extra = sys.argv[6:] if len(sys.argv) > 5 and sys.argv[5] == '--' else []
use_threads(int(os.environ.get('THREADS', '2')))
t0 = time.time()
import shutil; shutil.rmtree(out / 'run', ignore_errors=True)
cfg = load_config(CONFIGS / "model/tiny.yaml", ["--train.steps", str(steps), "--train.seed", str(seed), "--train.log_every", "100",
                  "--train.micro_batch", "8", *DEMO_TRAINING, *extra])
train(data, cfg, out / 'run', str(CONFIGS / "deepspeed/zero1.json"))
if dist.is_initialized(): dist.destroy_process_group()
t1 = time.time()
song = AutoSong.load(out / 'run', 'cpu', 'fp32')
gain = evaluate(song.bundle, data, 'val', seed=seed)['conditioning_gain']
r = note_error_rates(song, data, 'val', 32, 6.0, SamplingConfig(seed=seed))
r['train_s'] = t1 - t0; r['extra'] = extra; r['conditioning_gain'] = gain
json.dump(r, open(out / 'ner.json', 'w'))
o = r['own']; d = r['difference']
print(f"RESULT {extra} seed {seed}: own {r['ner_true']:.3f} ctl {r['ner_control']:.3f} diff {d['mean']:+.2f} {d['ci95']} "
      f"rec {o['recall']:.2f} prec {o['precision']:.2f} ratio {o['sung_ratio']:.2f} "
      f"lyric gain {gain['shuffled_lyrics']['mean']:+.3f} train {t1-t0:.0f}s", flush=True)
