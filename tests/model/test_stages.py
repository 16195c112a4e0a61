"""The stage registry: every stage builds its model from its own config section, and a bundle's
config section round-trips through it."""
from dataclasses import asdict

import pytest

from autosong.manifests.errors import AutoSongError
from autosong.model.stages import STAGES, stage_named


@pytest.mark.parametrize("name", sorted(STAGES))
def test_each_stage_builds_its_model_from_its_own_section(name):
    from autosong.train.config import RunConfig

    cfg = RunConfig(stage=name)
    stage = cfg.stage_kind
    section = cfg.stage_model
    assert stage is stage_named(name) and section is getattr(cfg, stage.section)
    model = stage.build(stage.config_from_dict(asdict(section)))  # what load_bundle does with config.json
    assert type(model.cfg) is type(section) and asdict(model.cfg) == asdict(section)
    if stage.is_autoencoder:
        assert section.kind == name and not stage.reads_lyrics
    else:
        assert stage.reads_lyrics and hasattr(model, "pattern")


def test_an_unknown_stage_is_refused_naming_the_known_ones():
    with pytest.raises(AutoSongError, match="stage 'diffusion': expected one of sound, latent, gumbel_ae, vqvae"):
        stage_named("diffusion")


def test_every_stage_has_a_row_in_the_eval_table():
    from autosong.eval.stages import EVALS

    assert set(EVALS) == set(STAGES)
