"""Per-codebook cross-entropy on held-out songs, and the design's research question: does the
model use the lyrics and the genre? Each song is scored under its true conditioning and under
altered ones (another song's lyrics with the true genre, no lyrics, another genre, the null
memory); the gain is CE(altered) - CE(true) in nats per token, with a bootstrap 95% interval
over songs. Whole songs are scored in consecutive windows at their absolute frame positions.
"""
from __future__ import annotations

import dataclasses

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from autosong.manifests import DatasetCard, UNUSED_SLOT, require_same_keys
from autosong.manifests.codec_identity import require_same_codec
from autosong.manifests.dataset import Dataset
from autosong.manifests.errors import AutoSongError
from autosong.manifests.shard_reader import Sample
from autosong.model.bundle import Bundle
from autosong.model.lyrics import default_tokenizer
from autosong.model.padding import line_inputs, text_inputs

CONDITIONS = ("true", "shuffled_lyrics", "empty_lyrics", "swapped_genre", "null_memory")


def load_split(data: str | Dataset, split: str, max_songs: int | None = None,
               model: Bundle | None = None) -> tuple[DatasetCard, list[Sample]]:
    """The dataset card and a split's songs (the first `max_songs` in key order), decoded; with
    `model`, each song's genre token is the model's slot for its genre name (refused in one line
    when the model never learned a genre of these songs, or learned songs moved to C and these are
    not, or the other way round). `data`: an open Dataset, or its path."""
    dataset = Dataset.of(data)
    if model is not None:
        require_same_keys(model.key_normalised, dataset.card, str(dataset.path), str(model.path))
    songs = dataset.samples(split, max_songs)
    return dataset.card, songs if model is None else in_model_genre_slots(songs, dataset.path, model)


def in_model_genre_slots(songs: list[Sample], data: str | Path, model: Bundle) -> list[Sample]:
    """Copies of the songs with their genre token moved to the slot `model` learned their genre in
    (two builds may number the same genres apart); the songs given are left as they are."""
    unknown = sorted({s.genre for s in songs} - set(model.genres))
    if unknown:
        raise AutoSongError(f"{data} holds songs of genre(s) {', '.join(map(repr, unknown[:5]))}, which {model.path} "
                            f"never learned (it knows {', '.join(model.genres)}): evaluate it on songs of its genres, "
                            f"or fine-tune it on these first (`autosong train --init-from {model.path}`)")
    tok = default_tokenizer()
    return [dataclasses.replace(s, text=np.concatenate([[tok.genre_id(model.genres.index(s.genre))], s.text[1:]])
                                .astype(s.text.dtype)) for s in songs]


def _conditions(songs: list[Sample], genres: list[str], seed: int, times: bool = True) -> dict[str, list[tuple]]:
    """For every condition, per song: (text ids, BERT states, use null memory, timed lines or None).
    A timed-prior model reads the lines' times (with `times`): the song's own, and under
    shuffled lyrics the other song's, stretched to this song's length."""
    tok = default_tokenizer()
    n = len(songs)
    rng = np.random.default_rng(seed)
    shift = 1 + int(rng.integers(0, max(1, n - 1)))  # a rotation: nobody keeps their own lyrics
    out = {c: [] for c in CONDITIONS}
    slots = [genres.index(s.genre) if s.genre in genres else 0 for s in songs]  # the model's slots
    for i, song in enumerate(songs):
        genre_tok = song.text[:1]
        other = songs[(i + shift) % n] if n > 1 else song
        own = song.line_timing() if times else None
        theirs = None
        if times:
            frames, line_slots = other.line_timing()
            theirs = (frames * (song.codes.shape[1] / max(1, other.codes.shape[1])), line_slots)
        out["true"].append((song.text, song.bert, False, own))
        out["shuffled_lyrics"].append((np.concatenate([genre_tok, other.text[1:]]), other.bert, False, theirs))
        out["empty_lyrics"].append((genre_tok, None if song.bert is None else song.bert[:0], False, None))
        choices = [g for g in range(len(genres)) if g != slots[i] and genres[g] != "unknown"
                   and genres[g] != UNUSED_SLOT.format(g)]
        choices = choices or [g for g in range(len(genres)) if g != slots[i]] or [slots[i]]
        swapped = np.concatenate([[tok.genre_id(int(rng.choice(choices)))], song.text[1:]])
        out["swapped_genre"].append((swapped, song.bert, False, own))
        out["null_memory"].append((song.text, song.bert, True, own))
    return out


def _new_score(C: int) -> dict:
    return {"ce_sum": np.zeros(C), "n": np.zeros(C), "correct": np.zeros(C), "pos_sum": np.zeros(10), "pos_n": np.zeros(10)}


