"""Where a song sings each lyric line, read from the model's cross-attention (LRC out).

A trained model's cross-attention reads the lyrics as the song goes, and some of its heads follow
the sung line closely. `choose_heads` ranks every (layer, head) by the attention it puts on the
line being sung, in held-out songs whose true line times are known (lyrics.lrc), and keeps the
best, with how late they find first lines and later lines there (medians, which the readout
takes off); the bundle records both (RUN/export/alignment.json). `line_times` reads each line's start
from those heads' map with a monotonic path over (frame, line), a Viterbi/DTW that moves one line
at a time and visits every line, never a per-frame argmax. From the path: lines sung for less
than a note (skipped), and lines the attention goes back to after the path left them (repeated).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from autosong.manifests.errors import AutoSongError
from autosong.model.attention import per_frame
from autosong.model.lyrics import default_tokenizer, lyric_words, normalize_lyrics, without_tags
from autosong.model.sung_rates import DEFAULT_RATES, line_units, sung_rates

ALIGNMENT_FILE = "alignment.json"
TRUTH = "lines with words"  # what choose_heads scores against (true_line_starts), recorded with the choice
NOTE_SECONDS = 0.2  # a line sung for less than this was skipped; attention back on a line this long repeats it
MAX_HEADS = 8


@dataclass
class AlignmentHeads:
    """The heads whose mean map aligns best, how late their path finds a song's first line and
    its later lines (seconds, the median over the songs they were chosen on: the readout subtracts
    them), and what they were chosen on (data, split, songs, each candidate's score, the onset
    errors of the choice)."""
    heads: list[tuple[int, int]]
    chosen_on: dict = field(default_factory=dict)
    offsets: tuple[float, float] = (0.0, 0.0)  # (first line, later lines); files from before them: none

    @property
    def scored_on_stamps(self) -> bool:
        """Chosen on true times before they were the lines with words (true_line_starts): a
        section tag's own stamp counted as a line. Eval chooses such heads again."""
        timed_choice = "lines" in self.chosen_on and "method" not in self.chosen_on  # not by focus, not by hand
        return timed_choice and self.chosen_on.get("truth") != TRUTH

    @property
    def usual_rates(self) -> tuple[float, float]:
        """The 5th and 95th percentile syllables per second of the lines the heads were chosen on."""
        low, high = self.chosen_on.get("sung_rate", DEFAULT_RATES)
        return float(low), float(high)

    def save(self, directory: Path) -> None:
        body = {"heads": [list(h) for h in self.heads], "offsets_s": list(self.offsets), "chosen_on": self.chosen_on}
        (Path(directory) / ALIGNMENT_FILE).write_text(json.dumps(body, indent=2))

    @classmethod
    def load(cls, directory: Path) -> "AlignmentHeads | None":
        path = Path(directory) / ALIGNMENT_FILE
        if not path.exists():
            return None
        try:
            body = json.loads(path.read_text())
            first, later = body.get("offsets_s", (0.0, 0.0))
            return cls([(int(a), int(b)) for a, b in body["heads"]], body.get("chosen_on", {}),
                       (float(first), float(later)))
        except (ValueError, KeyError, TypeError) as err:
            raise AutoSongError(f"{path} is damaged ({err}): delete it and run `autosong eval` on data "
                                f"with lyrics.lrc to choose the alignment heads again") from None


def line_states(line_slots: np.ndarray, L: int) -> np.ndarray:
    """The state each memory slot belongs to: 0 before the first line (tags, the first line
    break), i + 1 for line i (its first word's slot up to the next line's), -1 the genre slot."""
    state = np.searchsorted(np.asarray(line_slots), np.arange(L), side="right")
    state[0] = -1
    return state


def state_mass(amap: np.ndarray, line_slots: np.ndarray) -> np.ndarray:
    """Attention per frame on each state (before the lyrics, line 0 ... line N-1): amap [T, L]
    -> [T, N + 1], renormalised over the lyric slots (the genre slot, free to every frame, left out)."""
    T, L = amap.shape
    state = line_states(line_slots, L)
    mass = np.zeros((T, len(line_slots) + 1))
    lyric = state >= 0
    np.add.at(mass.T, state[lyric], amap[:, lyric].T)
    return mass / np.maximum(mass.sum(1, keepdims=True), 1e-12)


