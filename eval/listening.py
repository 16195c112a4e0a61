"""What eval writes for listening: songs generated from held-out lyrics (each as long as its true
song), the true song as the codec renders it, each song's lyric-attention map, and on a synth
corpus the notes expected and heard; then the WAVs, eval.json and report.html."""
from __future__ import annotations

import json
import math
from pathlib import Path
from autosong.eval.evaluate import load_split
from autosong.eval.notes import transcribe
from autosong.eval.report import write_report
from autosong.model.audio import write_wav
from autosong.model.generate import text_batch
from autosong.model.key_shift import pitch_shift
from autosong.model.line_times import has_words
from autosong.model.run_metrics import read_metrics
from autosong.model.synth_music import expected_notes, sings_synth_notes

LATENT_SECONDS = 8.0  # a latent dataset's songs are generated this long unless --seconds says


def generate_for_report(song, data: str, split: str, count: int, seconds: float | None, settings) -> list[dict]:
    """Songs generated (by `song`, a model.api.AutoSong, with `settings`, a SamplingConfig) from
    the first held-out songs' lyrics and genres, for listening."""
    if count <= 0:
        return []
    bundle, codec = song.bundle, song.codec
    card, songs = load_split(data, split, count, song.bundle)
    lyrics = [s.lyrics for s in songs]
    if bundle.parent:  # latent data holds no EnCodec codes to match: one batch
        made = song.generate(lyrics, [s.genre for s in songs], seconds or LATENT_SECONDS, settings)
        codes, wavs = list(made.codes), made.audio
    else:  # each as long as the true song (up to `seconds`), to compare them
        made = [song.generate(text, s.genre, min(seconds or math.inf, s.codes.shape[1] / codec.frame_rate), settings)
                for s, text in zip(songs, lyrics)]
        codes, wavs = [m.codes[0] for m in made], [m.audio[0] for m in made]
    maps = alignment_maps(song, codes, lyrics, [s.genre for s in songs], codec.frame_rate)
    # the true song of those lyrics, as the codec renders its codes (latent data: no EnCodec codes here)
    refs = [pitch_shift(codec.decode(s.codes), codec.sample_rate, -s.key_shift) if not bundle.parent else None
            for s in songs]  # in its own key (a key-normalised build moved it to C)
    out = [{"title": f"from {s.key}'s lyrics", "lyrics": text, "genre": s.genre, "wav": wav,
            "codes": c, "reference_wav": ref, "alignment": amap, "frame_rate": rate, "prior_share": share}
           for s, text, c, wav, ref, (amap, rate, share) in zip(songs, lyrics, codes, wavs, refs, maps)]
    if bundle.alignment is not None and not bundle.parent:  # where the alignment heads put each line's start
        for item in (item for item in out if has_words(item["lyrics"])):  # an instrumental track has no lines
            item["lines"], times = song.line_times(item["codes"], item["lyrics"], item["genre"])
            item["line_starts"] = times.starts
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


def write_outputs(song, result: dict, data: str, split: str, out: Path, generate: int, seconds: float,
                  settings) -> Path:
    """Songs generated (by `song`, a model.api.AutoSong) from held-out lyrics (WAVs), eval.json,
    and report.html with the run's training curves. Returns the report's path."""
    bundle = song.bundle
    songs = generate_for_report(song, data, split, generate, seconds, settings)
    for i, s in enumerate(songs):
        write_wav(out / f"generated_{i}.wav", s["wav"], song.sample_rate)
    result["generated"] = [{"title": s["title"], "genre": s["genre"], "wav": f"generated_{i}.wav"}
                           for i, s in enumerate(songs)]
    (out / "eval.json").write_text(json.dumps(result, indent=2))
    history = read_metrics(bundle.path.parent / "metrics.jsonl")
    return write_report(out / "report.html", result, history, songs, song.sample_rate)
