"""The inference bundle: RUN/export/{model.safetensors, config.json}. No pickle anywhere: the
weights are safetensors, the config is JSON (model config, codec identity, text front-end and
vocabulary version, genre vocabulary, training step)."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from autosong.manifests.codec_identity import CodecIdentity
from autosong.manifests.errors import AutoSongError
from autosong.model.adapters import load_adapter_onto
from autosong.model.checkpoint_weights import step_weights
from autosong.model.devices import resolve_dtype
from autosong.model.line_times import AlignmentHeads
from autosong.model.lyrics import VOCAB_VERSION
from autosong.model.stages import stage_named

@dataclass
class Bundle:
    model: torch.nn.Module      # SoundTransformer, or an autoencoder for the gumbel_ae/vqvae stages
    codec: CodecIdentity        # what the model's codes come from (EnCodec, or the autoencoder for latent)
    text: dict
    genres: list[str]
    step: int
    path: Path
    stage: str = "sound"
    parent: dict | None = None  # latent stage: the autoencoder run and the EnCodec identity
    origin: dict | None = None  # a fine-tune: the base it started from (path, step, weights hash, adapters)
    alignment: AlignmentHeads | None = None  # the heads line times are read from (model/line_times.py)
    key_normalised: bool = False  # trained on songs moved to C (pipeline build --key-normalise): sings in C


def save_bundle(directory: Path, state: dict, cfg, codec: CodecIdentity, text: dict, genres: list[str], step: int,
                stage: str = "sound", parent: dict | None = None, origin: dict | None = None,
                key_normalised: bool = False) -> None:
    from safetensors.torch import save_file

    directory.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(directory / "model.safetensors"))
    (directory / "config.json").write_text(json.dumps({
        "stage": stage, "model": cfg.to_dict(), "codec": CodecIdentity.of(codec).to_dict(), "text": text, "vocab_version": VOCAB_VERSION,
        "genres": genres, "step": step, "parent": parent, "origin": origin, "key_normalised": key_normalised},
        indent=2, ensure_ascii=False))


def load_bundle(path: str | Path, device: str | torch.device = "cpu", dtype: torch.dtype | str | None = None,
                adapter: str | Path | None = None, step: int | None = None) -> Bundle:
    """`path`: a run directory (uses RUN/export) or an export directory. The model is moved to
    `device` and, for inference in half precision, cast to `dtype` (a torch dtype, or a name the
    --dtype flag takes: "bf16", "fp16", "auto" ...; default: as saved, fp32). `adapter`: a
    fine-tune's adapter folder (RUN/export/adapter), merged onto this base (model/adapters.py).
    `step`: the weights of the run's checkpoint at that step instead of the export's (model/checkpoint_weights.py)."""
    if isinstance(dtype, str):
        dtype = resolve_dtype(dtype, torch.device(device))
    from safetensors.torch import load_file

    path = Path(path)
    directory = path / "export" if (path / "export" / "config.json").exists() else path
    if not (directory / "config.json").exists():
        raise AutoSongError(f"{path} holds no exported model (expected {path}/export/config.json): "
                            f"train it to the end, or point at RUN/export")
    meta, codec = _read_config(directory)
    if meta.get("vocab_version") != VOCAB_VERSION:
        raise AutoSongError(f"{directory} uses lyrics vocabulary {meta.get('vocab_version')}, this AutoSong {VOCAB_VERSION}")
    stage = meta.get("stage", "sound")
    try:
        kind = stage_named(stage)
        model = kind.build(kind.config_from_dict(meta["model"]))
    except (TypeError, ValueError, AutoSongError) as err:
        raise AutoSongError(f"{directory}/config.json: its model section is not valid ({err})") from None
    weights = directory / "model.safetensors"
    if not weights.is_file():
        raise AutoSongError(f"{weights} is missing: re-export the run, or point --checkpoint at a complete export")
    try:
        state = load_file(str(weights)) if step is None else step_weights(directory.parent, step)
    except Exception as err:  # safetensors raises its own SafetensorError (not an OSError) on a damaged file
        if isinstance(err, AutoSongError):
            raise
        raise AutoSongError(f"{weights} is damaged ({type(err).__name__}: {err}): re-export the run") from None
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as err:
        first = str(err).split("\n")[1].strip() if "\n" in str(err) else str(err)
        raise AutoSongError(f"{weights} does not fit {directory}/config.json ({first})") from None
    if missing or unexpected:
        raise AutoSongError(f"{weights} does not fit its config: missing {missing[:5]}, unexpected {unexpected[:5]}")
    genres, origin = meta["genres"], meta.get("origin")
    if adapter is not None:
        model, genres, origin = load_adapter_onto(model, weights, Path(adapter))
    return Bundle(model.to(device=device, dtype=dtype).eval(), codec, meta["text"], genres,
                  meta["step"] if step is None else step, directory, stage, meta.get("parent"), origin,
                  AlignmentHeads.load(directory) if adapter is None and step is None else None,  # chosen for the export
                  bool(meta.get("key_normalised", False)))


def _read_config(directory: Path) -> tuple[dict, CodecIdentity]:
    """An export's config.json and its codec identity, refused in one line when it is damaged."""
    try:
        meta = json.loads((directory / "config.json").read_text())
        if not isinstance(meta, dict):
            raise ValueError("not a JSON object")
        absent = [k for k in ("model", "codec", "text", "genres", "step") if k not in meta]
        if absent:
            raise ValueError(f"no {', '.join(repr(k) for k in absent)}")
        if not (isinstance(meta["genres"], list) and meta["genres"] and all(isinstance(g, str) for g in meta["genres"])):
            raise ValueError("'genres' is not a list of genre names")
        try:
            codec = CodecIdentity.of(meta["codec"])
        except (KeyError, TypeError):
            raise ValueError("'codec' is not a codec identity (source, config_sha256, weights_sha256)") from None
    except (ValueError, UnicodeDecodeError) as err:
        raise AutoSongError(f"{directory}/config.json is damaged ({err}): re-export the run "
                            f"(train it again to its last step, or copy the export from where it was made)") from None
    return meta, codec


def ae_identity(bundle: Bundle) -> CodecIdentity:
    """An autoencoder run as a 'codec' for the latent dataset: its source and hashes."""
    import hashlib

    cfg = json.dumps(json.loads((bundle.path / "config.json").read_text())["model"], sort_keys=True)
    weights = hashlib.sha256((bundle.path / "model.safetensors").read_bytes()).hexdigest()
    return CodecIdentity(f"ae:{bundle.path.resolve()}", hashlib.sha256(cfg.encode()).hexdigest(), weights)
