"""Do generated songs sing their lyrics? On a synth corpus the notes any lyrics should be sung
to are known (model/synth_music.py's rule), so each held-out song is generated twice with the same
model, sampler and seed: from its own lyrics, and, as the control, from another held-out song's
lyrics with its own genre kept. Both are transcribed (eval/notes.py) and scored against the notes
of its own lyrics. NER(control) - NER(true) > 0, with a bootstrap interval over songs, says the
songs follow their lyrics; the true audio through the codec gives the ceiling.
"""
from __future__ import annotations

import math
from dataclasses import asdict

import numpy as np

from autosong.eval.evaluate import bootstrap_ci, format_interval, load_split
from autosong.eval.line_alignment import sung_line_starts
from autosong.eval.notes import SingingScore, singing_score, transcribe
from autosong.manifests.progress import progress
from autosong.model.key_shift import pitch_shift
from autosong.model.synth_music import expected_notes, sings_synth_notes


def note_error_rates(song, data: str, split: str, count: int, seconds: float | None, settings) -> dict:
    """Generate `count` held-out songs (each as long as the true one, up to `seconds`: a longer one
    is drawn as its whole length's opening, so its lyrics keep their pace) and their controls with
    `song` (a model.api.AutoSong) and `settings` (a SamplingConfig); returns NER(true), NER(control),
    their difference with a 95 % interval, the codec's ceiling, the notes matched, sung and expected
    over all songs (recall, precision, sung/expected and the edits apart), and per song what was
    expected and sung (for the report)."""
    card, songs = load_split(data, split, model=song.bundle)
    songs = [s for s in songs if sings_synth_notes(card, s.genre) and expected_notes(s.lyrics, s.genre)][:count]
    if len(songs) < 2:
        raise ValueError(f"the note error rate needs 2 or more held-out synth songs, {data} has {len(songs)}")
    rng = np.random.default_rng(settings.seed)
    shift = 1 + int(rng.integers(0, len(songs) - 1))  # a rotation: nobody keeps their own lyrics
    codec, rate = song.codec, song.codec.sample_rate
    rows, scores = [], {"own": [], "control": [], "codec": []}
    bar = progress(len(songs), "singing held-out lyrics", "song")
    for i, s in enumerate(songs):
        other = songs[(i + shift) % len(songs)]
        whole = s.codes.shape[1] / codec.frame_rate
        length = min(seconds or math.inf, whole)
        expected = expected_notes(s.lyrics, s.genre)
        heard = [n for n in expected if n[0] < length]  # the notes a song of this length can hold
        pitches = [p for _, _, p in heard]
        made = song.generate(s.lyrics, s.genre, length, settings, song_seconds=whole)
        control_wav = song.generate(other.lyrics, s.genre, length, settings, song_seconds=whole).audio[0]
        reference_wav = pitch_shift(codec.decode(s.codes[:, : int(length * codec.frame_rate)]), rate, -s.key_shift)
        sung = transcribe(made.audio[0], rate)
        for kind, notes in (("own", sung), ("control", transcribe(control_wav, rate)),
                            ("codec", transcribe(reference_wav, rate))):
            scores[kind].append(singing_score([n.pitch for n in notes], pitches))
        rows.append({
            "key": s.key, "control_lyrics_of": other.key, "seconds": length,
            "ner_true": scores["own"][-1].ner, "ner_control": scores["control"][-1].ner,
            "ner_codec": scores["codec"][-1].ner, "score": asdict(scores["own"][-1]),
            "expected": [list(n) for n in heard], "sung": [[n.start, n.length, n.pitch] for n in sung]})
        if song.bundle.alignment is not None:  # where it sings each line, and where its notes say it does
            opening = whole if length < whole else None  # drawn as the opening of a longer song: its lines
            _, times = song.line_times(made.codes[0], s.lyrics, s.genre, song_seconds=opening)
            rows[-1].update(line_starts=times.starts, skipped=times.skipped, repeated=times.repeated,
                            line_truth=sung_line_starts(s.lyrics, s.genre, rows[-1]["sung"]))
        bar.update(1)
    bar.close()
    true, control, ceiling = (np.array([x.ner for x in scores[k]]) for k in ("own", "control", "codec"))
    difference = control - true
    return {"songs": len(rows), "seconds": seconds, "sampling": settings.to_dict(), "seed": settings.seed,
            "ner_true": float(true.mean()), "ner_control": float(control.mean()), "ner_codec": float(ceiling.mean()),
            "difference": {"mean": float(difference.mean()), "ci95": bootstrap_ci(difference, settings.seed)},
            "own": pooled(scores["own"]), "control": pooled(scores["control"]), "per_song": rows}


def pooled(scores: list[SingingScore]) -> dict:
    """Notes over all songs: recall and precision as matched / expected and matched / sung (so a
    song with more notes weighs more), sung / expected, and the edits apart."""
    total = {f: sum(getattr(x, f) for x in scores) for f in ("expected", "sung", "matched", "substitutions",
                                                              "insertions", "deletions")}
    return {**total, "recall": total["matched"] / max(1, total["expected"]),
            "precision": total["matched"] / max(1, total["sung"]), "sung_ratio": total["sung"] / max(1, total["expected"])}


def format_note_errors(result: dict) -> str:
    d, own = result["difference"], result["own"]
    return (f"note error rate of generated songs ({result['songs']} held-out synth songs, lower is better):\n"
            f"  own lyrics {result['ner_true']:.3f}   another song's lyrics {result['ner_control']:.3f}   "
            f"true audio through the codec {result['ner_codec']:.3f}\n"
            f"  note error rate, control - own lyrics: {format_interval(d['mean'], d['ci95'], result['songs'])}"
            f"  (> 0: the songs follow their lyrics)\n"
            f"  {format_notes(own)}")


def format_notes(own: dict) -> str:
    """One line: the notes the songs sang against those their lyrics call for."""
    return (f"notes sung from own lyrics: recall {own['recall']:.2f}, precision {own['precision']:.2f}, "
            f"sung/expected {own['sung_ratio']:.2f} ({own['sung']} sung, {own['expected']} expected, "
            f"{own['matched']} matched; {own['substitutions']} substituted, {own['insertions']} inserted, "
            f"{own['deletions']} deleted)")
