"""The training stages, one object each: the token model over EnCodec tokens, the latent model over
an autoencoder's codes, and the two stage-1 autoencoders that make those codes.

Each stage says which config section holds its model, how to build the model, what data it trains
on and whether it reads lyrics. How it is trained and evaluated are tables keyed by the stage's
name, in the layers that own them: train/losses.py and eval/stages.py. The config, the trainer,
the bundle loader and the CLIs ask the stage instead of testing its name, so a new stage is one
class in `STAGES` (and a row of each table).
"""
from __future__ import annotations

from autosong.manifests.errors import AutoSongError
from autosong.model.autoencoders import AEConfig, build_autoencoder
from autosong.model.model_config import ModelConfig
from autosong.model.transformer import SoundTransformer


class Stage:
    name = ""
    section = "model"        # the run config's section that configures this stage's model
    is_autoencoder = False   # makes codes for a latent model; generates no songs itself
    on_latents = False       # trains on an autoencoder's codes (a latent dataset), not EnCodec's

    @property
    def reads_lyrics(self) -> bool:
        return not self.is_autoencoder

    def configure(self, run_cfg) -> None:
        """Settle what the stage implies in the run config (called when the config is made)."""

    def config_from_dict(self, values: dict):
        return ModelConfig(**values)

    def build(self, model_cfg):
        return SoundTransformer(model_cfg)


class TokenModel(Stage):
    """The SoundTransformer over EnCodec tokens (the design's model)."""

    name = "sound"


class LatentModel(Stage):
    """The SoundTransformer over an autoencoder's latent codes."""

    name = "latent"
    on_latents = True


class Autoencoder(Stage):
    """A stage-1 autoencoder over EnCodec tokens (the `ae` section): its loss is reconstruction."""

    section = "ae"
    is_autoencoder = True

    def configure(self, run_cfg):
        run_cfg.ae.kind = self.name
        run_cfg.ae.__post_init__()

    def config_from_dict(self, values):
        return AEConfig(**values)

    def build(self, model_cfg):
        return build_autoencoder(model_cfg)


class GumbelAE(Autoencoder):
    name = "gumbel_ae"


class VQVAE(Autoencoder):
    name = "vqvae"


STAGES: dict[str, Stage] = {s.name: s for s in (TokenModel(), LatentModel(), GumbelAE(), VQVAE())}


def stage_named(name: str) -> Stage:
    if name not in STAGES:
        raise AutoSongError(f"stage {name!r}: expected one of {', '.join(STAGES)}")
    return STAGES[name]
