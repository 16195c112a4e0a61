import io
import json

import numpy as np
import pyarrow.parquet as pq
import pytest
import webdataset as wds

from autosong.manifests import DatasetCard, ManifestError
from autosong.manifests.errors import AutoSongError
from autosong.model.audio import load_audio
from autosong.pipeline.build import BuildConfig, build, in_key_order
from autosong.pipeline.encode import EncodedSong
from autosong.pipeline.verify import verify
from tests.pipeline.conftest import BAD, GOOD, copy_tree


def read_shards(out):
    """Plain webdataset, no AutoSong code: {key: sample}."""
    urls = sorted(str(p) for p in (out / "shards").glob("shard-*.tar"))
    samples = {}
    for s in wds.WebDataset(urls, shardshuffle=False, empty_check=False):
        assert s["__key__"] not in samples, f"duplicate sample {s['__key__']}"
        samples[s["__key__"]] = s
    return samples


def shard_of(out):
    return {r["key"]: r["shard"] for r in pq.read_table(out / "manifests/samples.parquet").to_pylist()}


def test_in_key_order_writes_in_corpus_order_whatever_order_results_come_in():
    keys = [f"song_{i:03d}" for i in range(50)]
    arrived = keys[1::2][::-1] + keys[::2]  # another order, the same on every run
    assert arrived != keys
    assert [r.key for r in in_key_order((EncodedSong(k) for k in arrived), keys)] == keys
    with pytest.raises(RuntimeError, match="song_003"):
        list(in_key_order((EncodedSong(k) for k in keys if k != "song_003"), keys))


def test_the_private_rays_workers_run_at_the_drivers_niceness(ray_local):
    """Ray renices its workers to 15 to yield to its daemons; beside any busy process the encoders then
    crawled (25x slower). The build's private Ray keeps them at ours."""
    import os

    import ray

    @ray.remote
    def niceness() -> int:
        return os.nice(0)

    assert ray.get(niceness.remote()) == os.nice(0)


def test_sample_rows_are_the_samples_manifest_and_decode_from_the_shards(built):
    from autosong.manifests import read_manifest
    from autosong.manifests.sample_rows import SAMPLE_ROW_FIELDS, SAMPLE_SCHEMA
    from autosong.manifests.dataset import read_sample_rows
    from autosong.manifests.shard_reader import load_samples

    out = built[0]
    assert tuple(SAMPLE_SCHEMA.names) == SAMPLE_ROW_FIELDS  # the schema is SampleRow's fields (tests/manifests: round trip)
    rows = read_sample_rows(out)
    assert [r.to_dict() for r in rows] == sorted(read_manifest(out, "samples"), key=lambda r: r["key"])
    plain = read_shards(out)  # webdataset itself, no AutoSong code
    for row, sample in zip(rows, load_samples(out, rows)):
        assert sample.key == row.key and sample.genre == row.genre and sample.codes.shape[1] == row.frames
        np.testing.assert_array_equal(sample.codes, np.load(io.BytesIO(plain[row.key]["codes.npy"])))
        assert len(sample.text) == row.text_len and sample.lyrics == plain[row.key]["lyrics.txt"].decode()
    assert {r.split for r in read_sample_rows(out, "val")} <= {"val"}


def test_exactly_the_good_songs_are_built(built, mixed_corpus, codec):
    out, result = built
    samples = pq.read_table(out / "manifests/samples.parquet").to_pylist()
    assert sorted(r["key"] for r in samples) == sorted(GOOD)
    in_shards = [k for _, k in sorted((shard, k) for k, shard in shard_of(out).items())]
    assert in_shards == sorted(GOOD)  # shards hold the songs in key order
    assert result.built == len(GOOD) and result.rejected == len(BAD)
    card = DatasetCard.load(out)
    assert card.counts["songs"] == len(GOOD) and card.codec == codec.identity
    assert card.genres[0] == "unknown" and "reggaeton" in card.genres
    rows = {r["key"]: r for r in samples}
    assert rows["song_tagged"]["genre"] == "reggaeton" and rows["song_tagged"]["genre_source"] == "tag"
    assert rows["song_latin1"]["lyrics_encoding"] == "cp1252"
    assert rows["song_garbled"]["bad_packets"] >= 1
    assert rows["song_000"]["source"] == "song_000/audio.mp3" and rows["song_001"]["channels"] == 2


def test_every_bad_song_is_rejected_with_stage_and_reason(built):
    out, _ = built
    rejects = {r["key"]: r for r in pq.read_table(out / "manifests/rejects.parquet").to_pylist()}
    assert set(rejects) == set(BAD)
    for key, (stage, words) in BAD.items():
        assert rejects[key]["stage"] == stage, rejects[key]
        assert words in rejects[key]["reason"], rejects[key]


