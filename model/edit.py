"""Editing a song: keep what you like and regenerate the rest, continue past the end, or take the
backing alone. The pieces are the ones generation already has: the complete lyrics as memory,
continuation from a prompt of codes (forced frame by frame, so the kept part is the source's codes
bit for bit), line times from the alignment heads, long songs in windows, and the null memory that
classifier-free guidance trains.

- from a line: keep the source before line N's start (its song.lrc, or the alignment heads over its
  codes), regenerate the rest with the new lyrics. The memory holds the complete new lyrics, so the
  kept part reads as their opening.
- extend: continue the whole source for more seconds, singing the new (longer) lyrics.
- instrumental: the same genre and length, sung to the lyrics "[instrumental]": the backing alone,
  as a model learns it from the instrumental tracks of its corpus (tagged so in their lyrics.txt).

The audio before the cut is the source's own (its WAV when given, else its codes decoded), joined
to the new part by a 10 ms crossfade at the cut's frame boundary. Only the new part is decoded,
from half a second before the cut (the decoder settles in that context, which is then
dropped), so an edit costs about the generation of what it regenerates.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from autosong.manifests.errors import AutoSongError
from autosong.model.generate import generate_codes, text_batch
from autosong.model.line_times import sung_lines
from autosong.model.lyrics import INSTRUMENTAL_LYRICS, default_tokenizer
from autosong.model.sampling import SamplingConfig

CROSSFADE_SECONDS = 0.01
DECODE_CONTEXT_SECONDS = 0.5  # the new part is decoded from this far before the cut


@dataclass
class SourceSong:
    """The song to edit: its codes and what it sings."""

    codes: np.ndarray                  # int [C, T]
    lyrics: str
    genre: str
    line_starts: list[float] | None = None  # seconds per line that holds words (its song.lrc); None: align
    name: str = ""                     # where it came from, for settings.json
    audio: np.ndarray | None = None    # float32 [samples] at the codec's rate, when at hand (its WAV); None: decode


@dataclass
class Edit:
    """One of: from_line (1-based, a line that holds words), extend (seconds), instrumental.
    seconds: the edited song's whole length, for from_line or instrumental. None: an instrumental
    lasts as long as the source, and a from-line edit gives the new lines the time they take at
    the pace the source sang its own (fitted_seconds)."""

    from_line: int | None = None
    extend: float | None = None
    instrumental: bool = False
    seconds: float | None = None

    def __post_init__(self):
        chosen = [self.from_line is not None, self.extend is not None, self.instrumental]
        if sum(chosen) != 1:
            raise AutoSongError("an edit is one of --from-line N, --extend SECONDS or --instrumental")
        if self.extend is not None and not self.extend > 0:
            raise AutoSongError(f"--extend {self.extend:g}: extend by a positive number of seconds")
        if self.seconds is not None and self.extend is not None:
            raise AutoSongError("--seconds sets the length of a --from-line or --instrumental edit; --extend "
                                "already says how long the song becomes")
        if self.seconds is not None and not self.seconds > 0:
            raise AutoSongError(f"--seconds {self.seconds:g}: give the edited song a positive length")


@dataclass
class EditedSong:
    codes: np.ndarray        # int16 [C, frames]: the whole edited song
    audio: np.ndarray        # float32 [samples]
    sample_rate: int
    lyrics: str              # what it sings (the new lyrics; INSTRUMENTAL_LYRICS for an instrumental)
    cut_frame: int           # frames kept from the source (0 for an instrumental)
    settings: dict = field(default_factory=dict)
    known_starts: list[float] = field(default_factory=list)  # seconds: the kept lines' starts and the cut's line
    # (a from-line edit; what its song.lrc keeps, AutoSong.line_times(known=...)), else empty
    keys: tuple[int, ...] = ()  # the key signature it is sung in (model.song_key), as AutoSong.line_times reads it


def edit_song(song, source: SourceSong, edit: Edit, new_lyrics: str | None = None,
              sampling: SamplingConfig | None = None) -> EditedSong:
    """`song`: a model.api.AutoSong. Deterministic for sampling.seed. A model trained with song keys
    sings the new part in the key the source's lyrics call for (the key its generation used), so
    new lyrics of another script mix do not change key at the cut."""
    sampling = sampling or SamplingConfig()
    rate, C = song.codec.frame_rate, song.bundle.model.cfg.num_codebooks
    codes = np.asarray(source.codes)
    if codes.ndim != 2 or codes.shape[0] != C or codes.max() >= song.bundle.model.cfg.codebook_size:
        raise AutoSongError(f"the source's codes are {tuple(codes.shape)}, not [{C}, frames] of this model's codec: "
                            f"a song from another codec cannot be edited with {song.bundle.path}")
    seconds = codes.shape[1] / rate
    lyrics = new_lyrics if new_lyrics is not None else source.lyrics
    key = song.key_signature_for(source.lyrics, source.genre)  # the source's key, kept (None: a model without keys)
    keys = None if key is None else [key]
    if edit.instrumental:  # what the corpus's instrumental tracks taught it
        made, _ = generate_codes(song.bundle, [INSTRUMENTAL_LYRICS], [source.genre], edit.seconds or seconds,
                                 sampling, rate,
                                 progress=False, code_notes=song.code_notes_for(sampling), song_key=keys)
        return _finish(song, source, made[0], INSTRUMENTAL_LYRICS, 0, edit, sampling, [], keys)
    if edit.extend is not None:
        cut = codes.shape[1]
        total = seconds + edit.extend
        anchors, known = None, []
    else:
        lines, _ = sung_lines(source.lyrics, default_tokenizer())
        n = edit.from_line
        if not 1 <= n <= len(lines):
            raise AutoSongError(f"--from-line {n}: the source's lyrics have {len(lines)} lines that hold words")
        if n == 1:
            raise AutoSongError("--from-line 1 keeps nothing of the source: that is `autosong generate` with the "
                                "new lyrics")
        starts = source.line_starts
        if starts is None:
            _, times = song.line_times(codes, source.lyrics, source.genre)
            if times.doubt:
                raise AutoSongError(f"cannot find where line {n} starts: a weak alignment ({times.doubt})")
            starts = times.starts
        if len(starts) != len(lines):
            raise AutoSongError(f"the source's line times hold {len(starts)} lines, its lyrics {len(lines)}: "
                                f"give the lyrics it was made from")
        cut = int(round(starts[n - 1] * rate))
        if not 0 < cut < codes.shape[1]:
            raise AutoSongError(f"line {n} starts at {starts[n - 1]:.2f} s, outside the {seconds:.1f} s source")
        new_lines, _ = sung_lines(lyrics, default_tokenizer())
        if len(new_lines) < n:
            raise AutoSongError(f"--from-line {n}: the new lyrics have {len(new_lines)} lines that hold words, so "
                                f"none is line {n}; give the complete lyrics, the kept lines included")
        total = edit.seconds or fitted_seconds(song, source, lyrics, n, cut / rate)
        if total * rate <= cut + 1:
            raise AutoSongError(f"--seconds {total:g} ends before line {n}, which starts at {cut / rate:.2f} s: "
                                f"ask for a longer song")
        known = [*starts[: n - 1], cut / rate]
        anchors = prior_anchors(song, lyrics, known)
    made, _ = generate_codes(song.bundle, [lyrics], [source.genre], total, sampling, rate,
                             prompt=codes[:, :cut].astype(np.int64), progress=False, line_starts=anchors,
                             code_notes=song.code_notes_for(sampling), song_key=keys)
    return _finish(song, source, made[0], lyrics, cut, edit, sampling, known, keys)


def fitted_seconds(song, source: SourceSong, lyrics: str, n: int, cut_s: float) -> float:
    """How long the song edited from line n lasts when no length is asked for: the kept part, then
    the new lines at the pace the source sang its own from line n on (its seconds after the cut per
    unit the alignment prior counts: learned sung lengths, syllables, or slots). New lines twice as
    long as the old get twice the time, so the prior does not squeeze them into the old one's place.
    At most what the model has frame positions for."""
    old = _units_from_line(song, source.lyrics, source.genre, n)
    new = _units_from_line(song, lyrics, source.genre, n)
    source_s = np.asarray(source.codes).shape[1] / song.codec.frame_rate
    cfg = song.bundle.model.cfg
    stride = song.autoencoder.model.cfg.stride if song.autoencoder is not None else 1  # a latent model's positions
    limit = (cfg.max_frames - cfg.num_codebooks) * stride / song.codec.frame_rate
    return min(cut_s + (source_s - cut_s) * new / max(old, 1e-6), limit)


def _units_from_line(song, lyrics: str, genre: str, n: int) -> float:
    """The units of lyrics' lines from line n (1-based, lines with words) on, as the model counts them."""
    import torch

    ids = text_batch(song.bundle, [lyrics], [genre], next(song.bundle.model.parameters()).device)["text_ids"]
    _, slots = sung_lines(lyrics, default_tokenizer())
    with torch.no_grad():
        units = song.bundle.model.lyric_units(ids)[0]
    return float(units[slots[n - 1]:].sum())


