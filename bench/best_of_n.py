"""Best of N: would choosing among several samples of a song, by the model's own scores, sing the
lyrics better? For each of the first 32 held-out songs (at most 6 s), N candidates from its own
lyrics in one batch (seed = the song's index), each transcribed and scored against its expected
notes, and each scored by the model teacher-forced: its mean CE under its lyrics and genre, and
under the null memory (their difference is what the conditioning explains, a pointwise mutual
information). Prints recall and precision when picking the first candidate (what `generate`
gives), the best by the true note error (an oracle: the most a reranker could win), the lowest
CE, and the highest PMI, over all tokens and over codebook 0 alone. Writes OUT (JSON, per song).

Usage: python bench/best_of_n.py RUN DATA N TEMPERATURE OUT   (THREADS=1 by default)
"""
import sys, os, json
import numpy as np
import torch
import torch.nn.functional as F
from autosong.eval.evaluate import load_split
from autosong.eval.notes import singing_score, transcribe
from autosong.model.api import AutoSong
from autosong.model.generate import text_batch
from autosong.model.sampling import SamplingConfig
from autosong.model.synth_music import expected_notes, sings_synth_notes
from autosong.model.threads import use_threads

run, data, N, T, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
use_threads(int(os.environ.get('THREADS', '1')))
song = AutoSong.load(run, 'cpu', 'fp32')
model, codec = song.bundle.model.eval(), song.codec
card, songs = load_split(data, 'val', model=song.bundle)
songs = [s for s in songs if sings_synth_notes(card, s.genre) and expected_notes(s.lyrics, s.genre)][:32]


def mean_ce(codes: np.ndarray, lyrics: str, genre: str, null: bool) -> tuple[np.ndarray, np.ndarray]:
    """Teacher-forced mean CE per candidate [N], over every target and over codebook 0's."""
    text = text_batch(song.bundle, [lyrics] * len(codes), [genre] * len(codes))
    c = torch.from_numpy(codes.astype(np.int64))
    n, frames = c.shape[0], c.shape[-1]
    with torch.no_grad():
        logits, pb = model(c, torch.full((n,), frames), torch.zeros(n, dtype=torch.long), text['text_ids'],
                           text['text_mask'], cond_drop=torch.full((n,), null), song_frames=torch.full((n,), frames))
    ce = F.cross_entropy(logits.float().flatten(0, 2), pb.targets.masked_fill(~pb.valid, 0).flatten(),
                         reduction='none').view(pb.targets.shape) * pb.valid
    valid = pb.valid.float()
    return (ce.sum((1, 2)) / valid.sum((1, 2))).numpy(), (ce[..., 0].sum(1) / valid[..., 0].sum(1)).numpy()


rows = []
for i, s in enumerate(songs):
    length = min(6.0, s.codes.shape[1] / codec.frame_rate)
    pitches = [p for start, _, p in expected_notes(s.lyrics, s.genre) if start < length]
    made = song.generate([s.lyrics] * N, [s.genre] * N, length, SamplingConfig(seed=i, temperature=T))
    own, own0 = mean_ce(made.codes, s.lyrics, s.genre, False)
    null, null0 = mean_ce(made.codes, s.lyrics, s.genre, True)
    scores = [singing_score([n.pitch for n in transcribe(a, codec.sample_rate)], pitches) for a in made.audio]
    rows.append({"key": s.key, "ce": own.tolist(), "pmi": (null - own).tolist(), "ce_q0": own0.tolist(),
                 "pmi_q0": (null0 - own0).tolist(), "ner": [x.ner for x in scores],
                 "matched": [x.matched for x in scores], "sung": [x.sung for x in scores],
                 "expected": [x.expected for x in scores]})
    print(f"{i}: NER {np.round(rows[-1]['ner'], 2).tolist()} PMI {np.round(rows[-1]['pmi'], 3).tolist()}", flush=True)
json.dump({"run": run, "n": N, "temperature": T, "songs": rows}, open(out, 'w'))

picks = {"first (generate)": lambda r: 0, "oracle (best NER)": lambda r: int(np.argmin(r["ner"])),
         "lowest CE": lambda r: int(np.argmin(r["ce"])), "highest PMI": lambda r: int(np.argmax(r["pmi"])),
         "lowest CE, q0": lambda r: int(np.argmin(r["ce_q0"])), "highest PMI, q0": lambda r: int(np.argmax(r["pmi_q0"]))}
for name, pick in picks.items():
    chosen = [pick(r) for r in rows]
    matched = sum(r["matched"][k] for r, k in zip(rows, chosen))
    sung = sum(r["sung"][k] for r, k in zip(rows, chosen))
    expected = sum(r["expected"][k] for r, k in zip(rows, chosen))
    ner = np.mean([r["ner"][k] for r, k in zip(rows, chosen)])
    print(f"{name:18s} NER {ner:.3f}  recall {matched / expected:.2f}  precision {matched / max(1, sung):.2f}  "
          f"sung/expected {sung / expected:.2f}")
