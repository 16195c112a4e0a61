import hashlib

import numpy as np
import pytest

from autosong.model.audio import load_audio
from autosong.model.synth_music import GENRES, melody_notes, song_seconds
from autosong.pipeline.synth import synth_corpus


def digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_synth_is_deterministic_per_seed_and_decodable(tmp_path, tokenizer):
    a = synth_corpus(tmp_path / "a", songs=4, seconds=3, seed=7, workers=1)
    b = synth_corpus(tmp_path / "b", songs=4, seconds=3, seed=7, workers=2)  # processes write the same bytes
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
        # the song holds its complete lyrics: it lasts as long as their melody, at least 3 s
        expected = song_seconds(lyrics, genre, tokenizer)
        assert expected >= 3.0 and abs(audio.seconds - expected) < 0.1
        assert audio.channels == 2 and audio.source_rate == 44_100
        assert np.abs(audio.wav).max() > 0.1


def test_lyrics_stop_at_the_line_that_fills_the_length(tokenizer):
    from autosong.model.synth_music import make_lyrics, melody_seconds

    rng = np.random.default_rng(3)
    lyrics = make_lyrics(rng, 5.0, "pop", tokenizer)
    assert melody_seconds(lyrics, "pop", tokenizer) >= 5.0
    shorter = "\n".join(lyrics.rstrip("\n").split("\n")[:-1]) + "\n"  # one line less
    assert melody_seconds(shorter, "pop", tokenizer) < 5.0


def test_note_timeline_is_the_melody_in_seconds(tokenizer):
    from autosong.model.synth_music import note_timeline

    notes = note_timeline("[verse]\n床前明月光", "pop", tokenizer)
    beat = 60 / GENRES["pop"].bpm
    assert len(notes) == 5 and notes[0][0] == pytest.approx(beat)  # after the 1-beat rest
    assert [p for _, _, p in notes] == [p for p, _ in melody_notes("[verse]\n床前明月光", "pop", tokenizer)[1:]]
    for (s0, l0, _), (s1, _, _) in zip(notes, notes[1:]):
        assert s1 == pytest.approx(s0 + l0)


def test_melody_follows_lyrics_and_genre(tokenizer):
    one = melody_notes("[verse]\n床前明月光", "pop", tokenizer)
    assert one[0] == (None, 1.0)  # the line break after the tag is a rest
    assert len(one) == 6 and all(p is not None for p, _ in one[1:])
    assert one != melody_notes("[verse]\n举头望明月", "pop", tokenizer)
    assert one != melody_notes("[verse]\n床前明月光", "rock", tokenizer)
    chorus = melody_notes("[chorus]\n床前明月光", "pop", tokenizer)
    assert [p + 12 for p, _ in one[1:]] == [p for p, _ in chorus[1:]]


def test_the_language_of_the_lyrics_sets_the_key(tokenizer):
    from autosong.model.synth_music import key_offset

    assert key_offset("[verse]\n床前明月光", tokenizer) == 0
    assert key_offset("[verse]\nlove night dream fire", tokenizer) == 5
    zh = melody_notes("[verse]\n床前 明月", "pop", tokenizer)
    assert all(p is None or p < 100 for p, _ in zh)
    mixed_en = melody_notes("[verse]\n明 love night dream fire", "pop", tokenizer)
    mixed_zh = melody_notes("[verse]\n明", "pop", tokenizer)
    assert mixed_en[1][0] == mixed_zh[1][0] + 5  # the same first syllable, a fourth up


def test_each_lyric_line_starts_where_its_first_note_sounds(tokenizer):
    from autosong.model.synth_music import line_starts, note_timeline

    lyrics = "[verse]\n床前明月光\n疑是地上霜\n\n[chorus]\n举头望明月\n"  # a blank line between sections
    for breaks in ((), (2.0, 8.0)):
        starts = line_starts(lyrics, "pop", tokenizer, breaks)
        notes = [start for start, _, _ in note_timeline(lyrics, "pop", tokenizer, breaks)]
        assert len(starts) == 5  # [verse], two lines, [chorus], a line
        assert [starts[1], starts[2], starts[4]] == pytest.approx([notes[0], notes[5], notes[10]])


def test_breaks_move_the_lines_and_not_the_notes(tokenizer):
    from autosong.model.synth_music import line_starts, note_timeline

    lyrics = "[verse]\n床前明月光\n\n[chorus]\n举头望明月\n"
    beat = 60 / GENRES["pop"].bpm
    plain, moved = line_starts(lyrics, "pop", tokenizer), line_starts(lyrics, "pop", tokenizer, breaks=[2.0, 8.0])
    # the verse's lines wait 2 beats, the chorus's 8 more; each tag line starts where its break does
    assert [m - p for p, m in zip(plain, moved)] == pytest.approx([0, 2 * beat, 2 * beat, 10 * beat])
    assert [p for _, _, p in note_timeline(lyrics, "pop", tokenizer, [2.0, 8.0])] == \
        [p for _, _, p in note_timeline(lyrics, "pop", tokenizer)]
    assert song_seconds(lyrics, "pop", tokenizer, [2.0, 8.0]) == pytest.approx(song_seconds(lyrics, "pop", tokenizer) + 10 * beat)