def monotonic_path(mass: np.ndarray, opening: bool = False) -> np.ndarray:
    """The state of each frame on the best path that starts in state 0 or 1, ends in the last,
    and moves at most one state per frame: max sum of log mass (Viterbi). mass [T, K] -> [T].
    opening: the frames are a song's first ones only, so the path ends wherever it is best."""
    T, K = mass.shape
    if T < K - 1 and not opening:
        raise AutoSongError(f"{K - 1} lyric lines cannot start within {T} frames of audio")
    score = np.log(mass + 1e-6)
    best = np.full(K, -np.inf)
    best[:2] = score[0, :2]
    moved = np.zeros((T, K), dtype=bool)
    for t in range(1, T):
        advance = np.concatenate([[-np.inf], best[:-1]])
        moved[t] = advance > best
        best = np.maximum(best, advance) + score[t]
    path = np.empty(T, dtype=np.int64)
    path[-1] = int(np.argmax(best)) if opening else K - 1
    for t in range(T - 1, 0, -1):
        path[t - 1] = path[t] - moved[t, path[t]]
    return path


@dataclass
class LineTimes:
    starts: list[float]     # seconds, one per line
    skipped: list[int]      # lines the path spent less than a note on
    repeated: list[int]     # lines the attention returned to for a note or more after the path left them
    doubt: str | None = None  # why these times are not to be trusted (weak_alignment), when they are not


def line_times(amap: np.ndarray, line_slots, frame_rate: float, note_s: float = NOTE_SECONDS,
               offsets: tuple[float, float] = (0.0, 0.0), opening: bool = False) -> LineTimes:
    """Each line's start, and the lines skipped or repeated, from a cross-attention map [T, L]
    (frames x memory slots) and each line's first memory slot. `offsets`: how late the path finds
    the first line and the later ones (AlignmentHeads.offsets), taken off the starts. opening:
    the map is of a song's first frames only, so only the lines that start in them are timed."""
    line_slots = np.asarray(line_slots)
    mass = state_mass(np.asarray(amap, dtype=np.float64), line_slots)
    path = monotonic_path(mass, opening)
    N, note = int(path[-1]) if opening else len(line_slots), max(1, round(note_s * frame_rate))
    first = np.searchsorted(path, np.arange(1, N + 1))  # the first frame of each line's state
    frames = np.bincount(path, minlength=N + 1)[1:]
    sung_on = N - 1 if opening else N  # an opening's last line goes on past its end: not skipped for being short
    skipped = [i for i in range(sung_on) if frames[i] < note]
    strongest = mass.argmax(1)
    repeated = []
    for i in range(N):
        after = np.flatnonzero(path > i + 1)  # frames after the path left line i
        if len(after) and _longest_run(strongest[after] == i + 1) >= note:
            repeated.append(i)
    return LineTimes([float(t) for t in take_off(first / frame_rate, offsets)], skipped, repeated)


def take_off(starts: np.ndarray, offsets: tuple[float, float]) -> np.ndarray:
    """Line starts (s) less how late the heads find the first line and the later ones, kept in
    order and never before 0."""
    late = np.where(np.arange(len(starts)) == 0, offsets[0], offsets[1])
    return np.maximum.accumulate(np.clip(np.asarray(starts, dtype=np.float64) - late, 0.0, None))


def _median_or_zero(values: list) -> float:
    return float(np.median(values)) if len(values) else 0.0


def _longest_run(flags: np.ndarray) -> int:
    best = run = 0
    for f in flags:
        run = run + 1 if f else 0
        best = max(best, run)
    return best


def onset_errors(found: list[float], truth: list[float]) -> np.ndarray:
    """|found - true| per line, seconds."""
    return np.abs(np.asarray(found) - np.asarray(truth))


