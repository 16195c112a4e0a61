"""Where a model's sung notes go wrong, from an eval.json with note errors (autosong eval or the
demo): recall by the kind of lyric token (a pinyin syllable, one id; a Latin word, spelled), the
interval of the nearest-in-time sung note for each expected note left unsung, how far matched
notes' onsets stray, how long the sung notes that match nothing last (against the shortest expected
note), and how many songs are sung whole in another key (more notes match once transposed), and when
the first note and the later ones are sung against when they are due.

Usage: python bench/sung_errors.py EVAL_JSON DATA
"""
import sys, json, collections
import numpy as np
from autosong.eval.notes import PITCH_TOLERANCE, matched_notes, singing_score
from autosong.eval.evaluate import load_split
from autosong.model.synth_music import _is_syllable
from autosong.model.lyrics import default_tokenizer

ev = json.load(open(sys.argv[1])); data = sys.argv[2]
card, songs = load_split(data, 'val')
by_key = {s.key: s for s in songs}
tok = default_tokenizer()
intervals = collections.Counter(); typ_tot = collections.Counter(); typ_hit = collections.Counter()
onset_err = []; onset_by_index = collections.defaultdict(list); first_early = []
unmatched_len, matched_len, expected_len = [], [], []
shifts = collections.Counter(); gained = 0
for row in ev.get('note_errors', ev)['per_song']:  # an eval.json, or note_error_rates' own dict
    s = by_key[row['key']]
    # label each sung (non-rest) note of the melody by kind: zh syllable or latin word, and section
    kinds = []
    section = 'verse'
    toks = [tok.tokens[i] for i in tok.encode(s.lyrics)[1:]]
    word = ''
    for t in toks:
        if t.startswith('['):
            if word: kinds.append(('en', section)); word = ''
            section = t.strip('[]')
        elif _is_syllable(t):
            if word: kinds.append(('en', section)); word = ''
            kinds.append(('zh', section))
        elif len(t) == 1 and t.isalnum(): word += t
        else:
            if word: kinds.append(('en', section)); word = ''
    if word: kinds.append(('en', section))
    exp = row['expected']
    kinds = kinds[:len(exp)]
    # collapse while keeping labels
    e_p, e_k, e_t = [], [], []
    for (st, ln, p), k in zip(exp, kinds):
        if not e_p or abs(p - e_p[-1]) > PITCH_TOLERANCE:
            e_p.append(p); e_k.append(k); e_t.append(st)
    sung = row['sung']; s_p, s_t, s_len = [], [], []
    for st, ln, p in sung:
        if not s_p or abs(p - s_p[-1]) > PITCH_TOLERANCE:
            s_p.append(p); s_t.append(st); s_len.append(ln)
        else:
            s_len[-1] += ln
    pairs = matched_notes(s_p, e_p)
    hit = {i for i, _ in pairs}
    sung_hit = {j for _, j in pairs}
    for j, ln in enumerate(s_len): (matched_len if j in sung_hit else unmatched_len).append(ln)
    expected_len += [ln for _, ln, _ in exp]
    by_shift = {k: singing_score([p + k for p in s_p], e_p).matched for k in (-12, -7, -5, 0, 5, 7, 12)}
    best = max(by_shift, key=lambda k: (by_shift[k], k == 0))
    shifts[best] += 1; gained += by_shift[best] - by_shift[0]
    for i, j in pairs:
        onset_err.append(s_t[j] - e_t[i])
        onset_by_index['1st' if i == 0 else '2nd-3rd' if i < 3 else '4th-6th' if i < 6 else '7th+'].append(s_t[j] - e_t[i])
    if s_t and e_t: first_early.append(s_t[0] - e_t[0])
    for i, k in enumerate(e_k):
        typ_tot[k[0]] += 1; typ_tot[k[1]] += 1; typ_hit[k[0]] += i in hit; typ_hit[k[1]] += i in hit
    # nearest-in-time sung note for each missed expected note: interval
    for i, (p, t) in enumerate(zip(e_p, e_t)):
        if i in hit or not s_p: continue
        j = int(np.argmin([abs(x - t) for x in s_t]))
        intervals[int(round(s_p[j] - p))] += 1
print('recall by kind:', {k: f"{typ_hit[k]}/{typ_tot[k]}={typ_hit[k]/typ_tot[k]:.2f}" for k in typ_tot})
print('missed notes: interval of the nearest-in-time sung note:', sorted(intervals.items(), key=lambda x: -x[1])[:15])
oe = np.array(onset_err); print('matched onset error s: median', np.median(oe), 'abs median', np.median(abs(oe)), 'p90 abs', np.percentile(abs(oe), 90))
print('matched onset error by the expected note\'s place in the song (count, median s):',
      {k: (len(v), round(float(np.median(v)), 2)) for k, v in sorted(onset_by_index.items())})
print(f'first sung note against the first expected one: median {np.median(first_early):+.2f} s')
ul, ml = np.array(unmatched_len), np.array(matched_len)
print(f'sung notes matching nothing: {len(ul)}, {(ul < 0.15).sum()} of them shorter than 0.15 s (median {np.median(ul):.2f} s); '
      f'matched: {len(ml)}, {(ml < 0.15).sum()} shorter (median {np.median(ml):.2f} s); shortest expected note {min(expected_len):.2f} s')
print(f'songs by the transposition that matches most notes: {dict(shifts)}; notes gained by it: {gained} of {sum(typ_tot[k] for k in ("zh", "en"))} expected')
