"""`autosong eval`: per-codebook CE table, conditioning gain, eval.json and report.html."""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from model.arguments import HelpFormatter, real, whole

LATENT_SECONDS = 8.0  # a latent dataset's songs are generated this long unless --seconds says
from model.devices import add_arguments
from model.errors import run_cli


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="autosong eval", description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--checkpoint", required=True, help="a run directory (RUN/export) or an export directory")
    p.add_argument("--data", required=True, help="OUT of `autosong pipeline build` (same codec as the model)")
    p.add_argument("--split", default="val", choices=("val", "train"))
    p.add_argument("--out", default=None, help="report directory (default: RUN/eval)")
    p.add_argument("--max-songs", type=whole(1), default=None, help="score at most this many songs (default: all)")
    p.add_argument("--generate", type=whole(0), default=2, help="songs to generate from held-out lyrics for the report")
    p.add_argument("--seconds", type=real(0, above=True), default=None,
                   help="length of each generated song, at most (default: the held-out song's own length)")
    p.add_argument("--cfg", type=real(0), default=3.0, help="classifier-free guidance weight (1 = off)")
    p.add_argument("--notes", type=whole(0), default=16, help="held-out songs generated for the note error rate "
                   "(synth data only; 0 = skip)")
    p.add_argument("--seed", type=whole(0), default=0)
    add_arguments(p)
    return p


def generate_for_report(song, data: str, split: str, count: int, seconds: float | None, cfg: float, seed: int) -> list[dict]:
    """Songs generated (by `song`, a model.api.AutoSong) from the first held-out songs' lyrics
    and genres, for listening."""
    from eval.evaluate import load_split
    from eval.notes import transcribe
    from eval.singing import expected_notes, sings_synth_notes
    from model.sampler import SamplingConfig

    if count <= 0:
        return []
    bundle, codec = song.bundle, song.codec
    card, songs = load_split(data, split, count)
    lyrics = [s.lyrics for s in songs]
    settings = SamplingConfig(temperature=1.0, top_k=250, cfg=cfg, seed=seed)
    if bundle.parent:  # latent data holds no EnCodec codes to match: one batch
        made = song.generate(lyrics, [s.genre for s in songs], seconds or LATENT_SECONDS, settings)
        codes, wavs = list(made.codes), made.audio
    else:  # each as long as the true song (up to `seconds`), to compare them
        made = [song.generate(text, s.genre, min(seconds or math.inf, s.codes.shape[1] / codec.frame_rate), settings)
                for s, text in zip(songs, lyrics)]
        codes, wavs = [m.codes[0] for m in made], [m.audio[0] for m in made]
    maps = alignment_maps(song, codes, lyrics, [s.genre for s in songs], codec.frame_rate)
    # the true song of those lyrics, as the codec renders its codes (latent data: no EnCodec codes here)
    refs = [codec.decode(s.codes) if not bundle.parent else None for s in songs]
    out = [{"title": f"from {s.key}'s lyrics", "lyrics": text, "genre": s.genre, "wav": wav,
            "codes": c, "reference_wav": ref, "alignment": amap, "frame_rate": rate, "prior_share": share}
           for s, text, c, wav, ref, (amap, rate, share) in zip(songs, lyrics, codes, wavs, refs, maps)]
    for s, item in zip(songs, out):  # on synth data: the notes the lyrics call for, and those heard
        if sings_synth_notes(card, s.genre) and item["reference_wav"] is not None:
            item["expected"] = expected_notes(s.lyrics, s.genre)
            item["sung"] = [(n.start, n.length, n.pitch) for n in transcribe(item["wav"], codec.sample_rate)]
            item["reference_sung"] = [(n.start, n.length, n.pitch)
                                      for n in transcribe(item["reference_wav"], codec.sample_rate)]
    return out