@torch.no_grad()
def _score_all(model, songs: list[Sample], conditions: dict, batch_tokens: int | None = None) -> dict[str, list[dict]]:
    """Token-level CE and top-1 per codebook, and CE per tenth of the song, for every condition
    and song. Songs are cut into consecutive windows at their absolute frame positions; windows
    of similar length (any song, any condition) share a forward pass on the model's device, up to
    `batch_tokens` audio tokens (default 4 training windows). Padding changes no other window's
    scores (tests/model/test_transformer.py)."""
    cfg = model.cfg
    C, W = cfg.num_codebooks, cfg.window_frames
    budget = batch_tokens or 4 * cfg.max_tokens
    out = {c: [_new_score(C) for _ in songs] for c in conditions}
    jobs = []  # (condition, song index, first frame, frames)
    for c in conditions:
        for i, song in enumerate(songs):
            T = min(song.codes.shape[1], cfg.max_frames)  # frames past max_frames have no position
            jobs += [(c, i, start, min(start + W, T) - start) for start in range(0, T, W)]
    jobs.sort(key=lambda j: j[3])
    batch: list = []
    for job in jobs:
        if batch and (len(batch) + 1) * job[3] * C > budget:
            _score_batch(model, songs, conditions, batch, out)
            batch = []
        batch.append(job)
    if batch:
        _score_batch(model, songs, conditions, batch, out)
    return out


def _score_batch(model, songs: list[Sample], conditions: dict, batch: list, out: dict) -> None:
    cfg, dev = model.cfg, next(model.parameters()).device
    C, B = cfg.num_codebooks, len(batch)
    F_max = max(j[3] for j in batch)
    texts = [conditions[c][i] for c, i, _, _ in batch]  # (ids, bert, null, lines)
    codes = torch.zeros(B, C, F_max, dtype=torch.long)
    for b, (c, i, start, frames) in enumerate(batch):
        codes[b, :, :frames] = torch.from_numpy(songs[i].codes[:, start : start + frames].astype(np.int64))
    text = {k: v.to(dev) for k, v in text_inputs([t[0] for t in texts],
                                                   [t[1] for t in texts] if texts[0][1] is not None else None).items()}
    lengths = torch.tensor([j[3] for j in batch], device=dev)
    starts = torch.tensor([j[2] for j in batch], device=dev)
    song_frames = torch.tensor([songs[i].codes.shape[1] for _, i, _, _ in batch], device=dev)
    drop = torch.tensor([t[2] for t in texts], device=dev)
    lines = {k: v.to(dev) for k, v in line_inputs([t[3] for t in texts]).items()}
    logits, pb = model(codes.to(dev), lengths, starts, text["text_ids"], text["text_mask"], text.get("bert"),
                       text.get("bert_mask"), cond_drop=drop, song_frames=song_frames, **lines)
    targets = pb.targets.masked_fill(~pb.valid, 0)
    ce = F.cross_entropy(logits.float().flatten(0, 2), targets.flatten(), reduction="none").view(targets.shape)
    hit = logits.argmax(-1) == targets
    ce_f = model.pattern.to_frames(ce, F_max).cpu().numpy()  # [B, C, F_max]
    hit_f = model.pattern.to_frames(hit, F_max).cpu().numpy()
    for b, (c, i, start, frames) in enumerate(batch):
        r, T = out[c][i], songs[i].codes.shape[1]
        r["ce_sum"] += ce_f[b, :, :frames].sum(1)
        r["correct"] += hit_f[b, :, :frames].sum(1)
        r["n"] += frames
        tenth = np.minimum(9, ((start + np.arange(frames)) * 10) // T)
        np.add.at(r["pos_sum"], tenth, ce_f[b, :, :frames].sum(0))
        np.add.at(r["pos_n"], tenth, C)


MIN_SONGS_FOR_INTERVAL = 20  # fewer: a bootstrap over so few songs says little


def format_interval(mean: float, ci: list[float], songs: int) -> str:
    """'+0.0854  [+0.0499, +0.1247]  n=69', with a warning when n is too small to mean much."""
    text = f"{mean:+.4f}  [{ci[0]:+.4f}, {ci[1]:+.4f}]  n={songs}"
    if songs < MIN_SONGS_FOR_INTERVAL:
        text += f"  (warning: fewer than {MIN_SONGS_FOR_INTERVAL} songs; this interval means little)"
    return text


def bootstrap_ci(values: np.ndarray, seed: int, resamples: int = 2000) -> list[float]:
    if len(values) < 2:
        return [float(values.mean()), float(values.mean())] if len(values) else [math.nan, math.nan]
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), size=(resamples, len(values)))].mean(1)
    return [float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))]


