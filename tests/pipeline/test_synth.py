import hashlib

import numpy as np

from model.audio import load_audio
from pipeline.synth import GENRES, melody_notes, synth_corpus


def digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_synth_is_deterministic_per_seed_and_decodable(tmp_path, tokenizer):
    a = synth_corpus(tmp_path / "a", songs=4, seconds=3, seed=7)
    b = synth_corpus(tmp_path / "b", songs=4, seconds=3, seed=7)
    c = synth_corpus(tmp_path / "c", songs=4, seconds=3, seed=8)
    assert [digest(x) for x in a] == [digest(x) for x in b]
    assert [digest(x) for x in a] != [digest(x) for x in c]
    suffixes = {next(f.glob("audio.*")).suffix for f in a}
    assert suffixes == {".mp3", ".flac"}
    for folder in a:
        genre = (folder / "genre.txt").read_text().strip()
        assert genre in GENRES
        lyrics = (folder / "lyrics.txt").read_text(encoding="utf-8")
        assert "[verse]" in lyrics
        audio = load_audio(next(folder.glob("audio.*")), 24_000)
        assert abs(audio.seconds - 3.0) < 0.1 and audio.channels == 2 and audio.source_rate == 44_100
        assert np.abs(audio.wav).max() > 0.1


def test_melody_follows_lyrics_and_genre(tokenizer):
    one = melody_notes("[verse]\n床前明月光", "pop", tokenizer)
    assert one[0] == (None, 1.0)  # the line break after the tag is a rest
    assert len(one) == 6 and all(p is not None for p, _ in one[1:])
    assert one != melody_notes("[verse]\n举头望明月", "pop", tokenizer)
    assert one != melody_notes("[verse]\n床前明月光", "rock", tokenizer)
    chorus = melody_notes("[chorus]\n床前明月光", "pop", tokenizer)
    assert [p + 12 for p, _ in one[1:]] == [p for p, _ in chorus[1:]]


def test_the_language_of_the_lyrics_sets_the_key(tokenizer):
    from pipeline.synth import key_offset

    assert key_offset("[verse]\n床前明月光", tokenizer) == 0
    assert key_offset("[verse]\nlove night dream fire", tokenizer) == 5
    zh = melody_notes("[verse]\n床前 明月", "pop", tokenizer)
    assert all(p is None or p < 100 for p, _ in zh)
    mixed_en = melody_notes("[verse]\n明 love night dream fire", "pop", tokenizer)
    mixed_zh = melody_notes("[verse]\n明", "pop", tokenizer)
    assert mixed_en[1][0] == mixed_zh[1][0] + 5  # the same first syllable, a fourth up
