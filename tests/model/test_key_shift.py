"""Moving songs between keys (model/key_shift.py): the pitch moves, the length and level stay, and a
synth song moved to C is heard in C and still sings its own notes."""
import numpy as np
import pytest

from autosong.model.key_shift import SHIFT_RANGE, normalising_shift, pitch_shift, shift_to_c

SR = 24_000


def peak_hz(wav: np.ndarray) -> float:
    part = wav[SR // 2 : SR // 2 + SR]
    spectrum = np.abs(np.fft.rfft(part * np.hanning(len(part))))
    return float(np.argmax(spectrum) * SR / len(part))


def rms(wav: np.ndarray) -> float:
    return float(np.sqrt(np.mean(wav[SR // 2 : -SR // 2] ** 2)))


def test_every_key_signature_has_one_shift_to_c_that_stays_low():
    for signature in range(12):
        shift = normalising_shift(signature)
        assert SHIFT_RANGE[0] <= shift <= SHIFT_RANGE[1] and (signature + shift) % 12 == 0
    assert [normalising_shift(k) for k in (0, 7, 8, 9)] == [0, -7, -8, 3]  # G goes down a fifth, A up a third


@pytest.mark.parametrize("semitones", [-8, -5, -1, 1, 3])
def test_a_tone_moves_by_the_semitones_asked_and_keeps_its_length_and_level(semitones):
    t = np.arange(3 * SR) / SR
    tone = (0.4 * np.sin(2 * np.pi * 440 * t) + 0.15 * np.sin(2 * np.pi * 880 * t)).astype(np.float32)
    moved = pitch_shift(tone, SR, semitones)
    assert moved.dtype == np.float32 and len(moved) == len(tone)
    assert abs(peak_hz(moved) - 440 * 2 ** (semitones / 12)) < 2.0  # 1 Hz bins
    assert abs(rms(moved) / rms(tone) - 1) < 0.05  # partials spread over bins stay whole (phase locking)


def test_no_shift_is_the_audio_itself():
    wav = np.random.default_rng(0).standard_normal(SR).astype(np.float32)
    assert np.array_equal(pitch_shift(wav, SR, 0), wav)


def test_a_synth_song_moved_to_c_is_heard_in_c_and_still_sings_its_notes(tokenizer):
    """What a key-normalised build does to a song, and what generate undoes: moved to C, the
    song's notes are its own moved by the shift, and moved back they are its own again."""
    import soxr

    from autosong.eval.notes import singing_score, transcribe
    from autosong.model.song_key import key_signatures
    from autosong.model.synth_music import SAMPLE_RATE, expected_notes, make_lyrics, render_song, song_seconds

    rng = np.random.default_rng(7)
    for genre in ("pop", "folk", "electronic"):
        lyrics = make_lyrics(rng, 8, genre, tokenizer)
        stereo = render_song(lyrics, genre, song_seconds(lyrics, genre, tokenizer), rng, tokenizer)
        wav = soxr.resample(stereo.mean(1), SAMPLE_RATE, SR).astype(np.float32)
        heard = key_signatures(wav, SR)
        shift = normalising_shift(heard[0])
        moved = pitch_shift(wav, SR, shift)
        assert key_signatures(moved, SR)[0] == 0, (genre, heard, shift)
        expected = [p for _, _, p in expected_notes(lyrics, genre)]
        own = singing_score([n.pitch for n in transcribe(wav, SR)], expected).ner
        in_c = singing_score([n.pitch - shift for n in transcribe(moved, SR)], expected).ner
        back = singing_score([n.pitch for n in transcribe(pitch_shift(moved, SR, -shift), SR)], expected).ner
        assert in_c <= own + 0.1 and back <= own + 0.1, (genre, own, in_c, back)


def test_a_synth_song_written_in_c_is_heard_in_c_and_sings_the_rule_moved(tokenizer):
    """render_song(transpose=) writes the song the shifter's output imitates (bench/key_shift_ceiling.py
    compares the two through the codec): heard in C, singing the rule's notes moved by the shift."""
    import soxr

    from autosong.eval.notes import singing_score, transcribe
    from autosong.model.song_key import key_signatures
    from autosong.model.synth_music import SAMPLE_RATE, make_lyrics, note_timeline, render_song, song_seconds

    rng = np.random.default_rng(3)
    lyrics = make_lyrics(rng, 8, "pop", tokenizer)
    stereo = render_song(lyrics, "pop", song_seconds(lyrics, "pop", tokenizer), rng, tokenizer)
    shift = shift_to_c(key_signatures(soxr.resample(stereo.mean(1), SAMPLE_RATE, SR), SR))
    written = render_song(lyrics, "pop", song_seconds(lyrics, "pop", tokenizer), rng, tokenizer, transpose=shift)
    wav = soxr.resample(written.mean(1), SAMPLE_RATE, SR).astype(np.float32)
    assert key_signatures(wav, SR)[0] == 0
    rule = [p for _, _, p in note_timeline(lyrics, "pop", tokenizer)]
    moved = [p for _, _, p in note_timeline(lyrics, "pop", tokenizer, transpose=shift)]
    assert shift != 0 and moved == [p + shift for p in rule]
    assert singing_score([n.pitch for n in transcribe(wav, SR)], moved).ner <= 0.25
