"""`pipeline inspect OUT`: what a built dataset holds, readable at a glance."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

from autosong.manifests import DatasetCard, read_manifest
from autosong.model.song_key import key_name
from autosong.pipeline.code_usage import dataset_code_usage


def text_frontend(text: dict) -> str:
    """What the lyrics front-end does, in words: the script rules of the pinyin vocabulary, or BERT."""
    if text["frontend"] == "bert":
        return f"BERT states from {text['bert_source']}"
    return (f"{text['vocab_version']}: Hanzi as toned pinyin, Latin script as lower-case letters, "
            f"other scripts as UTF-8 bytes")


def keys_line(samples: list[dict], normalised: bool = False) -> str:
    """The key signatures heard in the songs (each song's best, model/song_key.py): how many, the
    commonest three, the unknown (and those several fit as well: the audio cannot tell them apart);
    `normalised`: and that they were moved to C (pipeline build --key-normalise), how far on average."""
    heard = Counter((r.get("key_signatures") or [None])[0] for r in samples)  # the best; None unknown
    unknown = heard.pop(None, 0)
    common = ", ".join(f"{key_name(k)} {n}" for k, n in heard.most_common(3))
    several = sum(len(r.get("key_signatures") or ()) > 1 for r in samples)
    moved = sum(abs(r.get("key_shift") or 0) for r in samples) / max(1, len(samples))
    return (f"keys        {len(heard)} key signature{'s' if len(heard) != 1 else ''} heard"
            + (f"; most: {common}" if common else "") + (f"; {several} songs fit several" if several else "")
            + (f"; unknown {unknown}" if unknown else "")
            + (f"; all moved to C before encoding (--key-normalise), by {moved:.1f} semitones on average"
               if normalised else ""))


def summary(out: str | Path) -> str:
    card = DatasetCard.load(out)
    samples = read_manifest(out, "samples")
    rejects = read_manifest(out, "rejects", missing_ok=True)
    frames = [r["frames"] for r in samples]
    text = [r["text_len"] for r in samples]
    hours = sum(r["duration_s"] for r in samples) / 3600
    splits = Counter(r["split"] for r in samples)
    lines = [
        f"dataset     {Path(out)}",
        f"codec       {card.codec.source}  ({card.num_codebooks} codebooks x {card.codebook_size} codes, "
        f"{card.codec_frame_rate} frames/s)",
        f"text        {text_frontend(card.text)}",
        f"songs       {len(samples)}  (train {splits['train']}, val {splits['val']})   shards {card.counts.get('shards', 0)}",
        f"audio       {hours:.3f} h   " + (f"{min(r['duration_s'] for r in samples):.1f}-"
                                          f"{max(r['duration_s'] for r in samples):.1f} s per song" if samples else ""),
        f"tokens      {sum(frames) * card.num_codebooks:,} audio tokens" + (
            f"   per song {min(frames) * card.num_codebooks:,}-{max(frames) * card.num_codebooks:,}" if frames else ""),
        f"lyrics      {sum(text):,} ids" + (f"   per song {min(text)}-{max(text)}" if text else ""),
        f"timed       {sum(1 for r in samples if r.get('line_starts_s'))} songs with lyrics.lrc line times",
        keys_line(samples, card.key_normalised),
        "",
        "genre                 songs",
    ]
    for genre, n in Counter(r["genre"] for r in samples).most_common():
        lines.append(f"  {genre:<20}{n:>5}")
    usage = dataset_code_usage(out, samples, card.num_codebooks, card.codebook_size)
    lines += ["", usage.line()] + ([usage.warning()] if usage.warning() else [])
    lines += ["", f"rejects     {len(rejects)}"]
    for (stage, reason), n in Counter((r["stage"], r["reason"]) for r in rejects).most_common():
        lines.append(f"  {n:>3} x {stage:<7} {reason}")
    return "\n".join(lines)
