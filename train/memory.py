"""Before a run starts: the memory one training step of a config needs, estimated, against what
the device has, so that a preset too big for the machine is one line with the fix instead of the
kernel killing the process at step 1 with no message.

The estimate is plain and errs high. Optimizer state: fp32 weights, gradients and Adam's two
moments (16 bytes per parameter, 20 with a bf16 model's fp32 master copy); a LoRA fine-tune
keeps that for its adapters only, and the frozen weights at 4 (fp32) or 2 (bf16) bytes each. Activations, per
layer: the residual stream and MLP (B x S x (12 D + 2 F)), and cross-attention's scores,
probabilities and prior bias (B x H x S x L, three times; none when FlexAttention computes the
prior on a GPU), where S is the pattern's steps per window and L the longest lyrics in the data. Self-attention's B x H x S x S scores count only
where they are materialised: on a CPU with attention dropout, where PyTorch leaves its fused
kernel for the math path (twice: scores and probabilities). With activation checkpointing only
each recomputed layer's input is kept (every layer's, or every k-th's with recompute_every k),
plus one layer recomputed during backward and its gradients.
Measured on the 2-core CPU (tiny, flatten, 6,000-token windows, micro-batch 2, peak RSS of one
step): 1.08 GB without dropout (estimated 2.5), 8.94 GB with dropout 0.1 (estimated 9.4). `small`
with the flattened order, as shipped before (dropout 0.1), was killed at step 1 on 24 GB; this
estimate puts it at 48 GB, and at 6 GB with --model.dropout 0.
"""
from __future__ import annotations

import os
from autosong.manifests.errors import AutoSongError
from autosong.model import patterns
from autosong.model.transformer import SoundTransformer

OVERHEAD = 1.5e9  # Python, torch, DeepSpeed and the data loader, measured at ~1.2 GB on the tiny preset


def training_step_bytes(cfg, text_len: int, device_type: str = "cpu") -> float:
    """Estimated peak bytes of one training step of `cfg` (a RunConfig, stage sound or latent)
    on a device of `device_type` (cpu | cuda)."""
    import torch

    m, t = cfg.model, cfg.train
    with torch.device("meta"):
        params = sum(p.numel() for p in SoundTransformer(m).parameters())
    bf16 = t.precision == "bf16" or (t.precision == "auto" and device_type == "cuda")
    element = 2 if bf16 else 4
    trained = lora_parameters(m, cfg.finetune.lora) if cfg.finetune.lora else params
    states = (params - trained) * element + trained * (20 if bf16 else 16)  # frozen weights keep no optimizer state
    S = patterns.get(m.pattern, m.num_codebooks, m.codebook_size).steps(m.window_frames)
    B, D, F, H, L = t.micro_batch, m.d_model, m.d_ff, m.n_heads, max(1, text_len)
    materialised = device_type == "cpu" and m.dropout > 0  # the fused kernels take no dropout on a CPU
    # cross-attention's scores, probabilities and dense prior bias; FlexAttention (a CUDA run's
    # prior, model.prior_kernel auto or flex) keeps none of them
    fused_cross = device_type == "cuda" and m.cross_align == "prior" and m.prior_kernel != "dense"
    layer = B * element * (S * (12 * D + 2 * F) + (2 * H * S * S if materialised else 0)
                           + (0 if fused_cross else 3 * H * S * L))
    if m.activation_checkpointing:  # every k-th layer keeps its input only, the others everything
        recomputed = -(-m.n_layers // m.recompute_every)
        activations = recomputed * B * S * D * element + (m.n_layers - recomputed) * layer + 2 * layer
    else:
        activations = m.n_layers * layer + layer  # and the backward's gradients of the last one
    logits = 2 * B * S * m.num_codebooks * m.codebook_size * 4
    return states + activations + logits + OVERHEAD


def lora_parameters(m, spec) -> int:
    """The weights a LoRA fine-tune of ModelConfig `m` trains: r (in + out) per adapted projection
    per layer, and the whole modules it trains in full (a trainable copy of each)."""
    D, F = m.d_model, m.d_ff
    shapes = {"self_attn.qkv": (D, 3 * D), "self_attn.out": (D, D), "cross_attn.q": (D, D),
              "cross_attn.kv": (D, 2 * D), "cross_attn.out": (D, D), "mlp.fc": (D, F), "mlp.proj": (F, D)}
    whole = {"token_embed": m.num_codebooks * (m.codebook_size + 1) * D, "out_shared": m.codebook_size * D}
    return (m.n_layers * sum(spec.rank * sum(shapes[name]) for name in spec.modules)
            + sum(whole[name] for name in spec.whole))


def available_bytes(device) -> float | None:
    """Memory a run may use: free GPU memory, or the machine's available RAM (None if unknown)."""
    import torch

    if device.type == "cuda":
        return float(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return float(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError):
        return None


def refuse_if_too_big(cfg, text_len: int, available: float | None, where: str, device_type: str = "cpu") -> None:
    """One line with the fix when the estimate exceeds `available` bytes."""
    need = training_step_bytes(cfg, text_len, device_type)
    if available is None or need <= available:
        return
    m, t = cfg.model, cfg.train
    raise AutoSongError(
        f"this config needs about {need / 1e9:.0f} GB for one training step (estimated: model.max_tokens "
        f"{m.max_tokens}, train.micro_batch {t.micro_batch}, the {m.pattern} pattern, {m.n_layers} layers) but "
        f"{where} has {available / 1e9:.0f} GB available. "
        + ("On a CPU, attention dropout makes every layer hold its S x S scores: --model.dropout 0 avoids "
           "that. " if device_type == "cpu" and m.dropout > 0 else "")
        + f"Lower --model.max_tokens (e.g. "
        f"{max(m.num_codebooks * 75, m.max_tokens // 4)}) or --train.micro_batch, use a smaller preset "
        f"(configs/model/tiny.yaml), or run on a GPU; --skip-memory-check trains anyway")


def refuse_if_too_big_for(cfg, data) -> None:
    """The check a run makes before it starts, on this process's device and the longest lyrics of
    `data` (an open manifests.dataset.Dataset)."""
    import torch

    device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0))) if torch.cuda.is_available() \
        else torch.device("cpu")
    refuse_if_too_big(cfg, data.max_text_len(), available_bytes(device),
                      f"GPU {device.index}" if device.type == "cuda" else "this machine", device.type)
