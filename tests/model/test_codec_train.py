"""`autosong codec train`: a codec that quantizes without collapse and loads as `--codec DIR`."""
import json

import numpy as np
import pytest

from autosong.model.codec import Codec
from tests.eval.test_eval import autosong


def _synth_song(seed: int, seconds: float = 6.0):
    import soxr

    from autosong.model.lyrics import default_tokenizer
    from autosong.model.synth_music import GENRES, SAMPLE_RATE, make_lyrics, note_timeline, render_song, song_seconds

    tok = default_tokenizer()
    rng = np.random.default_rng([777, seed])
    genre = sorted(GENRES)[seed % len(GENRES)]
    lyrics = make_lyrics(rng, seconds, genre, tok)
    stereo = render_song(lyrics, genre, song_seconds(lyrics, genre, tok), rng, tok)
    wav = soxr.resample(stereo.mean(1), SAMPLE_RATE, 24_000, quality="HQ").astype(np.float32)
    return wav, note_timeline(lyrics, genre, tok)


def test_codec_train_quantizes_without_collapse_and_saves_a_loadable_codec(tmp_path):
    from autosong.train.codec.config import CodecTrainConfig
    from autosong.train.codec.trainer import train_codec

    cfg = CodecTrainConfig(steps=20, songs=2, song_seconds=3.0, ae_warmup=0.5, save_every=10, threads=1,
                           num_filters=32)  # half the default width: what this guards is the quantizer's start
    log = train_codec(cfg, tmp_path / "codec", log=lambda *_: None)
    rows = {row["step"]: row for row in log["history"]}  # logged: the first quantized step and the last
    assert set(rows) == {11, 20} and all(np.isfinite(row["loss"]) for row in rows.values())
    # the regression this guards: every frame of the batch on one code as quantization starts
    # (codebooks seeded from real encoder frames, exact distances); 4 crops x 22 frames here
    assert min(rows[11]["codes_used"]) >= 10, rows[11]["codes_used"]
    codec = Codec.load(str(tmp_path / "codec"))
    assert codec.num_codebooks == 2 and codec.frame_rate == 75 and codec.codebook_size == 1024
    wav, _ = _synth_song(0, 3.0)
    codes = codec.encode(wav, 24_000)
    assert codes.shape == (2, -(-len(wav) // 320)) and 0 <= codes.min() and codes.max() < 1024
    assert json.loads((tmp_path / "codec/train.json").read_text())["config"]["steps"] == 20


def test_centering_the_latents_leaves_the_codec_unchanged():
    """The saved codec's latents have ~zero mean (transformers' fp32 distances stay exact) and
    the fold changes nothing else: same reconstruction to float precision."""
    import torch
    from transformers import EncodecModel

    from autosong.train.codec.config import CodecTrainConfig, encodec_config
    from autosong.train.codec.data import random_crops, training_audio
    from autosong.train.codec.vq import center_latents

    torch.manual_seed(0)
    cfg = CodecTrainConfig(songs=2, song_seconds=3.0)
    model = EncodecModel(encodec_config(cfg)).eval()
    clips = training_audio(cfg, 24_000)
    x = random_crops(clips, 2, 7040, np.random.default_rng(1))[:, None]
    with torch.no_grad():
        before_z, before_y = model.encoder(x), model.decoder(model.encoder(x))
        center_latents(model, clips, 7040, np.random.default_rng(2))
        after_z, after_y = model.encoder(x), model.decoder(model.encoder(x))
    assert after_z.mean((0, 2)).norm() < 0.05 * before_z.mean((0, 2)).norm()
    assert torch.allclose(after_y, before_y, atol=1e-6)


def test_codec_train_cli(tmp_path):
    out = autosong("codec", "train", "--out", str(tmp_path / "c"), "--steps", "4", "--songs", "1",
                   "--song-seconds", "2", "--save-every", "4", "--threads", "1", "--num-filters", "16",
                   "--hidden-size", "8", "--decoder-channels", "32", "--decoder-blocks", "1")  # small: the command, not the codec
    assert out.returncode == 0, out.stderr[-2000:]
    assert (tmp_path / "c/model.safetensors").exists() and "--codec" in out.stdout
    bad = autosong("codec", "fly")
    assert bad.returncode == 2 and "usage: autosong codec check" in bad.stderr and "autosong codec train" in bad.stderr
    clash = autosong("codec", "train", "--out", str(tmp_path / "d"), "--num-filters", "16", "--hidden-size", "32")
    assert clash.returncode == 2 and "Traceback" not in clash.stderr and "--hidden-size at most --num-filters" in clash.stderr


def test_codec_strides_must_make_75_frames_a_second():
    from autosong.train.codec.config import CodecTrainConfig, encodec_config

    one = encodec_config(CodecTrainConfig(upsampling_ratios="320", num_filters=4, hidden_size=8,
                                                encoder_init="random"))
    assert one.upsampling_ratios == [320] and one.frame_rate == 75
    with pytest.raises(ValueError, match="product must be 320"):
        encodec_config(CodecTrainConfig(upsampling_ratios="8,5,4"))
    with pytest.raises(ValueError, match="--encoder-init fourier needs two strides"):
        encodec_config(CodecTrainConfig(upsampling_ratios="320"))


def test_codec_train_reads_a_corpus_folder_and_skips_what_does_not_decode(tmp_path):
    from autosong.pipeline.synth import synth_corpus
    from autosong.train.codec.data import corpus_audio

    synth_corpus(tmp_path / "c", songs=2, seconds=2, seed=3)
    broken = tmp_path / "c/song_broken"
    broken.mkdir()
    (broken / "audio.mp3").write_bytes(b"not audio at all")
    said = []
    clips = corpus_audio(tmp_path / "c", songs=8, seconds=1.5, sample_rate=24_000, log=said.append)
    assert len(clips) == 2 and all(len(c) == 36_000 for c in clips)  # the first 1.5 s of each
    assert len(said) == 1 and said[0].startswith(f"skipped {broken / 'audio.mp3'}: not a readable audio file")


def test_a_codec_for_key_normalised_builds_learns_from_songs_moved_to_c():
    """--key-normalise: the songs (not the reference signal) are moved as the build moves them, so
    each is heard in C, where the same songs unmoved are not all."""
    from autosong.codec_cli import train_parser
    from autosong.model.song_key import key_signatures
    from autosong.train.codec.config import CodecTrainConfig
    from autosong.train.codec.data import training_audio

    assert train_parser().parse_args(["--out", "x", "--key-normalise"]).key_normalise is True
    assert train_parser().parse_args(["--out", "x"]).key_normalise is False
    plain = training_audio(CodecTrainConfig(songs=6, song_seconds=8.0), 24_000)
    moved = training_audio(CodecTrainConfig(songs=6, song_seconds=8.0, key_normalise=True), 24_000)
    assert np.array_equal(plain[0], moved[0]) and len(moved) == 7
    heard = [key_signatures(wav, 24_000)[0] for wav in plain[1:]]
    assert any(key != 0 for key in heard), heard
    assert [key_signatures(wav, 24_000)[0] for wav in moved[1:]] == [0] * 6