def alignment_maps(song, codes: list, lyrics: list[str], genres: list[str], frame_rate: float) -> list[tuple]:
    """Each generated song's cross-attention map [frames, lyric slots] (teacher-forced over its
    own codes), the frame rate of its rows (for a latent model, its latent positions), and, when
    the model has an alignment prior, the prior's share: the attention mass it moves (half the L1
    distance per frame to the map without it, averaged), else None."""
    import torch

    from model.generate import text_batch

    model, ae, dev = song.bundle.model, song.autoencoder, song.device
    stride = ae.model.cfg.stride if ae else 1
    out = []
    for i, song_codes in enumerate(codes):
        steps = torch.from_numpy(song_codes.astype("int64"))[None].to(dev)  # [1, C, T]
        if ae is not None:
            with torch.no_grad():
                steps = ae.model.encode(steps)  # back to the latent positions the model attended from
        batch = text_batch(song.bundle, lyrics[i : i + 1], genres[i : i + 1], dev)
        args = (steps, batch["text_ids"], batch["text_mask"], torch.tensor([steps.shape[-1]], device=dev),
                batch.get("bert"), batch.get("bert_mask"))
        amap = model.cross_attention_map(*args)[0].float()
        share = None
        if model.cfg.cross_align == "prior":
            plain = model.cross_attention_map(*args, prior=False)[0].float()
            share = float(0.5 * (amap - plain).abs().sum(-1).mean())
        out.append((amap.cpu().numpy(), frame_rate / stride, share))
    return out


def run(argv) -> int:
    from eval.evaluate import evaluate, format_table
    from model.api import AutoSong
    from model.bundle import load_bundle
    from model.devices import resolve_device, resolve_dtype

    args = parser().parse_args(argv)
    device = resolve_device(args.device)
    bundle = load_bundle(args.checkpoint, device=device, dtype=resolve_dtype(args.dtype, device))
    out = Path(args.out) if args.out else (Path(args.checkpoint) / "eval")
    out.mkdir(parents=True, exist_ok=True)
    if bundle.stage in ("gumbel_ae", "vqvae"):
        from eval.stages import evaluate_autoencoder, format_autoencoder

        result = evaluate_autoencoder(bundle, args.data, args.split, args.max_songs)
        print(format_autoencoder(result))
        (out / "eval.json").write_text(json.dumps(result, indent=2))
        print(f"\nwrote {out / 'eval.json'}")
        return 0
    result = evaluate(bundle, args.data, args.split, args.max_songs, args.seed)
    print(format_table(result))
    song = AutoSong.from_bundle(bundle)  # codec (and a latent model's autoencoder), loaded once
    add_note_errors(song, result, args.data, args.split, args.notes, args.seconds, args.cfg, args.seed)
    if bundle.parent:
        from eval.stages import end_to_end

        result["end_to_end"] = e2e = end_to_end(bundle, args.data, args.split, args.max_songs, song.autoencoder)
        print(f"\nend to end (latents -> {bundle.parent['ae_kind']} decoder -> EnCodec tokens): CE "
              + ", ".join(f"{k} {v:.3f}" for k, v in e2e["ce"].items()) + f", top-1 {e2e['accuracy']['mean']:.1%}")
    report = write_outputs(song, result, args.data, args.split, out, args.generate, args.seconds, args.cfg, args.seed)
    print(f"\nwrote {out / 'eval.json'} and {report}")
    return 0


def add_note_errors(song, result: dict, data: str, split: str, count: int, seconds: float | None, cfg: float,
                    seed: int) -> None:
    """On a synth corpus, generate `count` held-out songs and their controls, and add the note
    error rate to `result` (and print it)."""
    from eval.singing import format_note_errors, note_error_rates
    from manifests import DatasetCard

    if count <= 0 or DatasetCard.load(data).synth is None or song.bundle.parent:
        return
    result["note_errors"] = note_error_rates(song, data, split, count, seconds, cfg, seed)
    print("\n" + format_note_errors(result["note_errors"]))


def write_outputs(song, result: dict, data: str, split: str, out: Path, generate: int, seconds: float,
                  cfg: float, seed: int) -> Path:
    """Songs generated (by `song`, a model.api.AutoSong) from held-out lyrics (WAVs), eval.json,
    and report.html with the run's training curves. Returns the report's path."""
    from eval.report import write_report
    from model.audio import write_wav

    from train.trainer import parse_metrics_line

    bundle = song.bundle
    songs = generate_for_report(song, data, split, generate, seconds, cfg, seed)
    for i, s in enumerate(songs):
        write_wav(out / f"generated_{i}.wav", s["wav"], 24_000)
    result["generated"] = [{"title": s["title"], "genre": s["genre"], "wav": f"generated_{i}.wav"}
                           for i, s in enumerate(songs)]
    (out / "eval.json").write_text(json.dumps(result, indent=2))
    metrics_path = bundle.path.parent / "metrics.jsonl"
    lines = metrics_path.read_text(errors="replace").splitlines() if metrics_path.exists() else []
    history = [row for row in map(parse_metrics_line, lines) if row is not None]  # a torn line left out
    return write_report(out / "report.html", result, history, songs, 24_000)


def main(argv: list[str] | None = None) -> int:
    return run_cli(run, argv)
