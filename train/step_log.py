"""What a logged training step reports, gathered without a host round trip per step: the loss and
per-codebook CE stay on the device until a log step reads them (one all-reduce over every rank),
and throughput counts the target tokens and model FLOPs (train/flops.py) since the last log,
over the seconds they took with checkpoint writes left out."""
from __future__ import annotations

import time
from contextlib import contextmanager

import torch


class LogWindow:
    """The steps since the last logged one: tokens (on the device), model FLOPs (counted on the
    host from the batches' shapes) and their seconds, checkpoint writes excluded (`paused`)."""

    def __init__(self, device):
        self.device = device
        self.restart()

    def restart(self) -> None:
        self.tokens = torch.zeros((), dtype=torch.float64, device=self.device)
        self.flops, self.started, self.paused = 0.0, time.perf_counter(), 0.0

    def add(self, tokens: torch.Tensor, flops: float) -> None:
        self.tokens += tokens.double()
        self.flops += flops

    @contextmanager
    def paused_for(self):
        """Time spent in here (a checkpoint write) is not training time."""
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.paused += time.perf_counter() - t0

    def seconds(self) -> float:
        return max(time.perf_counter() - self.started - self.paused, 1e-9)


def reduce_step(loss: torch.Tensor, cb_sum: torch.Tensor, cb_n: torch.Tensor, window: LogWindow) -> torch.Tensor:
    """Every rank calls it on a log step: [CE sums (C), counts (C), tokens, FLOPs, loss] summed
    over the ranks, read to the host once."""
    import torch.distributed as dist

    stats = torch.cat([cb_sum.double(), cb_n.double(), window.tokens.view(1),
                       torch.tensor([window.flops], dtype=torch.float64, device=window.device),
                       loss.detach().double().view(1)])
    dist.all_reduce(stats)
    return stats.cpu()


def step_row(step: int, stats: torch.Tensor, seconds: float, world: int, peak: float | None, lr: float,
             grad_norm) -> dict:
    """metrics.jsonl's row from reduce_step's sums: the loss (mean over ranks), CE per codebook,
    tokens_per_s (all ranks) and per rank, MFU (where the device's peak is known)."""
    C = (len(stats) - 3) // 2
    ce = (stats[:C] / stats[C : 2 * C].clamp(min=1)).tolist()
    tokens, flops, loss = stats[2 * C].item(), stats[2 * C + 1].item(), stats[2 * C + 2].item() / world
    return {"step": step, "loss": loss, **{f"ce_q{c}": ce[c] for c in range(C)}, "lr": lr,
            "tokens_per_s": tokens / seconds, "tokens_per_s_rank": tokens / seconds / world,
            "mfu": flops / seconds / (world * peak) if peak and flops else None,
            "grad_norm": float(grad_norm) if grad_norm is not None else None}

