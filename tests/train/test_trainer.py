import json
import shutil
import sys

import pytest
import torch

from tests.conftest import ROOT, TINY, read_metrics, train_cli


def test_stream_gives_each_rank_disjoint_songs(small_data):
    from autosong.manifests import read_manifest
    from autosong.train.data import ShardStream, StreamConfig

    train_keys = {r["key"] for r in read_manifest(small_data, "samples") if r["split"] == "train"}
    seen = []
    for rank in range(2):
        stream = iter(ShardStream(StreamConfig(str(small_data), micro_batch=1, window_frames=150, rank=rank,
                                               world_size=2, bucket_songs=1)))
        seen.append({next(stream).keys[0] for _ in range(len(train_keys) // 2)})
    assert not seen[0] & seen[1] and seen[0] | seen[1] == train_keys
    lines = next(iter(ShardStream(StreamConfig(str(small_data), micro_batch=2, window_frames=150))))
    assert lines.line_frames.shape == lines.line_slots.shape  # the synth songs' lyrics.lrc, padded
    assert (lines.line_slots >= 0).sum(1).min() >= 2 and lines.line_frames[:, 0].eq(0).all()


@pytest.mark.parametrize("rank,world", [(0, 1), (1, 2)])
def test_a_resumed_stream_finds_its_place_without_reading_what_it_skips(rank, world, small_data):
    """Skipping N batches gives the batch a fresh stream gives N-th, across buffers and epochs,
    and loads at most one buffer of songs whatever N is."""
    from dataclasses import replace

    from autosong.train.data import ShardStream, StreamConfig

    cfg = StreamConfig(str(small_data), micro_batch=2, window_frames=100, max_frames=300, bucket_songs=4,
                       seed=3, rank=rank, world_size=world)
    fresh = iter(ShardStream(cfg))
    expected = [next(fresh) for _ in range(14)]  # several epochs
    for skip in (1, 2, 3, 4, 7, 13):
        stream = ShardStream(replace(cfg, skip_batches=skip))
        got = next(iter(stream))
        assert got.keys == expected[skip].keys and torch.equal(got.codes, expected[skip].codes)
        assert torch.equal(got.frame_offset, expected[skip].frame_offset)
        assert stream.decoded <= cfg.bucket_songs


def test_a_position_remapped_to_other_readers_keeps_each_at_the_old_epoch_fraction(small_data):
    """A job with other ranks or loader workers than the checkpoint's: every new reader starts at
    the mean progress of the old ones, to within one batch of its own epoch; the same layout
    goes on exactly."""
    from autosong.train.data import ShardStream, StreamConfig
    from autosong.train.resume import DataPosition, rank_skip

    stream = ShardStream(StreamConfig(str(small_data), micro_batch=1, window_frames=100, bucket_songs=2, seed=5))
    saved = DataPosition(step=9, consumed=[23], num_workers=2)  # one rank, two workers: 12 and 11 batches
    assert rank_skip(stream, saved, rank=0, world=1, num_workers=2) == (23, False)
    old = [stream.progress(0, 2, 12), stream.progress(1, 2, 11)]
    assert 3 < min(old)  # past several epochs, so whole-epoch counting is exercised
    for rank in range(2):  # two ranks of one worker: readers 0 and 1 of 2
        skip, remapped = rank_skip(stream, saved, rank=rank, world=2, num_workers=1)
        epoch = int(sum(old) / 2)
        assert remapped and abs(stream.progress(rank, 2, skip) - sum(old) / 2) <= 1 / stream._batches_in_epoch(epoch, rank, 2)
    skip, _ = rank_skip(stream, saved, rank=0, world=1, num_workers=0)  # one reader: every song of the split
    assert abs(stream.progress(0, 1, skip) - sum(old) / 2) <= 1 / stream._batches_in_epoch(epoch, 0, 1)


@pytest.mark.parametrize("pattern", ["flatten", "delay"])
def test_the_counted_flops_are_the_matmuls_torch_counts(pattern):
    """MFU's numerator: train/flops.py's matmul FLOPs of a forward equal what PyTorch's FLOP
    counter sees (it does not count the CPU's attention kernel, which attention_flops adds)."""
    from torch.utils.flop_counter import FlopCounterMode

    from tests.model.test_transformer import batch, tiny
    from autosong.train.flops import matmul_flops

    model = tiny(pattern=pattern, cross_align="prior", lora_rank=0).eval()
    for T in (9, 60):
        codes, lengths, off, ids, mask = batch(B=1, T=T)
        counter = FlopCounterMode(display=False)
        with counter, torch.no_grad():
            model(codes, lengths, off, ids, mask, song_frames=torch.tensor([T]))
        counted = matmul_flops(model.cfg, model.pattern.steps(T), ids.shape[1])
        assert abs(counted - counter.get_total_flops()) <= 0.01 * counted, (counted, counter.get_total_flops())


def test_single_process_zero3_lowers_the_loss_and_exports(small_data, tmp_path):
    run = tmp_path / "run"
    out = train_cli("--data", str(small_data), "--run", str(run), "--deepspeed", "configs/deepspeed/zero3.json",
                    "--steps", "12", *TINY)
    assert out.returncode == 0, out.stderr[-3000:]
    m = read_metrics(run)
    assert [r["step"] for r in m] == list(range(1, 13))
    assert m[-1]["loss"] < m[0]["loss"] - 1.0
    assert {"ce_q0", "ce_q1", "lr", "tokens_per_s", "tokens_per_s_rank", "grad_norm", "mfu"} <= set(m[0])
    assert m[0]["mfu"] is None and m[0]["tokens_per_s_rank"] == m[0]["tokens_per_s"] > 0  # one CPU: no peak to divide by
    assert list((run / "tensorboard").iterdir())
    # stdout is a pipe here, as in a cluster's log: a plain line per logged step, not a silent bar
    assert sum(line.startswith("step ") for line in out.stdout.splitlines()) == 12 and "step 12/12  loss" in out.stdout
    from autosong.model.bundle import load_bundle

    assert load_bundle(run).step == 12  # the ZeRO-3 export gathers every parameter, frozen ones too


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_zero2_with_activation_checkpointing(small_data, tmp_path):
    run = tmp_path / "run"
    launcher = [str(ROOT / ".venv/bin/deepspeed") if (ROOT / ".venv/bin/deepspeed").exists() else "deepspeed",
                "--num_gpus", "2", "--master_port", str(_free_port()), "--module", "train"]
    out = train_cli("--data", str(small_data), "--run", str(run), "--deepspeed", "configs/deepspeed/zero2.json",
                    "--steps", "10", "--model.activation_checkpointing", "true", *TINY, launcher=launcher)
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    m = read_metrics(run)
    assert m[-1]["loss"] < m[0]["loss"] - 1.0
    ckpt = run / "checkpoints" / "step_00000010"
    rng = [torch.load(ckpt / f"rng_rank{r}.pt", weights_only=True)["cpu"] for r in (0, 1)]
    assert not torch.equal(*rng)  # each rank draws its own dropout (the weights start the same)
    position = json.loads((ckpt / "position.json").read_text())
    assert position["world_size"] == 2 and len(position["consumed"]) == 2 and position["step"] == 10
    # ZeRO-2 split the optimizer state in two: one process cannot take it on, and says so
    alone = train_cli("--data", str(small_data), "--run", str(run), "--resume", "--deepspeed",
                      "configs/deepspeed/zero2.json")
    assert alone.returncode == 2 and "Traceback" not in alone.stderr, alone.stderr[-2000:]
    line = alone.stderr.strip().splitlines()[-1]
    assert "saved by 2 rank(s) and this job has 1" in line and "--num_gpus 2" in line, line


def test_killed_and_resumed_run_repeats_the_uninterrupted_one(small_data, tmp_path):
    whole, split = tmp_path / "whole", tmp_path / "split"
    args = ["--data", str(small_data), "--train.ckpt_every", "4", "--model.dropout", "0.1", "--train.deterministic",
            "true", *TINY, "--model.align_source", "timed"]  # deterministic kernels: 2-thread CPU reductions
    # otherwise vary run to run; the prior follows the synth songs' lyrics.lrc line times
    assert train_cli(*args, "--run", str(whole), "--steps", "8").returncode == 0
    first = train_cli(*args, "--run", str(split), "--steps", "8", "--stop-at", "4")
    assert first.returncode == 0, first.stderr[-2000:]
    with open(split / "metrics.jsonl", "a") as f:  # what a run killed after its checkpoint had logged
        f.write(json.dumps({"step": 5, "loss": 123.0}) + "\n")
    assert not (split / "export").exists()  # stopped runs export nothing
    second = train_cli("--data", str(small_data), "--run", str(split), "--resume")
    assert second.returncode == 0, second.stderr[-2000:]
    a, b = read_metrics(whole), read_metrics(split)
    assert [r["step"] for r in b] == list(range(1, 9))
    assert [r["loss"] for r in a] == [r["loss"] for r in b]  # bitwise, dropout and data order included


def test_a_resume_with_other_loader_workers_goes_on_from_the_same_point(small_data, tmp_path):
    run = tmp_path / "run"
    args = ["--data", str(small_data), "--run", str(run), "--train.ckpt_every", "3", *TINY]
    assert train_cli(*args, "--steps", "6", "--stop-at", "3").returncode == 0
    second = train_cli("--data", str(small_data), "--run", str(run), "--resume", "--train.num_workers", "2")
    assert second.returncode == 0, second.stderr[-2000:]
    assert "1 rank(s) with 0 loader worker(s) each, this job has 1 with 2" in second.stderr
    assert [r["step"] for r in read_metrics(run)] == list(range(1, 7))
    first, last = (json.loads((run / f"checkpoints/step_0000000{s}/position.json").read_text()) for s in (3, 6))
    assert (first["num_workers"], last["num_workers"]) == (0, 2)
    # three more steps of one batch, after a skip that kept the batches taken to within one per new reader
    assert first["consumed"][0] == 3 and abs(last["consumed"][0] - 3 - 3) <= 2


def test_export_reloads_to_the_same_logits(small_data, tmp_path):
    from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

    from autosong.model.bundle import load_bundle
    from autosong.model.model_config import ModelConfig
    from autosong.model.transformer import SoundTransformer

    run = tmp_path / "run"
    assert train_cli("--data", str(small_data), "--run", str(run), "--steps", "3", *TINY).returncode == 0
    bundle = load_bundle(run)
    cfg = json.loads((run / "run_config.json").read_text())["config"]
    torch.manual_seed(cfg["train"]["seed"])  # the frozen phoneme table is the seeded init, never trained
    reference = SoundTransformer(ModelConfig(**cfg["model"])).eval()
    state = get_fp32_state_dict_from_zero_checkpoint(str(run / "checkpoints"))  # trainable weights, of TrainStep
    state = {k.removeprefix("model."): v for k, v in state.items()}
    assert set(reference.state_dict()) - set(state) == {"text.embed.weight"}
    reference.load_state_dict(state, strict=False)
    codes = torch.randint(0, 1024, (1, 2, 20))
    args = (codes, torch.tensor([20]), torch.tensor([0]), torch.randint(5, 2800, (1, 9)), torch.ones(1, 9, dtype=torch.bool))
    with torch.no_grad():
        assert torch.equal(bundle.model(*args)[0], reference(*args)[0])
    assert bundle.codec.to_dict() == json.loads((small_data / "dataset.json").read_text())["codec"]
    assert "torch.load(" not in (ROOT / "model/bundle.py").read_text()


def test_diverging_run_stops_with_a_clear_message(small_data, tmp_path):
    out = train_cli("--data", str(small_data), "--run", str(tmp_path / "run"), "--steps", "30", *TINY,
                    "--train.lr_max", "1e30", "--train.max_bad_steps", "3")
    assert out.returncode == 2
    assert "non-finite" in out.stderr and "lower --train.lr_max" in out.stderr and "Traceback" not in out.stderr


def test_data_from_another_codec_is_refused(small_data, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(small_data, other)
    card = json.loads((other / "dataset.json").read_text())
    card["codec"]["weights_sha256"] = "0" * 64
    (other / "dataset.json").write_text(json.dumps(card))
    out = train_cli("--data", str(other), "--run", str(tmp_path / "run"), "--steps", "2", *TINY)
    assert out.returncode == 2 and "different codecs" in out.stderr


def test_lyrics_longer_than_the_model_reads_are_refused_before_training(small_data, tmp_path):
    from autosong.manifests import read_manifest

    longest = max(read_manifest(small_data, "samples"), key=lambda r: r["text_len"])
    out = train_cli("--data", str(small_data), "--run", str(tmp_path / "run"), "--steps", "2", *TINY,
                    "--model.max_text_len", str(longest["text_len"] - 1))
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr[-2000:]
    line = out.stderr.strip().splitlines()[-1]
    assert f"longest: {longest['key']}" in line and "--max-text-len" in line
    assert not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.slow
def test_overfit_one_short_song_to_99_percent_token_accuracy(overfit_run):
    """The design's overfit test: teacher-forced accuracy on a single 2 s song."""
    from autosong.model.bundle import load_bundle
    from autosong.train.data import ShardStream, StreamConfig

    data, run = overfit_run
    model = load_bundle(run).model
    batch = next(iter(ShardStream(StreamConfig(str(data), micro_batch=1, window_frames=750))))
    with torch.no_grad():
        logits, pb = model(batch.codes, batch.lengths, batch.frame_offset, batch.text_ids, batch.text_mask)
    accuracy = (logits.argmax(-1) == pb.targets)[pb.valid].float().mean().item()
    assert accuracy >= 0.99, accuracy


@pytest.mark.slow
def test_zero2_with_optimizer_offload(small_data, tmp_path):
    """DeepSpeed's CPU Adam runs the offloaded step (compiled once per machine, ~100 s here)."""
    run = tmp_path / "run"
    out = train_cli("--data", str(small_data), "--run", str(run), "--deepspeed", "configs/deepspeed/zero2_offload.json",
                    "--steps", "4", *TINY, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    ds = json.loads((run / "run_config.json").read_text())["deepspeed"]
    assert ds["zero_optimization"]["offload_optimizer"]["device"] == "cpu" and ds["optimizer"]["type"] == "AdamW"
    m = read_metrics(run)
    assert m[-1]["loss"] < m[0]["loss"]


@pytest.mark.parametrize("damage", ["optimizer states", "truncated rng file and a torn log line", "latest"])
def test_resume_falls_back_to_the_newest_intact_checkpoint(damage, small_data, tmp_path):
    run = tmp_path / "run"
    args = ["--data", str(small_data), "--train.ckpt_every", "2", *TINY]
    first = train_cli(*args, "--run", str(run), "--steps", "6", "--stop-at", "4")
    assert first.returncode == 0, first.stderr[-2000:]
    newest = run / "checkpoints/step_00000004"
    if damage == "optimizer states":
        for f in newest.glob("*optim_states.pt"):
            f.unlink()
    elif damage.startswith("truncated rng file"):  # what a kill in mid-write leaves in both files
        rng = newest / "rng_rank0.pt"
        rng.write_bytes(rng.read_bytes()[: rng.stat().st_size // 2])
        with open(run / "metrics.jsonl", "a") as f:
            f.write('{"step": 4, "loss": 3.')
    (run / "checkpoints/latest").unlink()  # `latest` gone too: the checkpoints are still found
    second = train_cli("--data", str(small_data), "--run", str(run), "--resume")
    assert second.returncode == 0 and "Traceback" not in second.stderr, second.stderr[-2000:]
    steps = [r["step"] for r in read_metrics(run)]
    if damage == "latest":
        assert steps == list(range(1, 7))  # step 4 intact: resumed there
    else:
        assert "skipped damaged checkpoint(s): step_00000004" in second.stderr
        assert steps == [1, 2] + [3, 4, 5, 6]  # resumed from step 2; the log past it was rewritten
    assert (run / "export/model.safetensors").exists()


@pytest.mark.skipif(shutil.which("prlimit") is None, reason="needs util-linux's prlimit")
def test_a_checkpoint_that_cannot_be_written_is_one_line_and_the_older_one_resumes(small_data, tmp_path):
    # A file-size limit makes the write fail mid-file as a full disk does (Python ignores SIGXFSZ,
    # so the write returns EFBIG): the RNG file fits in 1 MB, the model states do not.
    run = tmp_path / "run"
    args = ["--data", str(small_data), "--train.ckpt_every", "2", *TINY, "--run", str(run), "--steps", "4"]
    first = train_cli(*args, "--stop-at", "2")
    assert first.returncode == 0, first.stderr[-2000:]
    full = train_cli("--data", str(small_data), "--run", str(run), "--resume",
                     launcher=["prlimit", "--fsize=1000000", sys.executable, "-m", "autosong.train"])
    assert full.returncode == 2 and "Traceback" not in full.stderr, full.stderr[-2000:]
    line = full.stderr.strip().splitlines()[-1]
    assert line.startswith("autosong: error: cannot write checkpoint") and "step_00000004" in line, line
    assert "step_00000002, is kept" in line and "--resume" in line
    assert sorted(d.name for d in (run / "checkpoints").glob("step_*")) == ["step_00000002"]
    again = train_cli("--data", str(small_data), "--run", str(run), "--resume")
    assert again.returncode == 0, again.stderr[-2000:]
    assert [r["step"] for r in read_metrics(run)] == [1, 2, 3, 4]
    assert (run / "export/model.safetensors").exists()


def test_resume_with_no_intact_checkpoint_is_one_line(small_data, tmp_path):
    run = tmp_path / "run"
    first = train_cli("--data", str(small_data), "--train.ckpt_every", "2", *TINY, "--run", str(run), "--steps", "4",
                      "--stop-at", "2")
    assert first.returncode == 0, first.stderr[-2000:]
    for f in (run / "checkpoints").glob("step_*/*model_states.pt"):
        f.unlink()
    out = train_cli("--data", str(small_data), "--run", str(run), "--resume")
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr[-2000:]
    assert "no intact checkpoint" in out.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize("environ,rank", [
    ({"SLURM_STEP_NUM_TASKS": "8", "SLURM_PROCID": "5", "SLURM_LOCALID": "1", "MASTER_ADDR": "node1"}, ("5", "8", "1")),
    ({"OMPI_COMM_WORLD_SIZE": "4", "OMPI_COMM_WORLD_RANK": "3", "OMPI_COMM_WORLD_LOCAL_RANK": "3",
      "MASTER_ADDR": "10.0.0.1", "MASTER_PORT": "7000"}, ("3", "4", "3")),
    ({"PMI_SIZE": "2", "PMI_RANK": "1", "MASTER_ADDR": "h"}, ("1", "2", "0")),
    ({"SLURM_STEP_NUM_TASKS": "1", "SLURM_PROCID": "0"}, None),  # one task: our own single process
    ({"SLURM_NTASKS": "8"}, None),  # an allocation's batch script, not a step srun started
])
def test_srun_and_mpirun_processes_find_their_rank(environ, rank):
    from autosong.train.distributed import launcher_env

    found = launcher_env(environ)
    if rank is None:
        assert found is None
    else:
        assert (found["RANK"], found["WORLD_SIZE"], found["LOCAL_RANK"]) == rank
        assert found["MASTER_ADDR"] == environ["MASTER_ADDR"] and found["MASTER_PORT"] == environ.get("MASTER_PORT", "29500")


def test_srun_without_a_meeting_address_is_one_clear_error():
    from autosong.manifests.errors import AutoSongError
    from autosong.train.distributed import launcher_env

    with pytest.raises(AutoSongError, match="srun .* started 4 processes: set MASTER_ADDR"):
        launcher_env({"SLURM_STEP_NUM_TASKS": "4", "SLURM_PROCID": "0"})


@pytest.mark.parametrize("preset,precision,fp32_sums", [("zero1", "bf16", True), ("zero1", "fp32", False),
                                                         ("zero2", "bf16", False), ("zero2_offload", "bf16", False)])
def test_bf16_zero1_sums_gradients_in_fp32(preset, precision, fp32_sums):
    from autosong.train.config import load_config
    from autosong.train.trainer import deepspeed_config

    cfg = load_config("configs/model/tiny.yaml", ["--train.precision", precision])
    ds = deepspeed_config(f"configs/deepspeed/{preset}.json", cfg)
    assert (ds.get("data_types") == {"grad_accum_dtype": "fp32"}) == fp32_sums


def test_a_bf16_run_exports_its_fp32_master_weights(small_data, tmp_path):
    from safetensors.torch import load_file

    run = tmp_path / "run"
    out = train_cli("--data", str(small_data), "--run", str(run), "--steps", "2", "--train.precision", "bf16", *TINY)
    assert out.returncode == 0, out.stderr[-3000:]
    weights = [v for v in load_file(str(run / "export/model.safetensors")).values() if v.is_floating_point()]
    rounded = sum(torch.equal(v, v.bfloat16().float()) for v in weights)  # what upcasting the bf16 module gives
    assert rounded <= 3 < len(weights), (rounded, len(weights))  # frozen tables only: the rest are fp32 masters


def test_the_presets_are_found_from_any_folder(tmp_path, monkeypatch):
    from autosong.train.config import PROJECT, load_config, preset_path
    from autosong.train.trainer import deepspeed_config

    monkeypatch.chdir(tmp_path)  # a user's own folder, as the README's workflow runs it
    assert preset_path("configs/model/tiny.yaml") == PROJECT / "configs/model/tiny.yaml"
    cfg = load_config("configs/model/tiny.yaml")
    assert cfg.model.d_model == 128 and deepspeed_config("configs/deepspeed/zero1.json", cfg)["zero_optimization"]
    (tmp_path / "configs/model").mkdir(parents=True)
    (tmp_path / "configs/model/tiny.yaml").write_text("model:\n  d_model: 64\n")
    assert load_config("configs/model/tiny.yaml").model.d_model == 64  # a file of the user's own comes first