def test_a_corpus_with_breaks_times_its_lrc_by_them(tmp_path, tokenizer):
    import json

    from autosong.model.lrc import parse_lrc
    from autosong.model.synth_music import line_starts

    plain = synth_corpus(tmp_path / "plain", songs=3, seconds=3, seed=5, workers=1)
    broken = synth_corpus(tmp_path / "breaks", songs=3, seconds=3, seed=5, workers=1, breaks=True)
    assert json.loads((tmp_path / "breaks" / "synth.json").read_text())["breaks"] is True
    assert "breaks" not in json.loads((tmp_path / "plain" / "synth.json").read_text())
    later = 0
    for a, b in zip(plain, broken):
        lyrics, genre = (b / "lyrics.txt").read_text(encoding="utf-8"), (b / "genre.txt").read_text().strip()
        assert lyrics == (a / "lyrics.txt").read_text(encoding="utf-8")  # the same songs, only timed apart
        lrc = [line.start for line in parse_lrc((b / "lyrics.lrc").read_text(encoding="utf-8")).lines]
        untimed = line_starts(lyrics, genre, tokenizer)
        assert all(t >= u - 0.01 for t, u in zip(lrc, untimed))
        later += sum(t > u + 0.1 for t, u in zip(lrc, untimed))
        audio = load_audio(next(b.glob("audio.*")), 24_000)
        assert audio.seconds >= load_audio(next(a.glob("audio.*")), 24_000).seconds
    assert later > 0  # some section did open with a break


def test_instrumental_songs_are_the_backing_alone_and_leave_the_others_as_they_were(tmp_path):
    """A share of instrumental tracks, tagged '[instrumental]' as a real corpus would: no note in
    the lead's range (only the bass below it), while every other song is the one a corpus
    without them writes."""
    from autosong.eval.notes import transcribe
    from autosong.model.lyrics import INSTRUMENTAL_LYRICS
    from autosong.model.synth_music import lowest_lead_pitch

    mixed = synth_corpus(tmp_path / "mixed", songs=8, seconds=3, seed=4, workers=1, instrumental=0.5)
    plain = synth_corpus(tmp_path / "plain", songs=8, seconds=3, seed=4, workers=1)
    backing = [f for f in mixed if (f / "lyrics.txt").read_text(encoding="utf-8") == INSTRUMENTAL_LYRICS]
    assert 0 < len(backing) < len(mixed)
    for a, b in zip(mixed, plain):
        if a not in backing:
            assert digest(a) == digest(b)
    for folder in backing:
        genre = (folder / "genre.txt").read_text().strip()
        audio = load_audio(next(folder.glob("audio.*")), 24_000)
        notes = transcribe(audio.wav.mean(axis=1) if audio.wav.ndim == 2 else audio.wav, 24_000)
        assert audio.seconds >= 3.0 and np.abs(audio.wav).max() > 0.1  # the bass and drums play
        assert not [n for n in notes if n.pitch >= lowest_lead_pitch(genre) - 0.5]
    sung = next(f for f in mixed if f not in backing)
    genre = (sung / "genre.txt").read_text().strip()
    audio = load_audio(next(sung.glob("audio.*")), 24_000)
    wav = audio.wav.mean(axis=1) if audio.wav.ndim == 2 else audio.wav
    assert [n for n in transcribe(wav, 24_000) if n.pitch >= lowest_lead_pitch(genre) - 0.5]  # the lead's there


def test_songs_of_several_lengths_each_last_their_own_drawn_length(tmp_path, tokenizer):
    """`longest`: song i lasts at least a length drawn from [seconds, longest] by its own generator,
    so the corpus spans short and long songs (with their later lines and sections), and a corpus
    without it is the one it always was."""
    import json

    from autosong.pipeline.synth import song_length

    mixed = synth_corpus(tmp_path / "mixed", songs=6, seconds=3, seed=4, workers=1, longest=12)
    drawn = [song_length(3, 12, 4, i) for i in range(6)]
    assert all(3 <= d <= 12 for d in drawn) and max(drawn) - min(drawn) > 3
    assert json.loads((tmp_path / "mixed" / "synth.json").read_text())["longest"] == 12
    for folder, least in zip(mixed, drawn):
        lyrics, genre = (folder / "lyrics.txt").read_text(encoding="utf-8"), (folder / "genre.txt").read_text().strip()
        assert song_seconds(lyrics, genre, tokenizer) >= least
    assert [song_length(3, None, 4, i) for i in range(6)] == [3] * 6
    with pytest.raises(ValueError, match="shorter"):
        synth_corpus(tmp_path / "bad", songs=1, seconds=5, longest=4)
