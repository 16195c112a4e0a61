"""The note error rate and its transcriber: exact on the synth rule's own audio, ~1 by chance."""
import numpy as np

from eval.notes import edit_distance, note_error_rate, transcribe


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

    from eval.singing import expected_notes
    from model.synth_music import GENRES, SAMPLE_RATE, make_lyrics, render_song, song_seconds

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