def has_words(lyrics: str) -> bool:
    """Whether the lyrics hold a line with words, so there is a line start to read (an instrumental
    track's '[instrumental]' holds none)."""
    return bool(sung_lines(lyrics, default_tokenizer())[0])


def sung_lines(lyrics: str, tokenizer) -> tuple[list[str], list[int]]:
    """The lines of the lyrics that hold words (what an LRC times; tags dropped) and the memory
    slot of each one's first word."""
    words = tokenizer.word_slots(lyrics)
    lines, slots, before = [], [], 0
    for line in normalize_lyrics(lyrics).split("\n"):
        count = len(lyric_words(line))
        if count:
            lines.append(" ".join(without_tags(line).split()))
            slots.append(words[before])
        before += count
    return lines, slots


# ---- the model's maps (teacher-forced over a song's codes, the uniform prior as at generation) ----

def _song_inputs(model, codes, text_ids, heard=None):
    """The model's inputs for one song: codes, ids, mask, T, and the key it is read in (model.song_key):
    of the signatures `heard` in its audio (Sample.key_signatures, song_key.key_signatures; a
    generated song's own key), the one the head likes best, as in training; none heard: the head's key."""
    import torch

    from autosong.model.padding import key_sets  # imports torch; the readout here is numpy alone

    dev = next(model.parameters()).device
    T = min(codes.shape[-1], model.cfg.max_frames)  # frames past max_frames have no position
    codes = torch.as_tensor(np.asarray(codes[:, :T], dtype=np.int64), device=dev)[None]
    ids = torch.as_tensor(np.asarray(text_ids, dtype=np.int64), device=dev)[None]
    mask = torch.ones_like(ids, dtype=torch.bool)
    key = model.text.heard_key(ids, mask, key_sets([heard]).to(dev)) if heard else None
    return codes, ids, mask, torch.tensor([T], device=dev), key


def attention_map(model, codes, text_ids, heads=None, pinned=None, song_frames: int | None = None,
                  heard=None) -> np.ndarray:
    """[T, L]: the mean cross-attention of `heads` (all when None) per frame of a song's codes [C, T].
    pinned: [(frame, memory slot)] of lines known to start there (an edit's kept lines and its
    cut), which the alignment prior passes through, as it did when the song was generated.
    song_frames: the whole song's length when the codes are its opening (the prior's T).
    heard: the key signatures the song's audio fits (_song_inputs); none: the head's key."""
    from autosong.model.padding import line_inputs  # imports torch; the readout here is numpy alone

    codes, ids, mask, T, key = _song_inputs(model, codes, text_ids, heard)
    if song_frames is not None:
        T = T.new_tensor([max(int(song_frames), int(T[0]))])
    lines = None
    if pinned:
        rows = line_inputs([(np.array([f for f, _ in pinned], np.float32), np.array([s for _, s in pinned], np.int64))])
        lines = (rows["line_frames"].to(codes.device), rows["line_slots"].to(codes.device))
    return model.cross_attention_map(codes, ids, mask, song_frames=T, heads=heads, lines=lines,
                                     song_key=key)[0].cpu().numpy()


def keep_known(starts: list[float], known: list[float]) -> list[float]:
    """Line starts with the first len(known) replaced by the known ones, and none after them
    earlier than the last known."""
    k = len(known)
    return [float(t) for t in known] + [max(float(t), float(known[-1])) for t in starts[k:]] if k else list(starts)


def _head_maps(model, codes, text_ids, heads, heard=None) -> np.ndarray:
    """[len(heads), T, L]: each head's own map, in the order given."""
    codes, ids, mask, T, key = _song_inputs(model, codes, text_ids, heard)
    layers = sorted({layer for layer, _ in heads})
    recorders = {layer: (lambda p, hs=[h for l2, h in heads if l2 == layer]: p[0, hs]) for layer in layers}
    maps, pb = model.recorded_attention(recorders, codes, ids, mask, T, song_key=key)
    frames = {layer: per_frame(maps[layer], pb.positions[0], codes.shape[-1]) for layer in layers}
    taken = {layer: 0 for layer in layers}
    out = []
    for layer, _ in heads:
        out.append(frames[layer][taken[layer]].cpu().numpy())
        taken[layer] += 1
    return np.stack(out)