def prior_anchors(song, lyrics: str, starts: list[float]) -> list[tuple[float, int]] | None:
    """(seconds, memory slot of the line's first word) where the alignment prior must be for the
    first len(starts) lines of `lyrics` with words, known to start at `starts` (an edit's kept
    lines and its cut): line N of new lyrics sits wherever its words fall in them, and the uniform
    t/T would put the cut elsewhere (the new lines are longer or shorter than the old). None when
    nothing is known or the memory is not lyric ids. The edit samples through these, and its
    song.lrc is read through them (AutoSong.line_times)."""
    cfg = song.bundle.model.cfg
    if not starts or cfg.cross_align != "prior" or cfg.bert_dim:
        return None
    _, slots = sung_lines(lyrics, default_tokenizer())
    return list(zip(starts, slots[: len(starts)])) or None


def _finish(song, source: SourceSong, codes: np.ndarray, lyrics: str, cut: int, edit: Edit,
            sampling: SamplingConfig, known: list[float], keys: list[int] | None) -> EditedSong:
    """Decode, keep the source's own audio before the cut (crossfaded in), and say what was done."""
    rate, sr = song.codec.frame_rate, song.codec.sample_rate
    key = keys[0] if keys else None  # where a key-normalised model's audio is moved back to from C
    if cut:
        hop = sr // rate
        at, context = cut * hop, min(cut, int(DECODE_CONTEXT_SECONDS * rate))
        fade = min(int(CROSSFADE_SECONDS * sr), at)
        new = song.decode(codes[:, cut - context :], key)[context * hop - fade :]  # from the crossfade's start on
        kept = _kept_audio(song, source, cut, key)
        ramp = np.linspace(0.0, 1.0, fade, dtype=np.float32)
        audio = np.concatenate([kept[: at - fade], kept[at - fade : at] * (1 - ramp) + new[:fade] * ramp, new[fade:]])
    else:
        audio = song.decode(codes, key)
    settings = {"source": source.name, "edit": dataclasses.asdict(edit), "cut_frame": cut, "cut_s": cut / rate,
                "seconds": codes.shape[1] / rate,
                "genre": source.genre, "lyrics": lyrics, "sampling": sampling.to_dict(), "seed": sampling.seed,
                "checkpoint": str(song.bundle.path), "codec": song.bundle.codec.to_dict()}
    return EditedSong(codes.astype(np.int16), audio.astype(np.float32), sr, lyrics, cut, settings, known,
                      tuple(keys or ()))


def _kept_audio(song, source: SourceSong, cut: int, key: int | None) -> np.ndarray:
    """The source's audio, at least up to the cut: its WAV when given, else its codes decoded (in `key`)."""
    hop = song.codec.sample_rate // song.codec.frame_rate
    if source.audio is not None and len(source.audio) >= cut * hop:
        return np.asarray(source.audio, dtype=np.float32)
    return song.decode(np.asarray(source.codes), key)
