"""How much of a model's wrong singing is timing? Each of the first 32 held-out synth songs (at most
6 s) generated twice by the same model, sampler and seed: with the alignment prior's uniform t/T
(what `generate` does), with the prior pinned at the song's true line starts (the synth rule's
lyrics.lrc: an oracle for when each line is due, passed as an edit passes its kept lines), and
pinned at the first line's start alone (the rest before the singing starts), and pinned at the
genre's usual start (the median first-line start of the training songs of that genre, from their
lyrics.lrc: no oracle, what a model could learn from its corpus). All are scored against the
notes the lyrics call for. If pinned songs sing much better, a predictor of line times from the
lyrics is worth building; if not, the notes are wrong for other reasons.

Usage: python bench/timed_prior.py RUN DATA SEED   (THREADS=1 by default)
"""
import sys, os, collections
import numpy as np
from autosong.manifests.dataset import read_sample_rows
from autosong.eval.evaluate import load_split
from autosong.eval.notes import singing_score, transcribe
from autosong.model.api import AutoSong
from autosong.model.generate import generate_codes
from autosong.model.line_times import sung_lines
from autosong.model.lyrics import default_tokenizer, lyric_words, normalize_lyrics
from autosong.model.sampling import SamplingConfig
from autosong.model.synth_music import expected_notes, line_starts, sings_synth_notes
from autosong.model.threads import use_threads

run, data, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
use_threads(int(os.environ.get('THREADS', '1')))
song = AutoSong.load(run, 'cpu', 'fp32')
codec, tok = song.codec, default_tokenizer()
card, songs = load_split(data, 'val', model=song.bundle)
songs = [s for s in songs if sings_synth_notes(card, s.genre) and expected_notes(s.lyrics, s.genre)][:32]
usual = collections.defaultdict(list)
for row in read_sample_rows(data, 'train'):
    if row.line_starts_s:  # a tag line ([verse]) shares the slot of the first sung line, which starts last
        usual[row.genre].append(max(t for t, slot in zip(row.line_starts_s, row.line_slots) if slot == row.line_slots[0]))
usual = {genre: float(np.median(starts)) for genre, starts in usual.items()}
print('the genres\' usual first-line starts (s):', {g: round(t, 2) for g, t in sorted(usual.items())})
totals = {"uniform": [], "pinned": [], "first line pinned": [], "genre's usual start": []}
first = {kind: [] for kind in totals}
for s in songs:
    length = min(6.0, s.codes.shape[1] / codec.frame_rate)
    due = [(start, p) for start, _, p in expected_notes(s.lyrics, s.genre) if start < length]
    lines = [line for line in normalize_lyrics(s.lyrics).split("\n") if line]
    starts = [t for line, t in zip(lines, line_starts(s.lyrics, s.genre, tok)) if lyric_words(line)]
    anchors = [(t, slot) for t, slot in zip(starts, sung_lines(s.lyrics, tok)[1]) if t < length]
    learned = [(usual[s.genre], anchors[0][1])] if anchors and s.genre in usual else None
    for kind, pins in (("uniform", None), ("pinned", anchors), ("first line pinned", anchors[:1]),
                       ("genre's usual start", learned)):
        codes, _ = generate_codes(song.bundle, [s.lyrics], [s.genre], length, SamplingConfig(seed=seed),
                                  codec.frame_rate, progress=False, line_starts=pins)
        sung = transcribe(song.decode(codes[0]), codec.sample_rate)
        totals[kind].append(singing_score([n.pitch for n in sung], [p for _, p in due]))
        if sung:
            first[kind].append(sung[0].start - due[0][0])
for kind, scores in totals.items():
    matched, sung, expected = (sum(getattr(x, f) for x in scores) for f in ("matched", "sung", "expected"))
    print(f"RESULT {run} seed {seed} {kind}: NER own {np.mean([x.ner for x in scores]):.3f} recall "
          f"{matched / expected:.2f} precision {matched / max(1, sung):.2f} sung/expected {sung / expected:.2f} "
          f"first note {np.median(first[kind]):+.2f} s", flush=True)
