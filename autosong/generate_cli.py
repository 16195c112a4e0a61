"""`autosong generate`: lyrics + genre -> song.wav (+ codes .npy, settings .json, and song.lrc: where it
sings each line, when the model has alignment heads)."""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from autosong.command_line import (HelpFormatter, add_device_arguments, add_sampling_arguments, check_writable_dir,
                                   real, run_cli, sampling_from_args, whole)
from autosong.manifests.errors import AutoSongError
from autosong.model.api import AutoSong, song_paths
from autosong.model.audio import load_audio
from autosong.model.line_times import has_words
from autosong.model.lyrics import read_lyrics_file, weak_encoding_warning
from autosong.model.song_key import key_name, parse_key
from autosong.model.threads import use_threads


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="autosong generate", description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--checkpoint", required=True, help="a run directory (RUN/export) or an export directory")
    p.add_argument("--adapter", default=None, help="a fine-tune's adapter folder (RUN/export/adapter) to merge onto "
                   "--checkpoint, its base")
    p.add_argument("--lyrics", required=True, help="a lyrics file (UTF-8, or another encoding the build detects: "
                   "model/text_encoding.py)")
    p.add_argument("--genre", default="unknown")
    p.add_argument("--seconds", type=real(0, above=True), default=10.0)
    p.add_argument("--key", default=None, help="the key to sing in, as 'A minor', 'F# major' or 'Eb' (a model "
                   "trained with model.song_key; default: the key its lyrics and genre call for, which is printed)")
    p.add_argument("--out", default="song.wav")
    p.add_argument("--num-songs", type=whole(1), default=1, help="several songs in one batch: song_0.wav, song_1.wav ...")
    add_sampling_arguments(p)
    p.add_argument("--prompt-audio", default=None, help="continue this audio (its codes are the first frames)")
    p.add_argument("--prompt-seconds", type=real(0, above=True), default=10.0,
                   help="how much of the start of --prompt-audio to continue")
    p.add_argument("--codec", default=None, help="codec source if not the one recorded in the bundle (same weights)")
    p.add_argument("--context", type=real(0, 0.95), default=0.5,
                   help="songs longer than the training window: the fraction of a window each next one continues")
    p.add_argument("--compile", action="store_true",
                   help="compile the decode step over a static cache (torch.compile; CUDA graphs on a GPU): "
                        "a one-off trace of tens of seconds, then faster steps; for long songs")
    add_device_arguments(p)
    return p


def run(argv) -> int:
    args = parser().parse_args(argv)
    use_threads(args.threads)
    lyrics_path = Path(args.lyrics)
    if not lyrics_path.is_file():
        raise AutoSongError(f"--lyrics {lyrics_path}: no such file")
    decoded = read_lyrics_file(lyrics_path)  # the build's reader and rule
    if decoded.weak:
        print(f"warning: {weak_encoding_warning(lyrics_path, decoded)}", file=sys.stderr)
    lyrics = decoded.text
    if args.key is not None:
        _parsed_key(args.key)  # refused before the model loads
    if args.prompt_audio and not Path(args.prompt_audio).is_file():
        raise AutoSongError(f"--prompt-audio {args.prompt_audio}: no such file")
    for path in song_paths(args.out, args.num_songs):  # before minutes of sampling, not after
        for written in (path, path.with_suffix(".npy"), path.with_suffix(".json"), path.with_suffix(".lrc")):
            if written.is_dir():
                raise AutoSongError(f"--out {args.out}: {written} is a folder; name a file, e.g. "
                                    f"--out {Path(args.out) / 'song.wav'}")
    check_writable_dir(Path(args.out).parent)
    t0 = time.perf_counter()
    song = AutoSong.load(args.checkpoint, args.device, args.dtype, args.codec, args.adapter)
    load_s = time.perf_counter() - t0
    if args.compile and song.device.type == "cpu":
        print("warning: --compile on a CPU traces for tens of seconds before the first step and then gains "
              "little; it pays only for many long songs in one process (README, generate)", file=sys.stderr)
    prompt = None
    if args.prompt_audio:  # its first --prompt-seconds: a whole song as the prompt would leave nothing to write
        prompt = load_audio(args.prompt_audio, song.sample_rate, max_seconds=args.prompt_seconds).wav
    settings = sampling_from_args(args, context=args.context, compile=args.compile)
    n = args.num_songs
    key = _song_key(song, lyrics, args)
    sung_in = () if args.key is None else (_parsed_key(args.key),)  # song.lrc reads the songs in the key they sang
    songs = song.generate([lyrics] * n, [args.genre] * n, args.seconds, settings, prompt, progress=True, key=args.key)
    timing = songs.timing
    words = has_words(lyrics)
    timed = song.bundle.alignment is not None and song.autoencoder is None and words
    why_untimed = ("a latent-stage model has no line times" if song.autoencoder is not None else
                   "the lyrics hold no line with words to time" if not words else
                   f"{song.bundle.path} has no alignment heads (`autosong eval` chooses them on data with lyrics.lrc)")
    for path, codes in zip(songs.save(args.out), songs.codes):
        np.save(path.with_suffix(".npy"), codes)
        path.with_suffix(".json").write_text(json.dumps({
            "checkpoint": str(song.bundle.path), "step": song.bundle.step, "lyrics_file": str(lyrics_path),
            "lyrics": lyrics,  # what it sings, so that `autosong edit` needs nothing else
            "genre": args.genre, "key": key, "seconds": args.seconds, "sampling": settings.to_dict(),
            "prompt_audio": args.prompt_audio, "codec": song.bundle.codec.to_dict(), "timing": timing}, indent=2, ensure_ascii=False))
        lrc = ""
        if timed:  # where the song sings each line, read from the model's alignment heads
            path.with_suffix(".lrc").write_text(song.lrc(codes, lyrics, args.genre, keys=sung_in), encoding="utf-8")
            lrc = f", {path.with_suffix('.lrc')}"
        print(f"wrote {path} ({codes.shape[-1] / song.codec.frame_rate:.1f} s), {path.with_suffix('.npy')}, "
              f"{path.with_suffix('.json')}{lrc}")
    if not timed:
        print(f"note: no .lrc written: {why_untimed}", file=sys.stderr)
    busy = timing["seconds_sampling"] + timing["seconds_decode"]
    print(f"RTF {timing['rtf']:.2f} (wall / generated audio, lower is better): {busy:.1f} s to sample and decode "
          f"{timing['generated_seconds']:.1f} s per song, {timing['songs']} song(s), on {timing['device']}, "
          f"{timing['dtype']}; loading the model took {load_s:.1f} s more")
    return 0


def _parsed_key(text: str) -> int:
    try:
        return parse_key(text)
    except ValueError as err:
        raise AutoSongError(f"--key: {err}") from None


def _song_key(song: AutoSong, lyrics: str, args) -> str | None:
    """The key the songs are sung in, named and printed: --key, else the one the model's key head
    gives these lyrics and genre; None for a model trained without keys."""
    called_for = song.key_for(lyrics, args.genre)
    if args.key is None:
        if called_for is not None:
            print(f"key: {called_for} (the one its lyrics and genre call for)")
        return called_for
    if called_for is None:
        raise AutoSongError(f"--key: {song.bundle.path} was not trained with song keys (model.song_key); leave it out")
    named = key_name(_parsed_key(args.key))
    print(f"key: {named}")
    return named


def main(argv: list[str] | None = None) -> int:
    return run_cli(run, argv)
