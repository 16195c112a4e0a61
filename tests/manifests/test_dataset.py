"""The ground floor's contract: a SampleRow written to the samples manifest reads back equal, and
a Dataset opens a built dataset once (card, rows) and answers from what it read."""
import json
from dataclasses import replace

import pyarrow.parquet as pq
import pytest

from autosong.manifests import DatasetCard, ManifestError, append_manifest, write_manifest
from autosong.manifests.dataset import Dataset, read_sample_rows
from autosong.manifests.sample_rows import SAMPLE_SCHEMA, SampleRow

ROW = SampleRow(key="song_001", shard="shard-000000.tar", source="song_001/audio.mp3", genre="pop",
                genre_source="genre.txt", duration_s=3.25, frames=244, text_len=31, audio_sha256="a" * 64,
                lyrics_sha256="b" * 64, codes_sha256="c" * 64, lyrics_encoding="utf-8", source_rate=44_100,
                channels=2, bad_packets=1, split="val", line_starts_s=(0.0, 1.5), line_slots=(2, 9))


def test_a_sample_row_round_trips_through_the_manifest(tmp_path):
    untimed = replace(ROW, key="song_002", split="train", line_starts_s=(), line_slots=())
    write_manifest(tmp_path, "samples", [ROW.to_dict()])
    append_manifest(tmp_path, "samples", [untimed.to_dict()])  # a part beside the base, read as one table
    assert read_sample_rows(tmp_path) == [ROW, untimed]
    assert read_sample_rows(tmp_path, "val") == [ROW]
    stored = pq.read_table(next((tmp_path / "manifests" / "samples.parquet").glob("base-*"))).schema
    assert stored.field("channels").type == SAMPLE_SCHEMA.field("channels").type  # int16, as the first datasets
    assert SAMPLE_SCHEMA.names == list(ROW.to_dict())


def test_a_row_from_before_the_timed_columns_reads_with_their_defaults():
    old = {k: v for k, v in ROW.to_dict().items() if k not in ("line_starts_s", "line_slots")}
    assert SampleRow.from_dict(old) == replace(ROW, line_starts_s=(), line_slots=())
    meta = {**ROW.meta(), "genre_slot": 3, "codec": {}}  # a sample's meta.json: the row but its shard, and more
    assert SampleRow.from_dict({**meta, "shard": ROW.shard}) == ROW


def _card(**kw) -> DatasetCard:
    return DatasetCard(codec={"source": "test", "config_sha256": "0" * 64, "weights_sha256": "0" * 64},
                       codec_frame_rate=75, num_codebooks=2, codebook_size=1024, text={"frontend": "pinyin"},
                       genres=["unknown", "pop"], val_fraction=0.5, **kw)


def test_a_dataset_opens_once_and_answers_from_what_it_read(tmp_path):
    _card().save(tmp_path)
    long = replace(ROW, key="song_003", split="train", text_len=500, shard="shard-000001.tar")
    write_manifest(tmp_path, "samples", [ROW.to_dict(), long.to_dict()])
    data = Dataset.open(tmp_path)
    (tmp_path / "dataset.json").unlink()  # what it needs was read when it was opened
    assert data.split("train") == [long] and data.max_text_len() == 500 and str(data) == str(tmp_path)
    with pytest.raises(ManifestError, match="longest: song_003, 500 ids"):
        data.refuse_texts_longer_than(200)
    with pytest.raises(ManifestError, match="1 of 1 val shard"):  # the shards are not there
        data.samples("val")
    assert Dataset.of(data) is data
    assert json.loads(json.dumps(str(data))) == str(tmp_path)
