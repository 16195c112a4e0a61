"""`autosong edit`: keep what you like of a song and regenerate the rest (model/edit.py).

    autosong edit --checkpoint RUN --source song.wav --lyrics new.txt --from-line 3 --out edited.wav
    autosong edit --checkpoint RUN --source song.wav --lyrics new.txt --from-line 3 --seconds 40 --out edited.wav
    autosong edit --checkpoint RUN --source song.wav --lyrics longer.txt --extend 10 --out longer.wav
    autosong edit --checkpoint RUN --source song.wav --instrumental --out backing.wav

The source is a song `autosong generate` wrote (its song.npy codes, song.json and song.lrc are read
from beside it) or any recording with --source-lyrics (encoded, then aligned by the model's
alignment heads). Writes the WAV, its codes (.npy), song.lrc for the whole edited song (when the
model has alignment heads) and settings.json (.json: source, cut, seed)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import soundfile

from autosong.command_line import (HelpFormatter, add_device_arguments, add_sampling_arguments, check_writable_dir,
                                   real, run_cli, sampling_from_args, whole)
from autosong.manifests.codec_identity import require_same_codec
from autosong.manifests.errors import AutoSongError
from autosong.model.api import AutoSong
from autosong.model.audio import AudioDecodeError, load_audio, write_wav
from autosong.model.edit import Edit, SourceSong
from autosong.model.lrc import parse_lrc
from autosong.model.lyrics import read_lyrics_file
from autosong.model.threads import use_threads


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="autosong edit", description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--checkpoint", required=True, help="a run directory (RUN/export) or an export directory")
    p.add_argument("--source", required=True, help="the song to edit: a WAV `generate` wrote (its .npy, .json and "
                   ".lrc beside it), or any recording with --source-lyrics")
    p.add_argument("--source-lyrics", default=None, help="the lyrics the source sings (default: its .json's)")
    p.add_argument("--lyrics", default=None, help="the new complete lyrics (default: the source's)")
    p.add_argument("--genre", default=None, help="default: the source's .json's")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--from-line", type=whole(1), default=None,
                      help="keep the source before this line (1 = the first line with words), regenerate the rest")
    what.add_argument("--extend", type=real(0, above=True), default=None, metavar="SECONDS",
                      help="continue past the end for this many seconds")
    what.add_argument("--instrumental", action="store_true", help="the same genre and length, the backing alone (sung to the lyrics "
                      "'[instrumental]': a model learns it from its corpus's instrumental tracks, tagged so)")
    p.add_argument("--seconds", type=real(0, above=True), default=None,
                   help="the edited song's whole length (--from-line, --instrumental); default: the source's for an "
                   "instrumental, and for --from-line the kept part then the new lines at the pace the source sang")
    p.add_argument("--out", default="edited.wav")
    add_sampling_arguments(p)
    add_device_arguments(p)
    return p


def load_source(song, path: Path, lyrics_file: str | None, genre: str | None):
    """The SourceSong at `path`: a generated song's codes and records, or a recording encoded."""
    if not path.is_file():
        raise AutoSongError(f"--source {path}: no such file")
    record = json.loads(path.with_suffix(".json").read_text()) if path.with_suffix(".json").is_file() else {}
    lyrics = read_lyrics_file(lyrics_file).text if lyrics_file else record.get("lyrics")
    if lyrics is None and record.get("lyrics_file") and Path(record["lyrics_file"]).is_file():
        lyrics = read_lyrics_file(record["lyrics_file"]).text
    if lyrics is None:
        raise AutoSongError(f"--source {path}: say what it sings with --source-lyrics FILE")
    genre = genre or record.get("genre")
    if genre is None:
        raise AutoSongError(f"--source {path}: give its genre with --genre")
    if path.with_suffix(".npy").is_file() and "codec" in record:  # a generated song: its own codes
        require_same_codec(record["codec"], song.bundle.codec, f"the source {path} and {song.bundle.path}",
                           "edit it with the model (or a model of the codec) that made it")
        codes = np.load(path.with_suffix(".npy"))
        lrc = path.with_suffix(".lrc")
        starts = [line.start for line in parse_lrc(lrc.read_text(encoding="utf-8")).lines] if lrc.is_file() else None
        return SourceSong(codes, lyrics, genre, starts, str(path), _own_audio(path, song.sample_rate))
    try:
        audio = load_audio(path, song.sample_rate, max_seconds=song.bundle.model.cfg.max_frames / song.codec.frame_rate)
    except AudioDecodeError as err:
        raise AutoSongError(f"--source {path}: {err}") from None
    key = song.key_signature_for(lyrics, genre)  # the key the edit sings in: a key-normalised model's codes are in C
    return SourceSong(song.encode(audio.wav, key), lyrics, genre, None, str(path))


def _own_audio(path: Path, rate: int) -> np.ndarray | None:
    """A generated song's WAV, kept as it is before the cut (so it is not decoded again); None when
    it cannot be read at the codec's rate (its codes are decoded instead)."""
    try:
        wav, sr = soundfile.read(path, dtype="float32", always_2d=True)
    except (RuntimeError, OSError):
        return None
    return wav.mean(axis=1) if sr == rate else None


def run(argv) -> int:
    args = parser().parse_args(argv)
    use_threads(args.threads)
    out = Path(args.out)
    if out.is_dir():
        raise AutoSongError(f"--out {out} is a folder; name a file, e.g. --out {out / 'edited.wav'}")
    check_writable_dir(out.parent)
    if args.lyrics and not Path(args.lyrics).is_file():
        raise AutoSongError(f"--lyrics {args.lyrics}: no such file")
    edit = Edit(args.from_line, args.extend, args.instrumental, args.seconds)
    song = AutoSong.load(args.checkpoint, args.device, args.dtype)
    source = load_source(song, Path(args.source), args.source_lyrics, args.genre)
    new_lyrics = read_lyrics_file(args.lyrics).text if args.lyrics else None
    edited = song.edit(source, edit, new_lyrics, sampling_from_args(args))
    write_wav(out, edited.audio, edited.sample_rate)
    np.save(out.with_suffix(".npy"), edited.codes)
    out.with_suffix(".json").write_text(json.dumps(edited.settings, indent=2, ensure_ascii=False))
    written = [out, out.with_suffix(".npy"), out.with_suffix(".json")]
    if song.bundle.alignment is not None and not edit.instrumental:
        lrc = song.lrc(edited.codes, edited.lyrics, source.genre, edited.known_starts, keys=edited.keys)
        out.with_suffix(".lrc").write_text(lrc, encoding="utf-8")
        written.append(out.with_suffix(".lrc"))
    kept = f"kept {edited.cut_frame / song.codec.frame_rate:.2f} s of the source, " if edited.cut_frame else ""
    print(f"{kept}wrote {', '.join(map(str, written))} ({edited.codes.shape[-1] / song.codec.frame_rate:.1f} s)")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_cli(run, argv)


if __name__ == "__main__":
    sys.exit(main())
