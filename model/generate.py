"""Lyrics + genre -> songs: text ids (or BERT states), sampling, and EnCodec decoding to audio."""
from __future__ import annotations

import math
import time

import numpy as np
import torch

from autosong.manifests.codec_identity import CodecIdentity, require_same_codec
from autosong.manifests.errors import AutoSongError
from autosong.manifests.progress import progress
from autosong.model.bert_text import BertLyrics
from autosong.model.bundle import Bundle, ae_identity, load_bundle
from autosong.model.codec import Codec
from autosong.model.lyrics import default_tokenizer, normalize_genre, normalize_lyrics
from autosong.model.padding import line_inputs, text_inputs
from autosong.model.sampler import Sampler, SamplingConfig


def audio_codec_identity(bundle: Bundle) -> CodecIdentity:
    """The EnCodec behind a bundle: its own codec, or, for a latent-stage model, its autoencoder's."""
    return CodecIdentity.of(bundle.parent["audio_codec"]) if bundle.parent else bundle.codec


def codec_for(bundle: Bundle, source: str | None = None) -> Codec:
    """The EnCodec the model's audio came from (or `source`, if it is the same model)."""
    expected = audio_codec_identity(bundle)
    codec = Codec.load(source or expected.source)
    require_same_codec(codec.identity, expected, f"--codec and the audio {bundle.path} was trained on",
                       f"drop --codec, or pass a copy of {expected.source}")
    return codec


def autoencoder_for(bundle: Bundle) -> Bundle | None:
    """A latent-stage model's autoencoder (its decoder turns latents into EnCodec codes), on the
    model's device."""
    if not bundle.parent:
        return None

    ae = load_bundle(bundle.parent["ae_run"], device=next(bundle.model.parameters()).device)
    require_same_codec(ae_identity(ae), bundle.codec, f"the autoencoder at {bundle.parent['ae_run']} and the latents "
                       f"{bundle.path} was trained on", "it changed since: train the latent model again")
    return ae


def text_batch(bundle: Bundle, lyrics: list[str], genres: list[str], device="cpu") -> dict:
    """Padded text_ids/text_mask (and BERT states) for a list of songs; refuses bad input."""
    tok = default_tokenizer()
    rows = []
    for text, genre in zip(lyrics, genres):
        if not normalize_lyrics(text):
            raise AutoSongError("the lyrics are empty: generation is conditioned on the full lyrics")
        genre = normalize_genre(genre)
        if genre not in bundle.genres:
            raise AutoSongError(f"unknown genre {genre!r}; this model knows: {', '.join(bundle.genres)}")
        rows.append(tok.encode(text, bundle.genres.index(genre)))
        limit = getattr(bundle.model.cfg, "max_text_len", None)
        if limit is not None and len(rows[-1]) > limit:
            raise AutoSongError(f"the lyrics are {len(rows[-1])} tokens; this model reads at most {limit} "
                                f"(model.max_text_len): shorten them")
    states = None
    if bundle.text.get("frontend") == "bert":
        bert = BertLyrics(bundle.text["bert_source"])
        states = [bert.states(t) for t in lyrics]
    return {k: v.to(device) for k, v in text_inputs([torch.tensor(r) for r in rows], states).items()}


def _song_keys(model, song_key: list[int] | None, songs: int, device) -> torch.Tensor | None:
    """The key signatures asked for as the sampler takes them; refused for a model that reads none."""
    if song_key is None:
        return None
    if not model.cfg.song_key:
        raise AutoSongError("this model was not trained with song keys (model.song_key): leave the key out")
    if len(song_key) != songs:
        raise AutoSongError(f"{len(song_key)} keys for {songs} songs")
    return torch.tensor(song_key, dtype=torch.long, device=device)


def _progress_bar(frames: int, frame_rate: float):
    bar = progress(frames, "generating", "frame")

    def update(done, total, elapsed):
        bar.update(done - bar.n)
        bar.set_postfix(realtime=f"x{done / frame_rate / max(elapsed, 1e-9):.2f}")
        if done >= total:
            bar.close()

    return update


def real_time_factor(timing: dict) -> float:
    """RTF as the field defines it: wall seconds per second of audio generated (lower is
    better). The wall time covers sampling and the codec's decoding of the whole batch, not
    loading the model; the audio is one song's, prompt frames excluded."""
    return (timing["seconds_sampling"] + timing.get("seconds_decode", 0.0)) / max(timing["generated_seconds"], 1e-9)