def test_shards_hold_the_codes_the_codec_gives(built, mixed_corpus, codec, tokenizer):
    import torch

    out, _ = built
    # The build's actors run one torch thread each on 2 CPUs; float reductions (and so ~1% of
    # near-tie codes) depend on the thread count, so encode the reference the same way.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    samples = read_shards(out)
    rows = {r["key"]: r for r in pq.read_table(out / "manifests/samples.parquet").to_pylist()}
    assert set(samples) == set(GOOD)
    for key in ("song_000", "song_001", "song_latin1"):
        s = samples[key]
        codes = np.load(io.BytesIO(s["codes.npy"]))
        audio_path = next((mixed_corpus / key).glob("audio.*"))
        expected = codec.encode(load_audio(audio_path, 24_000).wav, 24_000)
        np.testing.assert_array_equal(codes, expected)
        assert codes.dtype == np.int16 and codes.shape == (2, rows[key]["frames"])
        ids = np.load(io.BytesIO(s["text.npy"]))
        assert ids.dtype == np.int32 and len(ids) == rows[key]["text_len"]
        meta = json.loads(s["meta.json"])
        assert meta["codec"] == codec.identity.to_dict() and meta["key"] == key
    torch.set_num_threads(threads)
    latin = np.load(io.BytesIO(samples["song_latin1"]["text.npy"]))
    assert "café résumé" in tokenizer.decode(latin)


def test_verify_passes_then_catches_a_flipped_byte(built, tmp_path):
    out, _ = built
    checked, problems = verify(out)
    assert checked == len(GOOD) and problems == []
    broken = copy_tree(out, tmp_path / "broken")
    shard = sorted((broken / "shards").glob("shard-*.tar"))[1]
    data = bytearray(shard.read_bytes())
    data[2000] ^= 0xFF
    shard.write_bytes(bytes(data))
    checked, problems = verify(broken)
    assert problems and all(shard.name in p for p in problems)


def test_rebuild_adds_nothing_and_a_new_song_adds_one(built, mixed_corpus, tmp_path, ray_local):
    out = copy_tree(built[0], tmp_path / "out")
    before = {p.name: p.read_bytes() for p in (out / "shards").iterdir()}
    again = build(BuildConfig(str(mixed_corpus), str(out), codec="test", shard_samples=3))
    assert (again.built, again.kept, again.new_rejects) == (0, len(GOOD), 0)
    assert {p.name: p.read_bytes() for p in (out / "shards").iterdir()} == before

    corpus = copy_tree(mixed_corpus, tmp_path / "corpus")
    copy_tree(corpus / "song_000", corpus / "song_new")
    (corpus / "song_new" / "lyrics.txt").write_text("[chorus]\n新的歌 new song\n", encoding="utf-8")
    (corpus / "song_new" / "lyrics.lrc").unlink()  # the copy's timed lyrics are song_000's words
    grown = build(BuildConfig(str(corpus), str(out), codec="test", shard_samples=3))
    assert (grown.built, grown.kept) == (1, len(GOOD))
    assert sorted(read_shards(out)) == sorted(GOOD + ["song_new"])
    assert verify(out)[1] == []


def test_a_local_copy_of_the_codec_keeps_the_older_songs_trainable(built, mixed_corpus, codec, tmp_path, ray_local):
    """A `save_pretrained` copy of the same weights is the same codec: a build with it adds songs,
    and verify and the training stream accept the songs the hub id encoded before."""
    from autosong.train.data import ShardStream, StreamConfig

    out = copy_tree(built[0], tmp_path / "out")
    codec.save(tmp_path / "local_codec")
    corpus = copy_tree(mixed_corpus, tmp_path / "corpus")
    copy_tree(corpus / "song_000", corpus / "song_new")
    (corpus / "song_new" / "lyrics.txt").write_text("[chorus]\nanother song\n", encoding="utf-8")
    (corpus / "song_new" / "lyrics.lrc").unlink(missing_ok=True)  # its timed lyrics said the old words
    grown = build(BuildConfig(str(corpus), str(out), codec=str(tmp_path / "local_codec"), shard_samples=3))
    assert (grown.built, grown.kept) == (1, len(GOOD))
    sources = {json.loads(s["meta.json"])["codec"]["source"] for s in read_shards(out).values()}
    assert sources == {"test", str(tmp_path / "local_codec")}  # both names are in the shards
    assert verify(out)[1] == []
    stream = ShardStream(StreamConfig(str(out), split="train", micro_batch=2, window_frames=50, bucket_songs=4))
    train_rows = [r for r in pq.read_table(out / "manifests/samples.parquet").to_pylist() if r["split"] == "train"]
    keys = [w["key"] for w in stream._windows(epoch=0, reader=0, readers=1)]
    assert sorted(keys) == sorted(r["key"] for r in train_rows)


