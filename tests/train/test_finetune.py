"""Fine-tuning a trained bundle on new songs: `train --init-from`, full and LoRA, under the ZeRO
stages we ship; the export, the adapter alone, resume, and the refusals."""
import json

import pytest
import torch

from tests.conftest import read_metrics, train_cli

RECIPE = ["--train.log_every", "1", "--train.micro_batch", "2", "--train.warmup_steps", "2"]


@pytest.fixture(scope="session")
def new_genre_data(trained_run, tmp_path_factory, ray_local):
    """6 new synth songs, three of them of a genre the base never heard ("jazz"), built with the
    base's genre slots."""
    from autosong.pipeline.build import BuildConfig, build
    from autosong.pipeline.synth import synth_corpus

    root = tmp_path_factory.mktemp("new_genre")
    for song in synth_corpus(root / "corpus", songs=6, seconds=4, seed=9, workers=1)[:3]:
        (song / "genre.txt").write_text("jazz\n")
    build(BuildConfig(str(root / "corpus"), str(root / "out"), codec="test", shard_samples=1, val_fraction=0.34,
                      genres_from=str(trained_run)))
    return root / "out"


def _state(path, **kw):
    from autosong.model.bundle import load_bundle

    return load_bundle(path, **kw)


def test_a_full_fine_tune_starts_from_the_base_and_gives_a_new_genre_its_own_row(trained_run, new_genre_data,
                                                                                   tmp_path):
    from autosong.model.lyrics import default_tokenizer

    run = tmp_path / "full"
    out = train_cli("--data", str(new_genre_data), "--init-from", str(trained_run), "--run", str(run),
                    "--steps", "3", *RECIPE)  # no --config: the base's own model section
    assert out.returncode == 0, out.stderr[-3000:]
    base, tuned = _state(trained_run), _state(run)
    assert tuned.genres[: len(base.genres)] == base.genres and tuned.genres[len(base.genres):] == ["jazz"]
    assert tuned.origin["step"] == base.step and tuned.origin["adapters"] == "none"
    E, new = "text.embed.weight", default_tokenizer().genre_id(len(base.genres))
    b, t = base.model.state_dict()[E], tuned.model.state_dict()[E]
    assert torch.equal(b[:new], t[:new])  # the frozen table is the base's, trained genres included
    trained_rows = b[[default_tokenizer().genre_id(s) for s in range(len(base.genres))]]
    assert 0 < (t[new] - trained_rows.mean(0)).abs().max() < 0.1  # started at their mean, then learned


def test_lora_trains_adapters_under_zero3_and_exports_a_merged_bundle_and_the_adapter(trained_run, new_genre_data,
                                                                                       tmp_path):
    run = tmp_path / "lora"
    out = train_cli("--data", str(new_genre_data), "--init-from", str(trained_run), "--run", str(run), "--steps", "3",
                    "--adapters", "lora", "--finetune.lora_rank", "4", "--export-adapters",
                    "--deepspeed", "configs/deepspeed/zero3.json", *RECIPE)
    assert out.returncode == 0, out.stderr[-3000:]
    merged, base = _state(run), _state(trained_run)
    onto_base = _state(trained_run, adapter=run / "export/adapter")
    m, b, a = merged.model.state_dict(), base.model.state_dict(), onto_base.model.state_dict()
    assert m.keys() == b.keys() and all(torch.allclose(m[k], a[k], atol=1e-6) for k in m)
    assert onto_base.genres == merged.genres and merged.origin["adapters"] == "lora"
    for frozen in ("pos_embed.weight", "layers.0.norms.0.weight", "text.proj.weight"):
        assert torch.equal(m[frozen], b[frozen]), frozen
    for trained in ("layers.0.mlp.fc.weight", "out_shared.weight", "token_embed.weight"):  # adapted, or whole
        assert not torch.equal(m[trained], b[trained]), trained
    adapter_bytes = sum(f.stat().st_size for f in (run / "export/adapter").iterdir())
    assert adapter_bytes < 0.1 * (run / "export/model.safetensors").stat().st_size
    from autosong.model.api import AutoSong
    from autosong.manifests.errors import AutoSongError

    song = AutoSong.load(trained_run, device="cpu", dtype="fp32", adapter=run / "export/adapter")  # what generate uses
    assert torch.allclose(song.bundle.model.state_dict()["layers.0.mlp.fc.weight"], m["layers.0.mlp.fc.weight"], atol=1e-6)
    with pytest.raises(AutoSongError, match="trained on another base"):
        _state(run, adapter=run / "export/adapter")


def test_a_lora_fine_tune_resumes_exactly_under_zero2(trained_run, new_genre_data, tmp_path):
    args = ["--data", str(new_genre_data), "--init-from", str(trained_run), "--adapters", "lora", "--deepspeed",
            "configs/deepspeed/zero2.json", "--train.ckpt_every", "2", "--train.deterministic", "true", *RECIPE]
    whole, split = tmp_path / "whole", tmp_path / "split"
    assert train_cli(*args, "--run", str(whole), "--steps", "4").returncode == 0
    assert train_cli(*args, "--run", str(split), "--steps", "4", "--stop-at", "2").returncode == 0
    again = train_cli("--data", str(new_genre_data), "--run", str(split), "--resume")
    assert again.returncode == 0, again.stderr[-3000:]
    assert [r["loss"] for r in read_metrics(whole)] == [r["loss"] for r in read_metrics(split)]
    assert json.loads((split / "export/config.json").read_text())["origin"]["adapters"] == "lora"


def test_what_the_base_cannot_follow_is_refused_in_one_line(trained_run, new_genre_data, small_data, tmp_path):
    from autosong.manifests import DatasetCard, ManifestError
    from autosong.manifests.errors import AutoSongError
    from autosong.pipeline.build import BuildConfig, build
    from autosong.train.config import apply_overrides, config_from_base, load_config
    from autosong.train.finetune import refuse_unlike_base
    from autosong.train.trainer import fill_from_dataset

    def check(overrides, data):
        card = DatasetCard.load(data)
        cfg = fill_from_dataset(config_from_base(str(trained_run), overrides), card)
        refuse_unlike_base(cfg, card, str(data))

    check(["--model.max_tokens", "300", "--model.dropout", "0.2"], new_genre_data)  # allowed: no shape changes
    with pytest.raises(AutoSongError, match=r"past the 27000 frame positions the base learned"):
        check(["--model.max_tokens", "60000"], new_genre_data)
    with pytest.raises(AutoSongError, match=r"model.n_layers is 3 here and 2 in the base.*leave out --config"):
        check(["--model.n_layers", "3"], new_genre_data)
    # the same songs built without the base's slots: its genres land in other slots
    other = tmp_path / "other"
    build(BuildConfig(str(new_genre_data.parent / "corpus"), str(other), codec="test", shard_samples=1))
    with pytest.raises(ManifestError, match=r"genre slot \d+ is .* but the base .* learned it as .*--genres"):
        check([], other)
    with pytest.raises(AutoSongError, match="finetune.adapters needs a base"):
        apply_overrides(load_config("configs/model/tiny.yaml"), ["--finetune.adapters", "lora"])
    out = train_cli("--data", str(small_data), "--init-from", str(tmp_path / "nowhere"), "--run", str(tmp_path / "r"))
    assert out.returncode == 2 and "no exported model there" in out.stderr.strip().splitlines()[-1]