def evaluate(bundle: Bundle, data: str | Dataset, split: str = "val", max_songs: int | None = None, seed: int = 0,
             times: bool = True) -> dict:
    """The CE table and the conditioning gains, on the device the bundle's model is on. A model
    trained with align_source timed reads the songs' line times (lyrics.lrc) unless `times` is off."""
    data = Dataset.of(data)
    card, songs = load_split(data, split, max_songs, bundle)
    require_same_codec(card.codec, bundle.codec, f"{data.path}'s codes and those the model {bundle.path} was trained on",
                       "evaluate on data built with the same codec")
    model = bundle.model.eval()
    if card.text.get("frontend") != "bert":
        data.refuse_texts_longer_than(model.cfg.max_text_len)
    C = model.cfg.num_codebooks
    conditions = _conditions(songs, bundle.genres, seed, times)
    per_song = _score_all(model, songs, conditions)
    true = per_song["true"]
    ce_sum = sum(r["ce_sum"] for r in true)
    n = sum(r["n"] for r in true)
    correct = sum(r["correct"] for r in true)
    ce = ce_sum / n
    names = [f"q{c}" for c in range(C)]
    mean_ce = float(ce_sum.sum() / n.sum())
    result = {
        "checkpoint": str(bundle.path), "step": bundle.step, "data": str(data.path), "split": split,
        "songs": len(songs), "tokens": int(n.sum()),
        "ce": {**dict(zip(names, ce.tolist())), "mean": mean_ce},
        "bits": {**dict(zip(names, (ce / math.log(2)).tolist())), "mean": mean_ce / math.log(2)},
        "perplexity": {**dict(zip(names, np.exp(ce).tolist())), "mean": math.exp(mean_ce)},
        "accuracy": {**dict(zip(names, (correct / n).tolist())), "mean": float(correct.sum() / n.sum())},
        "ce_by_position": (sum(r["pos_sum"] for r in true) / np.maximum(1, sum(r["pos_n"] for r in true))).tolist(),
        "timed_songs": sum(len(s.line_timing()[1]) > 0 for s in songs),  # with lyrics.lrc line times
        "times_read": bool(times and model.cfg.align_source == "timed"),  # by the prior (align_source timed)
    }
    result["ce_conditions"], result["conditioning_gain"] = conditioning_gains(per_song, seed)
    if model.cfg.song_key:
        result["song_key"] = key_agreement(model, songs)
    return result


@torch.no_grad()
def key_agreement(model, songs: list[Sample]) -> dict:
    """How often the key head (model.song_key) names a key the build heard in the song (one of
    those, where the audio fits several as well), over the songs whose key was heard: what
    generation's key is worth when none is given."""
    known = [s for s in songs if s.key_signatures]
    if not known:
        return {"songs": 0, "agree": 0, "share": math.nan}
    device, agree = next(model.parameters()).device, 0
    for start in range(0, len(known), 64):
        part = known[start : start + 64]
        inputs = text_inputs([s.text for s in part])
        called_for = model.text.key_logits(inputs["text_ids"].to(device), inputs["text_mask"].to(device)).argmax(-1)
        agree += sum(int(k) in s.key_signatures for k, s in zip(called_for.tolist(), part))
    return {"songs": len(known), "agree": agree, "share": agree / len(known)}


def conditioning_gains(per_song: dict[str, list[dict]], seed: int) -> tuple[dict, dict]:
    """(token-averaged CE per condition, gain per altered condition). A song's gain is its CE
    under the altered condition minus its CE under the true one; the gain reported is the mean
    over songs (every song weighs the same, however long), with a bootstrap interval."""
    song_ce = {c: np.array([r["ce_sum"].sum() / r["n"].sum() for r in rows]) for c, rows in per_song.items()}
    ce = {c: float(sum(r["ce_sum"].sum() for r in rows) / sum(r["n"].sum() for r in rows))
          for c, rows in per_song.items()}
    gains = {}
    for c in per_song:
        if c != "true":
            gain = song_ce[c] - song_ce["true"]
            gains[c] = {"mean": float(gain.mean()), "ci95": bootstrap_ci(gain, seed), "songs": len(gain)}
    return ce, gains


def format_table(result: dict) -> str:
    keys = [k for k in result["ce"] if k != "mean"] + ["mean"]
    lines = [f"{result['split']}: {result['songs']} songs, {result['tokens']:,} tokens (step {result['step']})",
             f"{'codebook':<9}{'CE nats':>9}{'bits':>7}{'ppl':>9}{'top-1':>8}"]
    for k in keys:
        lines.append(f"{k:<9}{result['ce'][k]:9.3f}{result['bits'][k]:7.2f}{result['perplexity'][k]:9.1f}"
                     f"{result['accuracy'][k]:8.1%}")
    lines += ["", "conditioning gain, nats/token (CE altered - CE true), 95% CI over songs:"]
    for name, g in result["conditioning_gain"].items():
        lines.append(f"  true vs {name:<16} {format_interval(g['mean'], g['ci95'], g['songs'])}")
    key = result.get("song_key")
    if key and key["songs"]:
        lines.append(f"song key: the key head names the key heard in {key['agree']} of {key['songs']} songs "
                     f"({key['share']:.0%})")
    return "\n".join(lines)
