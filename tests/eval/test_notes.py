"""The note error rate and its transcriber: exact on the synth rule's own audio, ~1 by chance."""
import numpy as np

from autosong.eval.notes import edit_distance, note_error_rate, transcribe


def test_note_error_rate_is_zero_on_itself_and_near_one_by_chance():
    expected = [67.0, 60.0, 72.0, 82.0, 63.0, 67.0, 75.0, 77.0, 62.0, 70.0]
    assert note_error_rate(expected, expected) == 0.0
    assert note_error_rate([p + 0.25 for p in expected], expected) == 0.0  # within the half-semitone tolerance
    assert note_error_rate([], expected) == 1.0  # nothing sung: every note deleted
    assert note_error_rate(expected[:5], expected) == 0.5
    rng = np.random.default_rng(0)
    chance = [note_error_rate(list(rng.integers(55, 90, 10).astype(float)), expected) for _ in range(200)]
    assert 0.8 <= np.mean(chance) <= 1.1, np.mean(chance)
    # a pitch repeated in a row counts once on both sides
    assert note_error_rate([60.0, 60.0, 62.0], [60.0, 62.0, 62.0]) == 0.0
    assert edit_distance([1.0, 2.0, 3.0], [1.0, 3.0]) == 1


def test_transcriber_hears_the_synth_songs_notes(tokenizer):
    import soxr

    from autosong.model.synth_music import expected_notes
    from autosong.model.synth_music import GENRES, SAMPLE_RATE, make_lyrics, render_song, song_seconds

    rates = []
    for i, genre in enumerate(sorted(GENRES)):
        rng = np.random.default_rng([99, i])
        lyrics = make_lyrics(rng, 4.0, genre, tokenizer)
        wav = soxr.resample(render_song(lyrics, genre, song_seconds(lyrics, genre, tokenizer), rng, tokenizer).mean(1),
                            SAMPLE_RATE, 24_000, quality="HQ")
        expected = expected_notes(lyrics, genre)
        sung = transcribe(wav, 24_000)
        rates.append(note_error_rate([n.pitch for n in sung], [p for _, _, p in expected]))
        # each sung note starts near an expected one (the true audio keeps the rule's timing)
        starts = np.array([s for s, _, _ in expected])
        assert np.median([np.abs(starts - n.start).min() for n in sung]) < 0.05
    assert np.mean(rates) <= 0.1, rates


def test_singing_score_on_hand_made_sequences():
    from autosong.eval.notes import singing_score

    expected = [60.0, 62.0, 64.0, 65.0, 67.0, 69.0]
    silence = singing_score([], expected)
    assert (silence.ner, silence.recall, silence.precision, silence.sung_ratio) == (1.0, 0.0, 0.0, 0.0)
    assert silence.deletions == 6 and silence.insertions == silence.substitutions == 0

    perfect = singing_score(expected, expected)
    assert (perfect.ner, perfect.recall, perfect.precision, perfect.sung_ratio) == (0.0, 1.0, 1.0, 1.0)

    # a semitone off everywhere: every note substituted; only the pitches both scales share pair up
    sharp = singing_score([p + 1 for p in expected], expected)
    assert sharp.substitutions == 6 and sharp.insertions == sharp.deletions == 0 and sharp.ner == 1.0
    assert sharp.matched == 1  # 61 63 65 66 68 70 against 60 62 64 65 67 69: only 65 is in both
    # each note sung twice with a wrong note between: every expected note matched, half the sung ones wrong
    doubled = singing_score([x for p in expected for x in (p, p + 5.0)], expected)
    assert doubled.recall == 1.0 and doubled.precision == 0.5 and doubled.sung_ratio == 2.0
    assert doubled.insertions == 6 and doubled.ner == 1.0

    rng = np.random.default_rng(1)
    chance = [singing_score(list(rng.integers(50, 80, 6).astype(float)), expected) for _ in range(300)]
    assert 0.8 <= np.mean([c.ner for c in chance]) <= 1.1
    assert np.mean([c.recall for c in chance]) < 0.25
    # the edits add up to the note error rate's edit distance
    for c in chance[:50]:
        assert c.ner * c.expected == c.substitutions + c.insertions + c.deletions


def test_the_edit_path_says_what_was_sung_for_each_expected_note():
    from autosong.eval.notes import edit_path

    sung, expected = [60.0, 62.0, 65.0, 67.0], [60.0, 64.0, 65.0, 67.0, 71.0]
    assert edit_path(sung, expected) == [("same", 0, 0), ("substituted", 1, 1), ("same", 2, 2),
                                         ("same", 3, 3), ("deleted", None, 4)]
    assert edit_path([60.0, 61.0, 62.0], [60.0, 62.0]) == [("same", 0, 0), ("inserted", 1, None), ("same", 2, 1)]
    assert edit_path([], [60.0]) == [("deleted", None, 0)] and edit_path([60.0], []) == [("inserted", 0, None)]


def test_the_report_lists_the_notes_asked_for_against_those_sung():
    from autosong.eval.report import _note_rows, note_name

    assert [note_name(p) for p in (60, 61.2, 69, 47.6)] == ["C4", "C#4", "A4", "C3"]
    html = _note_rows({"expected": [(0, 1, 60), (1, 1, 62), (2, 1, 64)],
                       "sung": [(0, 1, 60), (1, 0.5, 60.2), (1.5, 1, 61), (2, 1, 64)]})
    assert "<th>asked for (3)</th><td><b>C4</b> D4 <b>E4</b></td>" in html
    assert "<th>sung (3)</th><td><b>C4</b> C#4 <b>E4</b></td>" in html  # a repeat counts once, as scored
    assert "recall 0.67, precision 0.67" in html
    assert _note_rows({"expected": None, "sung": []}) == ""
