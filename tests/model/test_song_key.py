"""A song's key signature heard from its audio, and a key as a user writes it."""
import numpy as np
import pytest

from autosong.model.song_key import NO_KEY, key_name, key_signatures, parse_key

SR = 24_000


def tones(midis, seconds_each: float, harmonics=(1.0, 0.5, 0.3)) -> np.ndarray:
    """A plucked melody: each MIDI note with a few harmonics, one after another."""
    t = np.arange(int(seconds_each * SR)) / SR
    out = []
    for m in midis:
        f0 = 440.0 * 2 ** ((m - 69) / 12)
        out.append(sum(a * np.sin(2 * np.pi * (k + 1) * f0 * t) for k, a in enumerate(harmonics)) * np.exp(-2 * t))
    return np.concatenate(out) * 0.2


def song_in(tonic: int, minor: bool, rng) -> np.ndarray:
    """A melody drawn from the scale over a bass on I-V-vi-IV (or its minor mode's chords)."""
    scale = (0, 2, 3, 5, 7, 8, 10) if minor else (0, 2, 4, 5, 7, 9, 11)
    melody = [60 + tonic + 12 * (d // 7) + scale[d % 7] for d in rng.integers(0, 14, 32)]
    bass = [36 + tonic + scale[d] for d in (0, 4, 5, 3) * 2]
    lead, low = tones(melody, 0.25), tones(bass, 1.0, (1.0,))
    return (lead[: len(low)] + low[: len(lead)]).astype(np.float32)


@pytest.mark.parametrize("tonic,minor,signature", [(0, False, 0), (4, False, 4), (9, True, 0), (7, True, 10),
                                                   (2, False, 2), (5, True, 8)])
def test_the_signature_of_a_melody_and_its_bass(tonic, minor, signature):
    for seed in range(3):
        assert key_signatures(song_in(tonic, minor, np.random.default_rng(seed)), SR) == (signature,)


def test_a_melody_that_cannot_tell_two_signatures_apart_is_heard_as_both():
    """C D E G A (a pentatonic tune): every note lies in C, F and G major alike."""
    both = np.concatenate([tones([60, 62, 64, 67, 69] * 4, 0.25), np.zeros(SR // 2)])
    assert set(key_signatures(both.astype(np.float32), SR)) == {0, 5, 7}


def test_a_fourth_up_is_another_signature():
    """The confusion that matters: the same melody a fourth higher is told apart."""
    rng = np.random.default_rng(0)
    assert key_signatures(song_in(4, False, rng), SR) == (4,)
    assert key_signatures(song_in(9, False, np.random.default_rng(0)), SR) == (9,)


def test_silence_and_a_moment_say_nothing():
    assert key_signatures(np.zeros(5 * SR, np.float32), SR) == ()
    assert key_signatures(song_in(0, False, np.random.default_rng(0))[: SR // 4], SR) == ()


@pytest.mark.parametrize("text,signature", [("C major", 0), ("A minor", 0), ("Am", 0), ("E", 4), ("C# minor", 4),
                                            ("Eb", 3), ("F#m", 9), ("bb min", 1), ("unknown", NO_KEY)])
def test_a_key_as_written(text, signature):
    assert parse_key(text) == signature


def test_a_key_that_is_no_key_is_refused_with_the_forms_accepted():
    with pytest.raises(ValueError, match="'A minor'"):
        parse_key("H dorian")


def test_names():
    assert key_name(4) == "E major / C# minor" and key_name(3) == "Eb major / C minor" and key_name(NO_KEY) == "unknown"
    assert all(parse_key(part) == s for s in range(12) for part in key_name(s).split(" / "))


def test_the_synth_corpus_keys_are_heard_from_its_songs():
    """The synth's songs (model/synth_music.py): the genre's scale moved a fourth up for mostly
    Latin lyrics. A short melody may never sing the pitch class that tells its key from the one a
    fourth away: the audio then fits both, and both are heard."""
    from autosong.model.lyrics import default_tokenizer
    from autosong.model.synth_music import _MAJOR, GENRES, key_offset, make_lyrics, render_song

    tokenizer, rng, heard, truths = default_tokenizer(), np.random.default_rng(5), [], []
    for n in range(20):
        genre = list(GENRES)[n % len(GENRES)]
        lyrics = make_lyrics(rng, 4.0, genre, tokenizer)
        style = GENRES[genre]
        truths.append((style.root + key_offset(lyrics, tokenizer) + (0 if style.scale == _MAJOR else 3)) % 12)
        wav = render_song(lyrics, genre, 5.0, rng, tokenizer).mean(1)
        heard.append(key_signatures(wav, 44_100))
    assert np.mean([truth_of in keys for truth_of, keys in zip(truths, heard)]) >= 0.95, heard
    assert np.mean([keys[0] == truth_of for truth_of, keys in zip(truths, heard)]) >= 0.8, heard
