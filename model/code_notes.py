"""Which note each code of the codec's first codebook sounds, and drawing that codebook note by
note (`NoteHold`, what the sampler does with `SamplingConfig.note_hold`).

The table comes from the codec alone: every code held for a moment, decoded without the other
codebooks (the first one is the coarse sound, the rest refine it), pitch-tracked (model/pitch.py).
Within one sung note the first codebook runs through several codes (five for one note of a demo
song), so a code change is not a note change. On the demo's corpus this table names the pitch
tracked from the decoded songs on 86 % of voiced frames (bench/RESULTS.md, "Singing, fifth round").
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from autosong.model.pitch import pitch_track

UNVOICED = -1     # a code that sounds no pitch for most of its held frames
HELD_FRAMES = 24  # how long each code is held; a quarter at each end is left out (the decoder's edges)
METHOD = f"held{HELD_FRAMES}-v1"  # in the cache's key: a new way of finding notes finds them anew
_FOUND: dict = {}  # codec identity -> its table, within a process


def code_notes(codec) -> np.ndarray:
    """int64 [codebook_size]: the MIDI note (rounded) each first-codebook code sounds when held,
    or UNVOICED. `codec`: a model/codec.py Codec. Found once per codec on a machine (about 10 s
    for 1,024 codes on 2 CPU cores) and kept in cache_folder(), keyed by the codec's weights."""
    if codec.identity not in _FOUND:
        path = cache_folder() / f"{_key(codec.identity)}.npy"
        table = _read(path, codec.codebook_size)
        if table is None:
            table = _held_code_notes(codec)
            _write(path, table)
        _FOUND[codec.identity] = table
    return _FOUND[codec.identity]


def cache_folder() -> Path:
    """$AUTOSONG_CACHE/code_notes, else $XDG_CACHE_HOME/autosong/code_notes (~/.cache by default)."""
    root = os.environ.get("AUTOSONG_CACHE") or Path(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"),
                                                     "autosong")
    return Path(root) / "code_notes"


def _key(identity) -> str:
    return hashlib.sha256(f"{identity.config_sha256}/{identity.weights_sha256}/{METHOD}".encode()).hexdigest()[:32]


def _read(path: Path, size: int) -> np.ndarray | None:
    """A cached table, or None where there is none or it is not one (a torn or foreign file)."""
    try:
        table = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None
    return table if table.shape == (size,) and table.dtype == np.int64 else None


def _write(path: Path, table: np.ndarray) -> None:
    """Whole or not at all (a temporary file renamed); a folder that cannot be written only means the
    table is found again next time."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".tmp", delete=False) as f:
            try:
                np.save(f, table, allow_pickle=False)
            except OSError:
                os.unlink(f.name)
                raise
        os.replace(f.name, path)
    except OSError:
        pass


@torch.inference_mode()
def _held_code_notes(codec, batch: int = 128) -> np.ndarray:
    size = codec.codebook_size
    notes = np.full(size, UNVOICED, np.int64)
    held = torch.arange(size, device=codec.device)[:, None].expand(size, HELD_FRAMES)
    edge = HELD_FRAMES // 4
    for first in range(0, size, batch):
        embedding = codec.model.quantizer.decode(held[None, first:first + batch])  # the first codebook alone
        sound = codec.model.decoder(embedding)[:, 0].float().cpu().numpy()  # [B, samples]
        for i, wav in enumerate(sound):
            track = pitch_track(wav, codec.sample_rate, hop=1 / codec.frame_rate)[edge:-edge]
            voiced = track[~np.isnan(track)]
            if 2 * len(voiced) > len(track):
                notes[first + i] = int(np.round(np.median(voiced)))
    return notes


def note_classes(notes: np.ndarray) -> np.ndarray:
    """int64 [V]: each code's note as an index 0..K-1 (the notes a table holds, in order)."""
    return np.unique(notes, return_inverse=True)[1].reshape(-1).astype(np.int64)


class NoteHold:
    """Codebook 0 drawn note first. The probabilities of the codes that sound one note are pooled,
    the note the song is on gets a bonus, a note is drawn (argmax at temperature 0), then a code
    among that note's with the sampler's own settings. The bonus is `bonus` nats on a note's first
    frame and fades to none over `fade` frames: a note just begun is held, so the song does not
    flutter through notes of a frame or three (blips no lyric asked for), and a note sung for
    `fade` frames is left as soon as the model prefers another. A note whose sound is spread over
    several codes is not outvoted by one code of another, as a low temperature over codes would
    have it."""

    def __init__(self, notes: np.ndarray, bonus: float, fade: int, device: torch.device | str):
        self.note = torch.as_tensor(note_classes(notes), device=device)  # [V]: the note of each code
        self.count = int(self.note.max()) + 1
        self.bonus, self.fade = bonus, max(1, fade)

    def pick(self, logits: torch.Tensor, before: torch.Tensor, draw_code, temperature: float,
             gen: torch.Generator) -> torch.Tensor:
        """logits [B, V] (guidance mixed), before [B, F]: codebook 0's codes of the frames before
        (only the last `fade` + 1 are read; F = 0 at a song's start), draw_code(logits [B, V]) ->
        codes [B]: the sampler's draw. Returns codes [B]."""
        probs = logits.float().softmax(-1)
        pooled = torch.zeros(probs.shape[0], self.count, device=probs.device).index_add_(1, self.note, probs)
        score = pooled.clamp_min(1e-30).log()
        if before.shape[-1]:
            sung = self.note[before[:, -(self.fade + 1):]]  # [B, <= fade + 1]
            run = (sung == sung[:, -1:]).flip(-1).long().cumprod(-1).sum(-1)  # frames the last note has lasted
            bonus = self.bonus * (1 - (run - 1).float() / self.fade).clamp_min(0)
            score = score.scatter_add(1, sung[:, -1:], bonus[:, None])
        if temperature <= 0:
            note = score.argmax(-1)
        else:
            note = torch.multinomial((score / temperature).softmax(-1), 1, generator=gen)[:, 0]
        return draw_code(logits.masked_fill(self.note[None, :] != note[:, None], float("-inf")))
