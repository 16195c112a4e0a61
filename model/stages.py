"""The training stages, one object each: the token model over EnCodec tokens, the latent model over
an autoencoder's codes, and the two stage-1 autoencoders that make those codes.

Each stage says which config section holds its model, how to build the model, its training loss
and extra metrics, what data it trains on and whether it reads lyrics; how it is evaluated is
eval/stages.py's table, keyed by the stage's name. The config, the trainer, the bundle loader and
the CLIs ask the stage instead of testing its name, so a new stage is one class in `STAGES` (and
one row of that table). Importing this module loads no torch (the CLIs' --help
lists the stages); each method imports what it builds.
"""
from __future__ import annotations

from autosong.manifests.errors import AutoSongError
from autosong.model.autoencoders import AEConfig, build_autoencoder, code_usage, compression_factor
from autosong.model.model_config import ModelConfig
from autosong.model.padding import SongBatch
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

    def loss(self, model, batch: SongBatch, step: int):
        """(loss, per-codebook CE sums [C], token counts [C], extras for logging)."""
        cfg = model.cfg
        out = model(batch.codes, batch.lengths, batch.frame_offset, batch.text_ids, batch.text_mask, batch.bert,
                    batch.bert_mask, song_frames=batch.song_frames, line_frames=batch.line_frames,
                    line_slots=batch.line_slots, with_future=bool(cfg.future_frames))
        loss, ce_sums, counts = model.loss(out[0], out[1])
        if len(out) == 3:
            future = model.future_loss(out[2])
            return loss + cfg.future_weight * future, ce_sums, counts, {"future_ce": future.detach()}
        return loss, ce_sums, counts, {}

    def train_metrics(self, extras: dict, counts, model_cfg) -> dict:
        """Metrics beyond loss and CE for a logged step, from the last micro-batch's extras."""
        return {"future_ce": float(extras["future_ce"])} if "future_ce" in extras else {}


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

    def loss(self, model, batch: SongBatch, step):
        return model(batch.codes, batch.lengths, step)

    def train_metrics(self, extras, counts, model_cfg):
        """Reconstruction accuracy per EnCodec codebook, code usage, compression."""
        if "usage" not in extras:
            return {}

        acc = (extras["correct"].float().cpu() / counts.clamp(min=1)).tolist()
        perplexity, dead = code_usage(extras["usage"].float().cpu())
        out = {**{f"acc_q{c}": a for c, a in enumerate(acc)}, "code_perplexity": perplexity, "dead_fraction": dead,
               "compression": compression_factor(model_cfg)}
        if "tau" in extras:
            out["tau"] = float(extras["tau"])
        return out


class GumbelAE(Autoencoder):
    name = "gumbel_ae"


class VQVAE(Autoencoder):
    name = "vqvae"


STAGES: dict[str, Stage] = {s.name: s for s in (TokenModel(), LatentModel(), GumbelAE(), VQVAE())}


def stage_named(name: str) -> Stage:
    if name not in STAGES:
        raise AutoSongError(f"stage {name!r}: expected one of {', '.join(STAGES)}")
    return STAGES[name]
