"""`autosong train` (= `python -m autosong.train`, = `deepspeed --module autosong.train ...` on a cluster)."""
from __future__ import annotations

import argparse

from autosong.command_line import HelpFormatter, add_threads_argument, check_writable_dir, run_cli, whole
from autosong.model.stages import STAGES
from autosong.model.threads import use_threads
from autosong.train.config import DEFAULT_PRESET, RunConfig, apply_overrides, config_from_base, load_config
from autosong.train.trainer import saved_run_config, train


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="autosong train", description=__doc__, formatter_class=HelpFormatter,
        epilog="Any config field can be overridden: --model.n_layers 12 --train.lr_max 1e-3")
    p.add_argument("--data", required=True, help="OUT of `autosong pipeline build`")
    p.add_argument("--config", default=None, help="preset YAML (configs/model/*.yaml; default tiny.yaml, or with "
                   "--init-from the base's own model section)")
    p.add_argument("--deepspeed", default="configs/deepspeed/zero1.json", help="DeepSpeed JSON (configs/deepspeed/)")
    p.add_argument("--run", required=True, help="run directory: checkpoints, metrics, export")
    p.add_argument("--steps", type=whole(1), default=None, help="= --train.steps")
    p.add_argument("--stage", default=None, choices=tuple(STAGES),
                   help="what to train (default: the config's stage, else sound)")
    p.add_argument("--resume", action="store_true",
                   help="continue from the run's latest checkpoint, with the run's saved config (+ overrides given here)")
    p.add_argument("--stop-at", type=whole(1), default=None,
                   help="checkpoint and stop at this step, keeping the --steps schedule (for time-limited jobs)")
    p.add_argument("--skip-memory-check", action="store_true",
                   help="train even when the estimated memory of a step exceeds what the device has")
    p.add_argument("--verify-data", action="store_true", help="check every sample's codes against the hash "
                   "the build recorded (= --train.verify_data true; a code outside the codebook is always refused)")
    p.add_argument("--init-from", default=None, metavar="RUN_OR_EXPORT",
                   help="start from a trained model's weights (= --finetune.init_from; the same codec, lyrics "
                        "front-end and model shape; its genre slots kept, new genres get new rows)")
    p.add_argument("--adapters", choices=("none", "lora"), default=None,
                   help="with --init-from: lora trains low-rank adapters (peft) and new genres' rows only "
                        "(= --finetune.adapters; rank: --finetune.lora_rank)")
    p.add_argument("--export-adapters", action="store_true",
                   help="also write RUN/export/adapter, the adapter alone (= --finetune.export_adapters true)")
    add_threads_argument(p)
    p.add_argument("--local_rank", "--local-rank", type=int, default=None, help=argparse.SUPPRESS)  # deepspeed launcher
    return p


def run(argv) -> int:
    args, overrides = parser().parse_known_args(argv)
    use_threads(args.threads)
    if args.steps is not None:
        overrides += ["--train.steps", str(args.steps)]
    if args.verify_data:
        overrides += ["--train.verify_data", "true"]
    if args.init_from:
        overrides += ["--finetune.init_from", args.init_from]
    if args.adapters:
        overrides += ["--finetune.adapters", args.adapters]
    if args.export_adapters:
        overrides += ["--finetune.export_adapters", "true"]
    if args.resume:
        cfg = apply_overrides(saved_run_config(args.run), overrides)
    elif args.init_from and args.config is None:  # the base's own model section
        cfg = config_from_base(args.init_from, overrides)
    else:
        cfg = load_config(args.config or DEFAULT_PRESET, overrides)
    if args.stage:
        cfg = RunConfig.from_dict({**cfg.to_dict(), "stage": args.stage})
    check_writable_dir(args.run)  # one line now, not after DeepSpeed has started
    result = train(args.data, cfg, args.run, args.deepspeed, resume=args.resume, stop_at=args.stop_at,
                   check_memory=not args.skip_memory_check)
    import torch.distributed as dist

    if dist.get_rank() == 0:
        done = "exported {}/export".format(result.run) if result.steps == cfg.train.steps else \
            f"stopped at step {result.steps} of {cfg.train.steps}; continue with --resume"
        print(f"trained {result.steps} steps, last loss {result.last_loss:.4f}; {done}")
    dist.barrier()
    dist.destroy_process_group()
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_cli(run, argv)