def _line_mass_by_head(model, song) -> np.ndarray:
    """[layers, heads]: the mean attention each head puts on the line being sung (true times)."""
    import torch

    codes, ids, mask, T, key = _song_inputs(model, song.codes, song.text, song.key_signatures)
    line_frames, line_slots = true_line_starts(model, song)
    positions = model.pattern.build(codes, T, torch.zeros_like(T)).positions[0].clamp(max=int(T) - 1)
    sung = np.searchsorted(line_frames, positions.cpu().numpy() + 0.5, side="right")  # state of each step
    on_line = torch.as_tensor(line_states(line_slots, ids.shape[1])[None, :] == sung[:, None], device=codes.device)
    recorders = {layer: (lambda p: (p[0] * on_line).sum(-1).mean(-1)) for layer in range(model.cfg.n_layers)}
    mass, _ = model.recorded_attention(recorders, codes, ids, mask, T, song_key=key)
    return torch.stack([mass[layer] for layer in range(model.cfg.n_layers)]).cpu().numpy()


def onset_error_summary(errors: np.ndarray) -> dict:
    return {"lines": int(len(errors)), "median_s": float(np.median(errors)) if len(errors) else float("nan"),
            "p90_s": float(np.percentile(errors, 90)) if len(errors) else float("nan")}


def true_line_starts(model, song) -> tuple[np.ndarray, np.ndarray]:
    """A timed song's lines with words, as `align` times them: their starts (frames) and first
    memory slots, those within the codes and model.max_frames. lyrics.lrc also stamps a section's
    tag line ([chorus]), which holds no words: the build gives that stamp the slot of the line after
    it, so a line's own start is the last stamp with its slot (the tag's, a break before it, is
    dropped; the timed prior of training keeps it)."""
    frames, slots = song.line_timing()
    own = np.append(slots[1:] != slots[:-1], True)
    frames, slots = frames[own], slots[own]
    kept = frames < min(song.codes.shape[1], model.cfg.max_frames)
    return frames[kept], slots[kept]


def teacher_forced_errors(model, songs, heads, frame_rate: float, offsets=(0.0, 0.0)) -> np.ndarray:
    """|found - true| line starts (s) over held-out songs with lyrics.lrc, with `heads`' map."""
    errors = []
    for song in songs:
        frames, slots = true_line_starts(model, song)
        amap = attention_map(model, song.codes, song.text, heads, heard=song.key_signatures)
        found = line_times(amap, slots, frame_rate, offsets=offsets)
        errors.append(onset_errors(found.starts, frames / frame_rate))
    return np.concatenate(errors) if errors else np.zeros(0)


