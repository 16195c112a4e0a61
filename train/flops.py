"""Model FLOPs utilisation: the FLOPs a training step of the SoundTransformer needs, counted from
its config and the batch's shape, against the device's peak.

Counted as model FLOPs (what the maths needs, a multiply-add = 2): forward = every matmul of the
layers per step, self-attention over the causal prefix only (sum over steps of 4 D (t + 1)),
cross-attention over the lyric slots (4 D L per step), the memory's keys/values and projection
once per sequence, and the output heads once per prediction (delay: C per step, flatten: 1).
Backward is twice the forward. Activation checkpointing's recompute is not counted, as MFU
does not count it: it is the work the hardware did, not the work the model needs.
"""
from __future__ import annotations
from autosong.model import patterns

# Dense bf16 tensor-core peak, FLOP/s, by a name fragment of torch.cuda.get_device_name()
# (vendor datasheets; the SXM parts, the PCIe H100 apart). The first fragment found wins.
PEAK_BF16 = (("H100 PCIe", 756e12), ("H100", 989e12), ("H200", 989e12), ("GH200", 989e12), ("B200", 2250e12),
             ("A100", 312e12), ("L40S", 362e12), ("L4", 121e12), ("A10", 125e12), ("4090", 165e12))


def forward_flops(m, steps: int, text_len: int) -> float:
    """FLOPs of one forward pass of a ModelConfig `m` over one sequence of `steps` pattern steps
    reading `text_len` lyric slots (the genre slot included)."""
    return matmul_flops(m, steps, text_len) + attention_flops(m, steps, text_len)


def matmul_flops(m, steps: int, text_len: int) -> float:
    """The weights' matmuls: per step each layer's projections and MLP, and the output heads once
    per prediction (delay: C per step, flatten: 1); per sequence the memory's projection and
    each layer's cross-attention keys/values."""
    D, F, S, L, V = m.d_model, m.d_ff, steps, text_len, m.codebook_size
    predictions = len(patterns.get(m.pattern, m.num_codebooks, V).slots(0, 2))
    per_step = 2 * (3 * D * D + D * D) + 2 * (D * D + D * D) + 2 * 2 * D * F  # self, cross, MLP
    memory = m.n_layers * 2 * L * 2 * D * D + 2 * L * D * (D + m.bert_dim)
    heads = S * predictions * 2 * (D * V + m.lora_rank * (D + V))
    return m.n_layers * S * per_step + memory + heads


def attention_flops(m, steps: int, text_len: int) -> float:
    """Scores and weighted values: self-attention over each step's causal prefix, cross-attention
    over every lyric slot."""
    D, S, L = m.d_model, steps, text_len
    return m.n_layers * (4 * D * S * (S + 1) / 2 + 4 * D * S * L)


def train_flops(m, steps: int, text_len: int, batch: int) -> float:
    """A training micro-batch: forward and backward (twice the forward) of `batch` sequences."""
    return 3 * batch * forward_flops(m, steps, text_len)


def peak_flops(device, bf16: bool) -> float | None:
    """The device's dense bf16 peak in FLOP/s, or None where MFU is not reported (a CPU, an fp32
    run, a GPU missing from PEAK_BF16)."""
    import torch

    if device.type != "cuda" or not bf16:
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak for fragment, peak in PEAK_BF16 if fragment in name), None)
