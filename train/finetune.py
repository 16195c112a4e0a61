"""Starting a run from a trained bundle (`autosong train --init-from RUN_OR_EXPORT`): what may
differ from the base and what may not (the codec, the text front-end, the model's shape and the
genre slots' meaning are refused in one line that names the difference), the base's weights
with rows for genres new to it, LoRA adapters (model/adapters.py) when asked, and the export:
adapters merged into an ordinary bundle, and optionally the adapter alone."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from autosong.manifests import DatasetCard, UNUSED_SLOT, file_sha256, require_same_genre_slots, require_same_keys
from autosong.manifests.codec_identity import require_same_codec
from autosong.manifests.errors import AutoSongError
from autosong.model.adapters import LoraSpec, PROJECTIONS, WHOLE_MODULES, add_lora, save_adapter
from autosong.model.bundle import load_bundle
from autosong.model.config_checks import check_ranges, ranged
from autosong.model.lyrics import default_tokenizer
from autosong.model.transformer import SoundTransformer

ADAPTERS = ("none", "lora")
# Model fields a fine-tune may change: none of them changes a weight's shape. The window may grow
# up to model.max_frames (the position table the base learned).
FREE_FIELDS = {"max_tokens", "dropout", "cond_dropout", "lyric_dropout", "future_weight", "future_stride",
               "activation_checkpointing", "recompute_every", "prior_kernel"}
TEXT_FIELDS = ("frontend", "vocab_sha256", "bert_source", "bert_dim")


@dataclass
class FinetuneConfig:
    init_from: str = ""        # a run or export whose weights this run starts from ("" = random weights)
    adapters: str = "none"     # none (every weight trains) | lora (low-rank adapters, plus new genres' rows)
    lora_rank: int = ranged(8, low=1)
    lora_alpha: float = ranged(16.0, low=0, above=True)
    lora_modules: tuple[str, ...] = field(default=PROJECTIONS)
    lora_whole: tuple[str, ...] = field(default=WHOLE_MODULES)  # also trained in full (model/adapters.py)
    export_adapters: bool = False  # also write RUN/export/adapter: the adapter alone, to load onto the base

    def __post_init__(self):
        check_ranges(self, "finetune")
        self.lora_modules, self.lora_whole = tuple(self.lora_modules), tuple(self.lora_whole)
        if self.adapters not in ADAPTERS:
            raise ValueError(f"finetune.adapters {self.adapters!r}: expected one of {ADAPTERS}")
        if self.adapters != "none" and not self.init_from:
            raise ValueError("finetune.adapters needs a base: pass --init-from RUN_OR_EXPORT")

    @property
    def lora(self) -> LoraSpec | None:
        if self.adapters != "lora":
            return None
        return LoraSpec(self.lora_rank, self.lora_alpha, self.lora_modules, self.lora_whole)


def base_meta(init_from: str | Path) -> tuple[Path, dict]:
    """(export directory, its config.json) of a run or export, or one line saying what is missing."""
    path = Path(init_from)
    directory = path / "export" if (path / "export" / "config.json").exists() else path
    if not (directory / "config.json").is_file():
        raise AutoSongError(f"--init-from {init_from}: no exported model there (expected RUN/export/config.json): "
                            f"train the base to its last step, or point at its export")
    meta = json.loads((directory / "config.json").read_text())
    if meta.get("stage", "sound") not in ("sound", "latent"):
        raise AutoSongError(f"--init-from {init_from}: a {meta['stage']} autoencoder; fine-tuning starts from a "
                            f"sound or latent model")
    return directory, meta


def base_model_section(init_from: str | Path) -> tuple[str, dict]:
    """The base's stage and model config: a fine-tune's model section when no --config is given."""
    _, meta = base_meta(init_from)
    return meta.get("stage", "sound"), meta["model"]


def refuse_unlike_base(cfg, card: DatasetCard, data: str) -> None:
    """One line for anything that keeps the base's weights from meaning the same on this data."""
    where = cfg.finetune.init_from
    directory, meta = base_meta(where)
    stage = meta.get("stage", "sound")
    if cfg.stage != stage:
        raise AutoSongError(f"--init-from {where} is a {stage} model and this run trains --stage {cfg.stage}")
    require_same_codec(meta["codec"], card.codec, f"the base {directory} and {data}",
                       f"build the new songs with the base's codec (`autosong pipeline build ... --codec "
                       f"{meta['codec']['source']}`)")
    for key in TEXT_FIELDS:
        if meta["text"].get(key) != card.text.get(key):
            raise AutoSongError(f"--init-from {where}: its lyrics front-end {key} is {meta['text'].get(key)!r} and "
                                f"{data}'s is {card.text.get(key)!r}: build the new songs with the base's front-end")
    require_same_genre_slots(meta["genres"], card.genres, data, f"the base {where}",
                             f"build the new songs with `autosong pipeline build ... --genres {where}` so the "
                             f"base's slots keep their meaning and new genres get new slots")
    require_same_keys(meta.get("key_normalised", False), card, data, f"the base {where}")
    m = cfg.stage_model
    if m.window_frames > m.max_frames:
        raise AutoSongError(f"--init-from {where}: model.max_tokens {m.max_tokens} is a window of {m.window_frames} "
                            f"frames, past the {m.max_frames} frame positions the base learned (model.max_frames): "
                            f"at most --model.max_tokens {m.max_frames * m.num_codebooks}")
    ours = json.loads(json.dumps(asdict(m)))  # as the base's run file holds it: tuples are lists there
    for name, value in meta["model"].items():
        if name not in FREE_FIELDS and ours.get(name) != value:
            raise AutoSongError(f"--init-from {where}: model.{name} is {ours.get(name)!r} here and {value!r} in the "
                                f"base; a fine-tune keeps the base's shape (leave out --config, or drop the override)")


