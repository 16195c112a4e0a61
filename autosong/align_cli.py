"""`autosong align`: where a recording sings each line of its lyrics, as an LRC file: a forced
aligner that comes free with a trained model. The audio is encoded with the model's codec and the
model reads it teacher-forced; each line's start comes from its alignment heads (model/line_times.py)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from autosong.command_line import HelpFormatter, add_device_arguments, check_writable_dir, run_cli
from autosong.manifests.errors import AutoSongError
from autosong.model.api import AutoSong, lrc_text
from autosong.model.audio import AudioDecodeError, load_audio
from autosong.model.lyrics import lyric_words, read_lyrics_file, weak_encoding_warning
from autosong.model.song_key import key_signatures
from autosong.model.threads import use_threads


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="autosong align", description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--checkpoint", required=True, help="a run directory (RUN/export) or an export directory")
    p.add_argument("--audio", required=True, help="the recording (any format the build reads)")
    p.add_argument("--lyrics", required=True, help="its lyrics, a UTF-8 file (lyrics.txt style)")
    p.add_argument("--genre", default="unknown")
    p.add_argument("--out", default="song.lrc")
    p.add_argument("--codec", default=None, help="codec source if not the one recorded in the bundle (same weights)")
    add_device_arguments(p)
    return p


def run(argv) -> int:
    args = parser().parse_args(argv)
    use_threads(args.threads)
    for flag, path in (("--audio", args.audio), ("--lyrics", args.lyrics)):
        if not Path(path).is_file():
            raise AutoSongError(f"{flag} {path}: no such file")
    decoded = read_lyrics_file(args.lyrics)
    if not lyric_words(decoded.text):
        raise AutoSongError(f"--lyrics {args.lyrics} holds no words: there are no lines to time in the recording")
    if decoded.weak:
        print(f"warning: {weak_encoding_warning(args.lyrics, decoded)}", file=sys.stderr)
    out = Path(args.out)
    if out.is_dir():
        raise AutoSongError(f"--out {out} is a folder; name a file, e.g. --out {out / 'song.lrc'}")
    check_writable_dir(out.parent)
    song = AutoSong.load(args.checkpoint, args.device, args.dtype, args.codec)
    song.require_alignment()  # before the audio is read and encoded
    max_seconds = song.bundle.model.cfg.max_frames / song.codec.frame_rate
    try:
        audio = load_audio(args.audio, song.sample_rate, max_seconds=max_seconds)
    except AudioDecodeError as err:
        raise AutoSongError(f"--audio {args.audio}: {err}") from None
    heard = song.bundle.model.cfg.song_key or song.bundle.key_normalised
    keys = key_signatures(audio.wav, song.sample_rate) if heard else ()
    codes = song.encode(audio.wav, keys[0] if keys else None)  # a key-normalised model reads it moved to C
    lines, times = song.line_times(codes, decoded.text, args.genre, keys=keys)  # read in the key it is sung in
    out.write_text(lrc_text(lines, times), encoding="utf-8")
    if times.doubt:
        print(f"warning: a weak alignment: {times.doubt}", file=sys.stderr)
    for what, which in (("skipped", times.skipped), ("sung again", times.repeated)):
        if which:
            numbers = ", ".join(str(i + 1) for i in which)
            print(f"note: {'lines' if len(which) > 1 else 'line'} {numbers} "
                  f"{'look' if len(which) > 1 else 'looks'} {what}", file=sys.stderr)
    print(f"wrote {out}: {len(lines)} lines over {codes.shape[-1] / song.codec.frame_rate:.1f} s of {args.audio}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_cli(run, argv)