def choose_heads(model, songs, frame_rate: float, described: dict | None = None) -> AlignmentHeads:
    """The heads to read line times from: every (layer, head) ranked by the attention it puts on
    the sung line of `songs` (held out, with true line times); then the fewest top heads whose
    mean map, its offsets taken off, gives a median onset error within noise of the lowest
    (fewest_within_noise; at most MAX_HEADS)."""
    songs = [s for s in songs if len(s.line_timing()[1])]
    if not songs:
        raise AutoSongError("choosing alignment heads needs held-out songs with lyrics.lrc line times")
    scores = np.mean([_line_mass_by_head(model, s) for s in songs], axis=0)  # [layers, heads]
    order = np.argsort(-scores, axis=None)[:MAX_HEADS]
    ranked = [tuple(int(i) for i in np.unravel_index(o, scores.shape)) for o in order]
    maps = [_head_maps(model, s.codes, s.text, ranked, s.key_signatures) for s in songs]
    truth = [true_line_starts(model, s) for s in songs]
    tried = []  # (offsets, each song's errors) with the top k heads, k = 1, 2, ...
    for k in range(1, len(ranked) + 1):
        found = [np.asarray(line_times(m[:k].mean(0), slots, frame_rate).starts) for m, (_, slots) in zip(maps, truth)]
        late = [f - frames / frame_rate for f, (frames, _) in zip(found, truth)]  # signed, seconds, per song
        offsets = (_median_or_zero([d[0] for d in late if len(d)]), _median_or_zero([x for d in late for x in d[1:]]))
        tried.append((offsets, [onset_errors(take_off(f, offsets), frames / frame_rate)
                                for f, (frames, _) in zip(found, truth)]))
    k = fewest_within_noise([errors for _, errors in tried])
    offsets, errors = tried[k - 1][0], np.concatenate(tried[k - 1][1])
    rates = np.concatenate([sung_rates(frames / frame_rate, s.codes.shape[1] / frame_rate, line_units(s.text, slots))
                            for s, (frames, slots) in zip(songs, truth)])
    rates = rates[rates > 0]  # a line stamped twice (a repeated chorus) has its words once
    return AlignmentHeads(ranked[:k], {**(described or {}), "songs": len(songs), "truth": TRUTH,
                                       **onset_error_summary(errors),
                                       "sung_rate": [round(float(np.percentile(rates, 5)), 3) if len(rates) else 0.0,
                                                     round(float(np.percentile(rates, 95)), 3) if len(rates) else 1e9],
                                       "line_mass": {f"{a}.{b}": round(float(scores[a, b]), 4) for a, b in ranked}},
                          (round(offsets[0], 4), round(offsets[1], 4)))


def fewest_within_noise(per_k: list[list[np.ndarray]], resamples: int = 400) -> int:
    """The fewest heads (1-based k) whose median error is within one standard error of the best
    k's (the error of each song's lines in per_k[k - 1]; the standard error of that median from
    resampling songs): the one-standard-error rule. Averaging more heads fits the songs they are
    chosen on a little better and times unseen songs worse (bench/RESULTS.md, "Singing, twelfth
    round": in five models of six the top head alone timed unseen 10 s songs best)."""
    if not any(len(e) for e in per_k[0]):
        return 1  # no line timed: nothing tells the counts apart
    medians = [np.median(np.concatenate(errors)) for errors in per_k]
    best = int(np.argmin(medians))
    songs = [errors for errors in per_k[best] if len(errors)]  # songs with a timed line
    rng = np.random.default_rng(0)
    draws = [np.median(np.concatenate([songs[i] for i in rng.integers(0, len(songs), len(songs))]))
             for _ in range(resamples)]
    return next(k + 1 for k, m in enumerate(medians) if m <= medians[best] + float(np.std(draws)))


UNTIMED_HEADS = 2  # heads kept when no song says when its lines are sung


def choose_heads_untimed(model, songs, frame_rate: float, described: dict | None = None) -> AlignmentHeads:
    """Alignment heads for a corpus with no lyrics.lrc: every (layer, head) ranked by its focus,
    the mean attention its map puts on the line its own monotonic path says is being sung, over
    `songs`; the best UNTIMED_HEADS, no offsets (nothing to measure them on). A head that follows
    the singing keeps its attention on one line at a time; one that wanders or spreads does not."""
    tok = default_tokenizer()
    heads = [(a, b) for a in range(model.cfg.n_layers) for b in range(model.cfg.n_heads)]
    focus = np.zeros(len(heads))
    used = 0
    for song in songs:
        _, slots = sung_lines(song.lyrics, tok)
        if len(slots) < 2:
            continue
        maps = _head_maps(model, song.codes, song.text, heads, song.key_signatures)
        for i, amap in enumerate(maps):
            mass = state_mass(amap.astype(np.float64), np.asarray(slots))
            path = monotonic_path(mass)
            focus[i] += mass[np.arange(len(path)), path].mean()
        used += 1
    if not used:
        raise AutoSongError("choosing alignment heads needs held-out songs with two lines or more")
    order = np.argsort(-focus)[:UNTIMED_HEADS]
    return AlignmentHeads([heads[i] for i in order],
                          {**(described or {}), "songs": used, "method": "focus: no timed songs",
                           "focus": {f"{a}.{b}": round(float(focus[i] / used), 4) for i, (a, b) in enumerate(heads)}})