def _prompt_steps(prompt: np.ndarray, ae: Bundle | None, frames: int, seconds: float, frame_rate: int, device,
                  songs: int) -> torch.Tensor:
    """Prompt codes [C, P] -> what every song's sampler continues, [songs, C, P] (a latent model's
    latents); refused when it leaves nothing of the `frames` steps to generate."""
    steps = torch.from_numpy(prompt.astype(np.int64))[None].to(device)
    stride = ae.model.cfg.stride if ae else 1
    if ae is not None:  # a latent model continues the prompt's latents
        steps = ae.model.encode(steps)
    if steps.shape[-1] >= frames:
        given = steps.shape[-1] * stride / frame_rate
        raise AutoSongError(f"the prompt covers {given:.1f} s of the {seconds:g} s asked for: nothing would be "
                            f"generated; ask for more --seconds, or keep less of it with --prompt-seconds")
    return steps.expand(songs, -1, -1)


def generate_codes(bundle: Bundle, lyrics: list[str], genres: list[str], seconds: float, settings: SamplingConfig,
                   frame_rate: int = 75, prompt: np.ndarray | None = None, progress: bool = True,
                   autoencoder: Bundle | None = None, line_starts: list[tuple[float, int]] | None = None,
                   code_notes: np.ndarray | None = None, song_seconds: float | None = None,
                   song_key: list[int] | None = None) -> tuple[np.ndarray, dict]:
    """Returns codes int16 [N, C, frames] and timing figures. Runs where the bundle's model is.
    Songs longer than the training window are generated window by window (model/sampler.py).
    `autoencoder`: a latent model's, if already loaded (else it is loaded from the bundle).
    `line_starts`: (seconds, memory slot of the line's first word) that every song's alignment
    prior passes through (an edit's kept lines and its cut); None: the uniform t/T.
    `code_notes`: the note each codebook-0 code sounds, for settings.note_hold (AutoSong.code_notes_for);
    None: codes are drawn as codes. `song_seconds`: the whole song's length when only its first
    `seconds` are drawn (the alignment prior's song length; default `seconds`). `song_key`: each
    song's key signature (model/song_key.py), for a model.song_key model; None: its key head's."""
    model = bundle.model
    ae = autoencoder if autoencoder is not None else autoencoder_for(bundle)
    stride = ae.model.cfg.stride if ae else 1
    def steps(length: float) -> int:  # model steps: EnCodec frames, or latent positions (rounded up, so that
        return math.ceil(round(length * frame_rate) / stride)  # a latent song decodes to at least the length asked)
    frames = steps(seconds)
    limit = model.cfg.max_frames - model.cfg.num_codebooks
    if frames > limit:
        raise AutoSongError(f"--seconds {seconds:g} is {frames} positions; this model has frame positions for "
                            f"{limit} ({limit * stride / frame_rate:.0f} s, model.max_frames): ask for at most that")
    if frames < 1:
        raise AutoSongError("--seconds must give at least one frame")
    device = next(model.parameters()).device
    batch = text_batch(bundle, lyrics, genres, device)
    prompt_t = None if prompt is None else _prompt_steps(prompt, ae, frames, seconds, frame_rate, device, len(lyrics))
    hook = _progress_bar(frames, frame_rate / stride) if progress else None
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    lines = None
    if line_starts:
        lines = line_inputs([(np.array([t * frame_rate / stride for t, _ in line_starts], np.float32),
                              np.array([slot for _, slot in line_starts], np.int64))] * len(lyrics))
        lines = (lines["line_frames"], lines["line_slots"])
    sampler = Sampler(model, code_notes=code_notes, frame_rate=frame_rate / stride)
    whole = None if song_seconds is None else steps(song_seconds)
    codes = sampler.generate(batch["text_ids"], batch["text_mask"], frames, settings, prompt=prompt_t,
                             bert=batch.get("bert"), bert_mask=batch.get("bert_mask"), progress=hook, lines=lines,
                             song_frames=whole, song_key=_song_keys(model, song_key, len(lyrics), device))
    if ae is not None:
        with torch.no_grad():
            codes = ae.model.decode(codes)  # latents -> EnCodec codes [N, C, frames * stride]
        codes = codes[..., : max(1, int(round(seconds * frame_rate)))]  # the length asked for
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    wall = time.perf_counter() - t0
    prompt_frames = 0 if prompt_t is None else prompt_t.shape[-1] * stride
    timing = {"songs": len(lyrics), "frames": int(codes.shape[-1]), "prompt_frames": int(prompt_frames),
              "steps": model.pattern.steps(frames), "generated_seconds": (codes.shape[-1] - prompt_frames) / frame_rate,
              "seconds_sampling": wall, "device": str(device),
              "dtype": str(next(model.parameters()).dtype).replace("torch.", "")}
    return codes.cpu().numpy().astype(np.int16), timing
