"""The output head at the base preset's sizes: per-codebook LoRA as two matmuls versus the old
form that gathered each position's own LoRA weights (U_c [D, r], V_c [V, r] copied per position).

Measured on one batch of flatten steps (codebooks alternating, as in training): bytes autograd
keeps for the backward pass (`saved_tensors_hooks`, exact) and the wall time of forward + backward
of the whole head (shared projection + LoRA). Both forms give the same logits (checked here and in
tests/model/test_transformer.py).

Usage: python bench/head.py [--positions 4000] [--repeats 5]
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def gathered_lora(model, h, cb):
    """The old form: each position's own U_c, V_c gathered ([B, S, P, D, r] and [B, S, P, V, r])."""
    import torch

    u, v = model.lora_u[cb], model.lora_v[cb]
    return torch.einsum("bspr,bspvr->bspv", torch.einsum("bspd,bspdr->bspr", h, u), v)


def measure(model, h, cb, lora, repeats: int) -> dict:
    import torch

    saved = []

    def pack(t):
        saved.append(t.numel() * t.element_size())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = model.out_shared(h) + lora(model, h, cb)
    head_bytes = sum(saved)
    del out
    times = []
    for _ in range(repeats + 1):
        t0 = time.perf_counter()
        (model.out_shared(h) + lora(model, h, cb)).sum().backward()
        times.append(time.perf_counter() - t0)
        model.zero_grad(set_to_none=True)
        h.grad = None
    return {"saved_MB": head_bytes / 2**20, "fwd_bwd_s": sorted(times[1:])[len(times[1:]) // 2]}


def main() -> None:
    import torch

    from autosong.model.model_config import ModelConfig
    from autosong.model.transformer import SoundTransformer

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--positions", type=int, default=4000)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--out", default=str(ROOT / "bench/results/head.json"))
    args = p.parse_args()
    torch.manual_seed(0)
    # base sizes; 1 layer: only the head is measured
    model = SoundTransformer(ModelConfig(d_model=1024, n_layers=1, n_heads=16, d_ff=4096, lora_rank=32,
                                         max_frames=27000, max_tokens=18000))
    torch.nn.init.normal_(model.lora_v, std=0.02)
    S = args.positions
    h = torch.randn(1, S, 1, 1024, requires_grad=True)
    cb = (torch.arange(S) % 2)[None, :, None]
    with torch.no_grad():
        same = torch.allclose(model._lora(h, cb), gathered_lora(model, h, cb), atol=1e-4)
    rows = {"gathered (old)": measure(model, h, cb, gathered_lora, args.repeats),
            "per-codebook matmuls": measure(model, h, cb, lambda m, x, c: m._lora(x, c), args.repeats)}
    print(f"head at d_model 1024, LoRA rank 32, V 1024, {S} positions, {torch.get_num_threads()} threads; "
          f"same logits: {same}")
    print(f"{'form':22} {'saved MB':>9} {'fwd+bwd s':>10}")
    for name, r in rows.items():
        print(f"{name:22} {r['saved_MB']:9.0f} {r['fwd_bwd_s']:10.3f}")
    old, new = rows["gathered (old)"], rows["per-codebook matmuls"]
    print(f"new / old: memory x{new['saved_MB'] / old['saved_MB']:.3f}, time x{new['fwd_bwd_s'] / old['fwd_bwd_s']:.3f}")
    Path(args.out).write_text(json.dumps({"positions": S, "same_logits": same, "rows": rows,
                                          "threads": torch.get_num_threads()}, indent=2))


if __name__ == "__main__":
    main()
