"""Timed lyrics into the build: a song folder may hold lyrics.lrc beside or instead of lyrics.txt.
The model reads the same complete lyrics; each line's start goes to the shard and the manifest,
and a bad LRC is a reject row that says why."""
import json

from autosong.model.audio import load_audio
from autosong.model.lrc import parse_lrc
from autosong.model.song_key import key_signatures
from autosong.model.lyrics import default_tokenizer, lyric_words


def test_a_timed_synth_corpus_builds_with_its_line_times_and_bad_lrc_files_are_rejects(tmp_path, ray_local):
    from autosong.manifests import read_manifest
    from autosong.manifests.dataset import read_sample_rows
    from autosong.manifests.sample_rows import SampleRow
    from autosong.pipeline.build import BuildConfig, build
    from autosong.manifests.shard_reader import load_samples, read_shard_meta
    from autosong.pipeline.summary import summary
    from autosong.pipeline.synth import synth_corpus

    songs = synth_corpus(tmp_path / "c", songs=6, seconds=4, seed=2, workers=1)
    truth = {s.name: parse_lrc((s / "lyrics.lrc").read_text()) for s in songs}
    only_lrc_text = (songs[1] / "lyrics.txt").read_text()
    (songs[1] / "lyrics.txt").unlink()
    lrc = (songs[2] / "lyrics.lrc").read_text().splitlines()
    (songs[2] / "lyrics.lrc").write_text("\n".join(lrc[:1] + ["[00:0x.00]oops"] + lrc[1:]))
    (songs[3] / "lyrics.lrc").write_text((songs[3] / "lyrics.lrc").read_text().replace("]", "]zzz ", 2))
    late = (songs[4] / "lyrics.lrc").read_text().splitlines()  # its last line moved past the audio's end
    late[-1] = "[09:00.00]" + late[-1].split("]", 1)[1]
    (songs[4] / "lyrics.lrc").write_text("\n".join(late))
    (songs[5] / "lyrics.lrc").unlink()
    out = tmp_path / "out"
    build(BuildConfig(str(tmp_path / "c"), str(out), codec="test", shard_samples=2, val_fraction=0.0))

    reasons = {r["key"]: (r["stage"], r["reason"]) for r in read_manifest(out, "rejects")}
    assert reasons["song_002"] == ("lyrics", "lyrics.lrc line 2: '[00:0x.00]oops' is not a time stamp like [01:23.45]")
    assert reasons["song_003"][1].startswith("lyrics.txt and lyrics.lrc disagree at word 1: ")
    assert reasons["song_004"][1].startswith(f"lyrics.lrc line {len(late)} starts at 540.00 s, past the audio's end")
    rows = {r.key: r for r in read_sample_rows(out)}
    assert sorted(rows) == ["song_000", "song_001", "song_005"]
    for key in ("song_000", "song_001"):  # the synth's true line starts, in the manifest and the shard
        assert list(rows[key].line_starts_s) == [round(line.start, 2) for line in truth[key].lines]
    assert rows["song_005"].line_starts_s == ()  # lyrics.txt alone: untimed
    for key, row in rows.items():  # each song's key signatures, heard in the audio the build decoded
        assert row.key_signatures == key_signatures(load_audio(tmp_path / "c" / row.source, 24_000).wav, 24_000) != ()
    metas = {m["key"]: m for shard in sorted((out / "shards").glob("*.tar")) for m in read_shard_meta(shard)}
    assert SampleRow.from_dict({**metas["song_000"], "shard": rows["song_000"].shard}) == rows["song_000"]
    # the model reads the complete lyrics either way: from lyrics.lrc alone, what lyrics.txt said
    sample = {s.key: s for s in load_samples(out, list(rows.values()))}["song_001"]
    assert sample.lyrics.split() == only_lrc_text.split()
    assert "timed       2 songs with lyrics.lrc line times" in summary(out)
    heard = {row.key_signatures[0] for row in rows.values()}
    assert f"keys        {len(heard)} key signature{'s' if len(heard) > 1 else ''} heard; most: " in summary(out)
    # each line's memory slot is its first word's first id (a line of a tag alone: the next word's)
    tokenizer = default_tokenizer()
    song0 = {s.key: s for s in load_samples(out, list(rows.values()))}["song_000"]
    frames, _ = song0.line_timing()  # the line starts in frames of its codes
    assert frames[0] == 0 and all(abs(f / 75 - t) < 0.02 for f, t in zip(frames, rows["song_000"].line_starts_s))
    frames, slots = song0.line_timing()
    assert len(slots) == len(truth["song_000"].lines) and list(slots) == sorted(slots)
    assert abs(frames[1] / 75 - truth["song_000"].lines[1].start) < 0.02
    for line, slot in zip(truth["song_000"].lines, slots):
        words = lyric_words(line.text)
        if words:
            assert song0.text[slot] == tokenizer.encode(words[0])[1], line.text

    # an edited lyrics.lrc is a changed song: rebuilt, with its new times
    timed = (songs[0] / "lyrics.lrc").read_text().replace("[00:00.44]", "[00:00.50]")
    (songs[0] / "lyrics.lrc").write_text(timed)
    again = build(BuildConfig(str(tmp_path / "c"), str(out), codec="test", shard_samples=2, val_fraction=0.0))
    assert again.built == 1
    assert {r.key: r for r in read_sample_rows(out)}["song_000"].line_starts_s[1] == 0.5
    assert json.loads((out / "dataset.json").read_text())["counts"]["songs"] == 3
