"""Run configuration: a YAML preset (configs/model/*.yaml) with `model:` and `train:` sections,
single fields overridden on the command line (`--model.n_layers 12 --train.lr_max 1e-3`), and the
dataset's facts (codebooks, vocabulary, BERT width) filled in from dataset.json."""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

from autosong.manifests.errors import AutoSongError
from autosong.model.autoencoders import AEConfig
from autosong.model.config_checks import check_ranges, ranged
from autosong.model.model_config import ModelConfig
from autosong.model.stages import stage_named
from autosong.train.finetune import FinetuneConfig, base_model_section

@dataclass
class TrainConfig:
    steps: int = ranged(1000, low=1)
    micro_batch: int = ranged(4, low=1)  # songs (windows) per rank per micro-batch
    grad_accum: int = ranged(1, low=1)
    lr_max: float = ranged(3e-4, low=0, above=True)
    lr_min: float = ranged(3e-5, low=0)
    warmup_steps: int = ranged(100, low=0)
    weight_decay: float = ranged(0.1, low=0)
    betas: tuple[float, float] = ranged((0.9, 0.95), low=0, high=0.9999, each=True)
    grad_clip: float = ranged(1.0, low=0)
    precision: str = "auto"         # auto (bf16 where supported, else fp32) | bf16 | fp32
    log_every: int = ranged(10, low=1)
    ckpt_every: int = ranged(500, low=1)
    seed: int = ranged(0, low=0)
    num_workers: int = ranged(0, low=0)  # DataLoader workers per rank
    bucket_songs: int = ranged(32, low=1)  # windows buffered for length bucketing
    max_bad_steps: int = ranged(5, low=1)  # non-finite losses in a row before the run stops
    deterministic: bool = False     # torch deterministic kernels: bitwise-repeatable runs, a little slower
    verify_data: bool = False       # hash each sample's codes against the build's record (--verify-data)

    def __post_init__(self):
        check_ranges(self, "train")
        self.betas = tuple(self.betas)
        if self.lr_min > self.lr_max:  # the cosine would climb from lr_max to lr_min
            raise ValueError(f"train.lr_min {self.lr_min:g} is above train.lr_max {self.lr_max:g}: set both "
                             f"(e.g. --train.lr_max {self.lr_max:g} --train.lr_min {self.lr_max / 10:g})")


@dataclass
class RunConfig:
    """`stage`: sound (the SoundTransformer over EnCodec tokens), gumbel_ae | vqvae (stage-1
    autoencoders, `ae` section), latent (the SoundTransformer over an autoencoder's codes);
    model/stages.py says what each one means."""

    stage: str = "sound"
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    ae: AEConfig = field(default_factory=AEConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)  # --init-from: train/finetune.py

    def __post_init__(self):
        stage_named(self.stage).configure(self)

    @property
    def stage_kind(self):
        """The stage object (model/stages.py)."""
        return stage_named(self.stage)

    @property
    def stage_model(self):
        """The config section of the model this stage trains (`model` or `ae`)."""
        return getattr(self, self.stage_kind.section)

    def to_dict(self) -> dict:
        return {"stage": self.stage, "model": asdict(self.model), "train": asdict(self.train), "ae": asdict(self.ae),
                "finetune": asdict(self.finetune)}

    @classmethod
    def from_dict(cls, d: dict) -> "RunConfig":
        unknown = set(d) - {"stage", "model", "train", "ae", "finetune"}
        if unknown:
            raise AutoSongError(f"unknown config section(s) {sorted(unknown)}; known: stage, model, train, ae, finetune")
        try:
            return cls(stage=d.get("stage", "sound"), model=_make(ModelConfig, d.get("model", {}), "model"),
                       train=_make(TrainConfig, d.get("train", {}), "train"), ae=_make(AEConfig, d.get("ae", {}), "ae"),
                       finetune=_make(FinetuneConfig, d.get("finetune", {}), "finetune"))
        except ValueError as err:
            raise AutoSongError(str(err)) from None


def _make(cls, values: dict, section: str):
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(values) - names
    if unknown:
        raise AutoSongError(f"unknown {section} field(s) {sorted(unknown)}; known: {sorted(names)}")
    return cls(**values)


def _parse_value(raw: str, current):
    if isinstance(current, bool):
        if raw.lower() in ("true", "1", "yes", "on"):
            return True
        if raw.lower() in ("false", "0", "no", "off"):
            return False
        raise AutoSongError(f"expected true/false, got {raw!r}")
    if isinstance(current, (tuple, list)):
        return type(current)(json.loads(raw))
    if isinstance(current, int):
        value = float(raw)
        if not math.isfinite(value) or not value.is_integer():
            raise ValueError("expected a whole number")
        return int(value)
    if isinstance(current, float):
        value = float(raw)
        if not math.isfinite(value):
            raise ValueError("expected a finite number")
        return value
    return raw


def apply_overrides(cfg: RunConfig, overrides: list[str]) -> RunConfig:
    """`["--model.n_layers", "12", "--train.lr_max=1e-3"]` -> fields replaced, types kept."""
    d = cfg.to_dict()
    i = 0
    while i < len(overrides):
        arg = overrides[i]
        if not arg.startswith("--") or "." not in arg:
            raise AutoSongError(f"unexpected argument {arg!r}: overrides look like --model.n_layers 12")
        if "=" in arg:
            name, raw = arg[2:].split("=", 1)
            i += 1
        else:
            if i + 1 >= len(overrides):
                raise AutoSongError(f"{arg} needs a value")
            name, raw = arg[2:], overrides[i + 1]
            i += 2
        section, _, key = name.partition(".")
        if section not in ("model", "train", "ae", "finetune") or key not in d[section]:
            raise AutoSongError(f"unknown field {name!r}; sections: model.*, train.*, ae.*, finetune.*")
        try:
            d[section][key] = _parse_value(raw, d[section][key])
        except ValueError as err:
            raise AutoSongError(f"--{name} {raw!r}: {err}") from None
    return RunConfig.from_dict(d)


PROJECT = Path(__file__).resolve().parents[1]  # the checkout that holds configs/


def preset_path(path: str | Path) -> Path:
    """`path` as given, or, when a relative path is not there, the same path in the AutoSong
    checkout (so `--config configs/model/tiny.yaml` and the defaults work from any folder)."""
    path = Path(path)
    if not path.exists() and not path.is_absolute() and (PROJECT / path).exists():
        return PROJECT / path
    return path


def load_config(path: str | Path | None, overrides: list[str] = ()) -> RunConfig:
    cfg = RunConfig()
    if path:
        path = preset_path(path)
        if not path.is_file():
            raise AutoSongError(f"config {path} not found (presets: configs/model/tiny.yaml, small.yaml, base.yaml)")
        data = yaml.safe_load(path.read_text()) or {}
        cfg = RunConfig.from_dict(data)
    return apply_overrides(cfg, list(overrides))


DEFAULT_PRESET = "configs/model/tiny.yaml"
FINETUNE_PRESET = "configs/finetune.yaml"  # a fine-tune's train section: a tenth of the tiny preset's rates


def config_from_base(init_from: str, overrides: list[str] = ()) -> RunConfig:
    """A fine-tune's config with no --config: the base's stage and model section, the fine-tune
    preset's train section (configs/finetune.yaml), then the overrides (train/finetune.py checks
    the shape again)."""
    stage, model = base_model_section(init_from)
    d = load_config(FINETUNE_PRESET).to_dict()
    d.update(stage=stage, model=model)
    d["finetune"]["init_from"] = str(init_from)
    return apply_overrides(RunConfig.from_dict(d), list(overrides))