def new_genre_slots(base_genres: list[str], genres: list[str]) -> list[int]:
    """Slots this data names that the base never trained: beyond its list, or unused in it."""
    return [i for i, g in enumerate(genres) if g != UNUSED_SLOT.format(i)
            and (i >= len(base_genres) or base_genres[i] == UNUSED_SLOT.format(i))]


class Tuning:
    """A run's base: loads its weights into the model, gives new genres their rows (the mean of the
    rows the base trained) and lets those rows learn, puts on adapters, and at the end turns the
    run's weights into an export (merged) and, if asked, the adapter alone."""

    def __init__(self, model: torch.nn.Module, cfg, card: DatasetCard, data: str):
        refuse_unlike_base(cfg, card, data)
        self.cfg, ft, self.genres = cfg, cfg.finetune, card.genres
        base = load_bundle(ft.init_from)
        self.origin = {"path": str(base.path), "step": base.step,
                       "weights_sha256": file_sha256(base.path / "model.safetensors"), "adapters": ft.adapters}
        model.load_state_dict(base.model.state_dict())
        tok = default_tokenizer()
        self.rows = [tok.genre_id(s) for s in new_genre_slots(base.genres, card.genres)]
        trained = [tok.genre_id(s) for s, g in enumerate(base.genres) if g != UNUSED_SLOT.format(s)]
        embed = model.text.embed.weight
        with torch.no_grad():
            for r in self.rows if trained else ():  # a base that trained no genre row keeps its rows as they are
                embed[r] = embed[trained].mean(0)
        self.wrapped = add_lora(model, ft.lora) if ft.lora else None
        if self.rows and not (embed.requires_grad and self.wrapped is None):  # frozen table: these rows learn
            rows = self.rows
            embed.requires_grad_(True)
            embed.register_hook(lambda g: torch.zeros_like(g).index_copy(0, torch.tensor(rows, device=g.device),
                                                                            g[rows]))

    def export_state(self, state: dict, export: Path) -> dict:
        """The run's gathered weights as an ordinary model's (adapters merged); with
        finetune.export_adapters also writes export/adapter."""
        spec = self.cfg.finetune.lora
        if spec is None:
            return state

        plain = SoundTransformer(self.cfg.stage_model)
        wrapped = add_lora(plain, spec)
        plain.load_state_dict(state)
        if self.cfg.finetune.export_adapters:
            rows = {r: plain.text.embed.weight[r] for r in self.rows}
            save_adapter(export / "adapter", wrapped, spec, rows, self.origin, self.genres)
        return {k: v.detach().clone() for k, v in wrapped.merge_and_unload().state_dict().items()}
