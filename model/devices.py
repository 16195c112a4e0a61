"""Where inference runs: `--device auto|cpu|cuda[:N]` and `--dtype auto|fp32|bf16|fp16`.

auto picks the first CUDA GPU when one is visible, else the CPU; the auto dtype is bf16 on a GPU
that supports it (fp16 on one that does not) and fp32 on the CPU, where half precision is slower.
Asking for a GPU that is not there is one line, not a CUDA traceback. torch is imported where it is
used. The flags themselves are autosong/command_line.add_device_arguments.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from autosong.manifests.errors import AutoSongError

if TYPE_CHECKING:
    import torch

DEVICES = "auto, cpu, cuda, cuda:N"
DTYPES = ("fp32", "bf16", "fp16")


def resolve_device(name: str = "auto") -> "torch.device":
    import torch

    name = (name or "auto").strip().lower()
    if name == "auto":
        return torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise AutoSongError(f"--device {name}: no CUDA GPU is visible to this torch "
                                f"({torch.__version__}); use --device cpu (or auto)")
        index = 0 if name == "cuda" else name.split(":", 1)[1]
        if not str(index).isdigit() or int(index) >= torch.cuda.device_count():
            raise AutoSongError(f"--device {name}: this machine has {torch.cuda.device_count()} GPU(s), "
                                f"cuda:0 to cuda:{torch.cuda.device_count() - 1}")
        return torch.device("cuda", int(index))
    raise AutoSongError(f"--device {name!r}: expected one of {DEVICES}")


def resolve_dtype(name: str, device: "torch.device") -> "torch.dtype":
    import torch

    name = (name or "auto").strip().lower()
    if name == "auto":
        if device.type != "cuda":
            return torch.float32
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if name not in DTYPES:
        raise AutoSongError(f"--dtype {name!r}: expected auto, {', '.join(DTYPES)}")
    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[name]
