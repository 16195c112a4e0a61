"""A damaged or lost index (dataset.json, manifests): verify reports it, a rebuild recovers it from
the shards' own meta, and no sample is ever reused under a genre vocabulary that is not its own."""
import json
import shutil

import pytest

from autosong.manifests import DatasetCard, read_manifest
from autosong.pipeline.build import BuildConfig, build
from autosong.pipeline.verify import verify
from autosong.pipeline_cli import main as pipeline_main
from tests.pipeline.conftest import GOOD, copy_tree


def test_a_lost_dataset_json_keeps_every_sample_on_its_own_genre_slot(built, mixed_corpus, tmp_path, ray_local):
    out = copy_tree(built[0], tmp_path / "out")
    corpus = copy_tree(mixed_corpus, tmp_path / "corpus")
    old = DatasetCard.load(out)
    rows = read_manifest(out, "samples")
    # Remove every song of the first two genres: a vocabulary rebuilt from the corpus alone would
    # shift the surviving genres down two slots.
    gone = {r["key"] for r in rows if r["genre"] in old.genres[1:3]}
    assert gone
    for key in gone:
        shutil.rmtree(corpus / key)
    (out / "dataset.json").unlink()

    again = build(BuildConfig(str(corpus), str(out), codec="test", shard_samples=3))
    assert (again.built, again.kept) == (0, len(GOOD) - len(gone))
    card = DatasetCard.load(out)
    for row in read_manifest(out, "samples"):
        assert card.genres.index(row["genre"]) == old.genres.index(row["genre"])
    assert verify(out) == (len(GOOD) - len(gone), [])


def test_a_genre_whose_every_shard_is_lost_gets_its_recorded_slot_back(built, mixed_corpus, tmp_path, ray_local):
    out = copy_tree(built[0], tmp_path / "out")
    old = DatasetCard.load(out)
    recorded = shutil.copy(out / "dataset.json", tmp_path / "recorded.json")  # what a run keeps of it
    rows = read_manifest(out, "samples")
    lost_genre = old.genres[1]
    lost = {r["shard"] for r in rows if r["genre"] == lost_genre}
    (out / "dataset.json").unlink()
    shutil.rmtree(out / "manifests")
    for shard in lost:
        (out / "shards" / shard).unlink()

    shifted = copy_tree(out, tmp_path / "shifted")
    build(BuildConfig(str(mixed_corpus), str(shifted), codec="test", shard_samples=3))
    assert DatasetCard.load(shifted).genres.index(lost_genre) != 1  # the silent change, without --genres

    build(BuildConfig(str(mixed_corpus), str(out), codec="test", shard_samples=3, genres_from=str(recorded)))
    card = DatasetCard.load(out)
    assert card.genres[: len(old.genres)] == old.genres
    for row in read_manifest(out, "samples"):
        assert card.genres.index(row["genre"]) == old.genres.index(row["genre"])
    assert verify(out) == (len(GOOD), [])


def test_verify_catches_genres_that_dataset_json_puts_on_other_slots(built, tmp_path, capsys):
    out = copy_tree(built[0], tmp_path / "out")
    card = json.loads((out / "dataset.json").read_text())
    card["genres"][1], card["genres"][2] = card["genres"][2], card["genres"][1]
    (out / "dataset.json").write_text(json.dumps(card))
    moved = {r["key"] for r in read_manifest(out, "samples") if r["genre"] in card["genres"][1:3]}
    _, problems = verify(out)
    assert len(problems) == len(moved) and all("slot" in p for p in problems)
    assert pipeline_main(["verify", str(out)]) == 1


def _truncate(path):
    if path.is_dir():  # a manifest: a folder of Parquet parts; damage its newest
        path = sorted(path.glob("*.parquet"))[-1]
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


DAMAGE = {
    "truncated samples.parquet": ("manifests/samples.parquet", _truncate),
    "truncated shards.parquet": ("manifests/shards.parquet", _truncate),
    "truncated rejects.parquet": ("manifests/rejects.parquet", _truncate),
    "garbage dataset.json": ("dataset.json", lambda p: p.write_bytes(b"\x00\xffnot json{")),
    "empty dataset.json": ("dataset.json", lambda p: p.write_text("")),
    "a JSON list as dataset.json": ("dataset.json", lambda p: p.write_text("[1, 2]")),
}


@pytest.mark.parametrize("case", DAMAGE)
def test_a_damaged_index_is_reported_by_verify_and_rebuilt_from_the_shards(case, built, mixed_corpus, tmp_path,
                                                                           capsys, ray_local):
    name, damage = DAMAGE[case]
    out = copy_tree(built[0], tmp_path / "out")
    damage(out / name)
    if name != "manifests/rejects.parquet":  # verify reads the card, samples and shards
        assert pipeline_main(["verify", str(out)]) == 1
        printed = capsys.readouterr().out.strip().splitlines()
        assert printed[0].startswith("BAD ") and name in printed[0] and "pipeline build" in printed[0]
        assert "Traceback" not in printed
    again = build(BuildConfig(str(mixed_corpus), str(out), codec="test", shard_samples=3))
    assert (again.built, again.kept) == (0, len(GOOD))
    assert verify(out) == (len(GOOD), [])
    assert pipeline_main(["verify", str(out)]) == 0