def test_a_changed_song_is_re_encoded_and_a_removed_one_leaves_the_index(built, mixed_corpus, tmp_path, ray_local):
    out = copy_tree(built[0], tmp_path / "out")
    corpus = copy_tree(mixed_corpus, tmp_path / "corpus")
    (corpus / "song_001" / "lyrics.txt").write_text("[verse]\nchanged words\n", encoding="utf-8")
    (corpus / "song_001" / "lyrics.lrc").unlink(missing_ok=True)  # its timed lyrics said the old words
    import shutil

    shutil.rmtree(corpus / "song_002")
    result = build(BuildConfig(str(corpus), str(out), codec="test", shard_samples=3))
    assert result.built == 1 and result.kept == len(GOOD) - 2
    samples = read_shards(out)  # shards that held only stale samples are gone
    rows = {r["key"]: r for r in pq.read_table(out / "manifests/samples.parquet").to_pylist()}
    assert "song_002" not in rows and "changed words" in samples["song_001"]["lyrics.txt"].decode()
    assert verify(out)[1] == []


def test_a_deleted_shard_stops_training_in_one_line_and_the_next_build_restores_it(built, mixed_corpus, tmp_path,
                                                                                   ray_local):
    from autosong.manifests import ManifestError
    from autosong.train.data import ShardStream, StreamConfig

    out = copy_tree(built[0], tmp_path / "out")
    rows = pq.read_table(out / "manifests/samples.parquet").to_pylist()
    lost = sorted({r["shard"] for r in rows if r["split"] == "train"})[0]
    (out / "shards" / lost).unlink()
    with pytest.raises(ManifestError, match=f"first: {lost}.*pipeline verify"):
        ShardStream(StreamConfig(data=str(out), split="train", micro_batch=1, window_frames=100, max_frames=1000))
    assert any(lost in p for p in verify(out)[1])
    again = build(BuildConfig(str(mixed_corpus), str(out), codec="test", shard_samples=3))
    assert again.built == sum(r["shard"] == lost for r in rows)  # exactly the lost songs, encoded again
    assert sorted(read_shards(out)) == sorted(GOOD) and verify(out)[1] == []


@pytest.mark.parametrize("damage", ["a flipped byte", "a code set to 1024", "a truncated tar"])
def test_a_rebuild_repairs_a_damaged_shard_the_manifest_lists(damage, built, mixed_corpus, tmp_path, ray_local):
    """A kept shard whose bytes are not those shards.parquet recorded is set aside and its songs are
    encoded again, so `verify` passes after a build, as train's message promises."""
    from tests.test_damaged_runs import _rewrite_codes, _truncate

    out = copy_tree(built[0], tmp_path / "out")
    rows = pq.read_table(out / "manifests/samples.parquet").to_pylist()
    shard = out / "shards" / sorted({r["shard"] for r in rows})[1]
    if damage == "a flipped byte":
        data = bytearray(shard.read_bytes())
        data[2000] ^= 0xFF
        shard.write_bytes(bytes(data))
    elif damage == "a code set to 1024":
        _rewrite_codes(shard, lambda c: c.__setitem__((0, 1), 1024))
    else:
        _truncate(shard)
    assert verify(out)[1]
    again = build(BuildConfig(str(mixed_corpus), str(out), codec="test", shard_samples=3))
    assert again.built == sum(r["shard"] == shard.name for r in rows)  # that shard's songs, encoded again
    assert sorted(read_shards(out)) == sorted(GOOD) and verify(out)[1] == []
    assert (out / "shards" / (shard.name + ".damaged")).exists()


def test_other_codec_or_text_front_end_is_refused(built, mixed_corpus, tmp_path, codec, ray_local):
    import torch

    from autosong.model.codec import Codec

    out = built[0]
    with pytest.raises(AutoSongError, match="text front-end"):
        build(BuildConfig(str(mixed_corpus), str(out), codec="test", text="bert:minilm"))
    other = Codec.load("test")
    with torch.no_grad():
        other.model.decoder.layers[0].conv.bias.add_(1.0)
    other.save(tmp_path / "other_codec")
    with pytest.raises(ManifestError, match="different codecs"):
        build(BuildConfig(str(mixed_corpus), str(out), codec=str(tmp_path / "other_codec")))


