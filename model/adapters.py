"""LoRA adapters on the SoundTransformer, through peft: which projections take them, putting them
on a model, merging them into ordinary weights, and an adapter saved alone (a few MB) loaded back
onto the base bundle it was trained from.

An adapter folder holds peft's `adapter_model.safetensors` and `adapter_config.json`, the rows
of the lyric embedding that a fine-tune trained (new genres' rows) in `embedding_rows.safetensors`,
and `base.json`: the base's weights hash and step, checked when the adapter is loaded.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from autosong.manifests import file_sha256
from autosong.manifests.errors import AutoSongError

# The projections of each decoder layer that can take an adapter (module paths inside a layer).
PROJECTIONS = ("self_attn.qkv", "self_attn.out", "cross_attn.q", "cross_attn.kv", "cross_attn.out", "mlp.fc", "mlp.proj")


# Whole modules a LoRA fine-tune may also train in full (peft's modules_to_save): the audio-token
# embedding and the shared output head. Codes the base rarely produced (a new genre's timbre) have
# rows there the base never trained, which no adapter on the layers can reach.
WHOLE_MODULES = ("token_embed", "out_shared")


@dataclass
class LoraSpec:
    rank: int = 8
    alpha: float = 16.0
    modules: tuple[str, ...] = PROJECTIONS
    whole: tuple[str, ...] = WHOLE_MODULES  # trained in full beside the adapters

    def peft_config(self):
        from peft import LoraConfig

        unknown = [m for m in self.modules if m not in PROJECTIONS]
        if unknown:
            raise AutoSongError(f"finetune.lora_modules: {unknown} are not projections of a layer; "
                                f"choose from {list(PROJECTIONS)}")
        unknown = [m for m in self.whole if m not in WHOLE_MODULES]
        if unknown:
            raise AutoSongError(f"finetune.lora_whole: {unknown}; choose from {list(WHOLE_MODULES)} (or none: [])")
        pattern = r"layers\.\d+\.(" + "|".join(m.replace(".", r"\.") for m in self.modules) + ")"
        return LoraConfig(r=self.rank, lora_alpha=self.alpha, target_modules=pattern, lora_dropout=0.0, bias="none",
                          modules_to_save=list(self.whole) or None)


def add_lora(model: torch.nn.Module, spec: LoraSpec):
    """Put LoRA adapters on `model`'s projections, in place (the model keeps its class and
    methods); only the adapters are left trainable. Returns peft's wrapper (for merging and
    saving)."""
    from peft import get_peft_model

    return get_peft_model(model, spec.peft_config())


def save_adapter(directory: Path, wrapped, spec: LoraSpec, rows: dict[int, torch.Tensor], origin: dict,
                 genres: list[str]) -> None:
    """The adapter alone: peft's weights and config, the trained embedding rows, the base it fits
    and the genre slots it was trained with (the base's, plus new ones)."""
    from dataclasses import asdict

    from peft import get_peft_model_state_dict
    from safetensors.torch import save_file

    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().float().cpu().contiguous() for k, v in get_peft_model_state_dict(wrapped).items()}
    save_file(state, str(directory / "adapter_model.safetensors"))
    (directory / "adapter_config.json").write_text(json.dumps(asdict(spec), indent=2))
    save_file({str(i): r.detach().float().cpu().contiguous() for i, r in rows.items()},
              str(directory / "embedding_rows.safetensors"))
    (directory / "base.json").write_text(json.dumps({**origin, "genres": genres}, indent=2, ensure_ascii=False))


def load_adapter_onto(model: torch.nn.Module, base_weights: Path, directory: Path):
    """(`model` with the adapter in `directory` merged in, the adapter's genre slots, its origin):
    `model` is the base bundle's, fp32. Refused in one line when the adapter was trained on
    another base or the folder is not an adapter."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    files = ("base.json", "adapter_config.json", "adapter_model.safetensors", "embedding_rows.safetensors")
    missing = [f for f in files if not (directory / f).is_file()]
    if missing:
        raise AutoSongError(f"--adapter {directory}: not an adapter folder (no {', '.join(missing)}); it is "
                            f"RUN/export/adapter of a run trained with --adapters lora --export-adapters")
    meta = json.loads((directory / "base.json").read_text())
    if file_sha256(base_weights) != meta["weights_sha256"]:
        raise AutoSongError(f"the adapter {directory} was trained on another base ({meta['path']}, step {meta['step']}): "
                            f"load it onto that bundle")
    spec_dict = json.loads((directory / "adapter_config.json").read_text())
    spec = LoraSpec(spec_dict["rank"], spec_dict["alpha"], tuple(spec_dict["modules"]), tuple(spec_dict["whole"]))
    with torch.no_grad():
        for i, row in load_file(str(directory / "embedding_rows.safetensors")).items():
            model.text.embed.weight[int(i)] = row
    wrapped = add_lora(model, spec)
    set_peft_model_state_dict(wrapped, load_file(str(directory / "adapter_model.safetensors")))
    origin = {k: v for k, v in meta.items() if k != "genres"}
    return wrapped.merge_and_unload(), meta["genres"], origin