def test_max_seconds_and_bert_states(tmp_path, ray_local):
    from autosong.pipeline.synth import synth_corpus

    synth_corpus(tmp_path / "c", songs=2, seconds=4, seed=3)
    out = tmp_path / "out"
    result = build(BuildConfig(str(tmp_path / "c"), str(out), codec="test", text="bert:minilm", max_seconds=2.0))
    assert result.built == 2
    card = DatasetCard.load(out)
    assert card.text["frontend"] == "bert" and card.text["bert_dim"] == 384
    for s in read_shards(out).values():
        states = np.load(io.BytesIO(s["bert.npy"]))
        assert states.dtype == np.float16 and states.ndim == 2 and states.shape[1] == 384
        assert np.load(io.BytesIO(s["codes.npy"])).shape == (2, 150)  # 2 s x 75 frames/s
    assert verify(out)[1] == []


def test_an_unchanged_rebuild_reads_no_audio_bytes(built, mixed_corpus, tmp_path, ray_local, monkeypatch):
    from autosong.pipeline import scan

    out = copy_tree(built[0], tmp_path / "out")
    read = []
    real_sha = scan.file_sha256
    monkeypatch.setattr(scan, "file_sha256", lambda p: read.append(str(p)) or real_sha(p))
    again = build(BuildConfig(str(mixed_corpus), str(out), codec="test", shard_samples=3))
    assert (again.built, again.kept, again.hashed) == (0, len(GOOD), 0)
    assert read and all(p.endswith(("lyrics.txt", "lyrics.lrc")) for p in read)  # lyrics are hashed, audio is not


def test_the_stat_cache_rehashes_a_file_whose_mtime_changed_and_rehash_forces_the_rest(built, mixed_corpus, tmp_path,
                                                                                      ray_local):
    import os

    corpus = copy_tree(mixed_corpus, tmp_path / "corpus")
    out = copy_tree(built[0], tmp_path / "out")
    first = build(BuildConfig(str(corpus), str(out), codec="test", shard_samples=3))
    assert first.built == 0 and first.hashed > len(GOOD)  # new paths: every audio file read once

    def flip_last_byte(path):
        data = bytearray(path.read_bytes())
        data[-1] ^= 0xFF
        st = path.stat()
        path.write_bytes(bytes(data))
        return st

    flip_last_byte(corpus / "song_000" / "audio.mp3")  # same size, new mtime
    changed = build(BuildConfig(str(corpus), str(out), codec="test", shard_samples=3))
    assert changed.hashed == 1 and changed.built == 1

    audio = corpus / "song_001" / "audio.flac"
    st = flip_last_byte(audio)
    os.utime(audio, ns=(st.st_atime_ns, st.st_mtime_ns))  # same size and mtime: the cache cannot tell
    assert build(BuildConfig(str(corpus), str(out), codec="test", shard_samples=3)).built == 0
    forced = build(BuildConfig(str(corpus), str(out), codec="test", shard_samples=3, rehash=True))
    assert forced.hashed == first.hashed and forced.built + forced.new_rejects == 1
    assert verify(out)[1] == []


def test_songs_batched_per_call_build_the_same_dataset(built, mixed_corpus, tmp_path, ray_local):
    """--songs-per-batch (the GPU encoders' default): bad songs inside a batch are still rejects
    of their own, the good ones' codes match the song-per-call build but for rare near-ties."""
    out, _ = built
    batched = tmp_path / "batched"
    result = build(BuildConfig(str(mixed_corpus), str(batched), codec="test", shard_samples=3, songs_per_batch=4))
    assert result.built == len(GOOD) and result.rejected == len(BAD)
    assert verify(batched)[1] == []
    rejects = {r["key"]: (r["stage"], r["reason"]) for r in pq.read_table(batched / "manifests/rejects.parquet").to_pylist()}
    assert rejects == {r["key"]: (r["stage"], r["reason"]) for r in pq.read_table(out / "manifests/rejects.parquet").to_pylist()}
    one, many = read_shards(out), read_shards(batched)
    assert set(one) == set(many) == set(GOOD)
    assert shard_of(batched) == shard_of(out)  # the same layout, whatever order the encoders finished in
    same = [np.load(io.BytesIO(many[k]["codes.npy"])) == np.load(io.BytesIO(one[k]["codes.npy"])) for k in GOOD]
    assert all(s.shape == o.shape for s, o in zip(same, (np.load(io.BytesIO(one[k]["codes.npy"])) for k in GOOD)))
    assert np.mean(np.concatenate([s.ravel() for s in same])) > 0.99
