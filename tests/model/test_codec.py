import numpy as np
import pytest

from autosong.model.codec import Codec, CodecUnavailable
from tests.conftest import music_signal


def test_round_trip_shapes_and_frame_rate(codec):
    wav = music_signal(3.0)
    codes = codec.encode(wav, 24_000)
    assert codec.frame_rate == 75 and codec.num_codebooks == 2
    assert codes.dtype == np.int16 and codes.shape == (2, 225)
    assert codes.min() >= 0 and codes.max() < 1024
    out = codec.decode(codes)
    assert out.dtype == np.float32 and out.shape == (225 * 320,)
    assert np.isfinite(out).all() and np.abs(out).max() > 0
    # a length that is not a multiple of the hop rounds up to whole frames
    assert codec.encode(wav[:1000], 24_000).shape == (2, 4)


def test_test_codec_gives_many_distinct_codes_and_is_deterministic(codec):
    wav = music_signal(20.0, seed=3)
    codes = codec.encode(wav, 24_000)
    distinct = [len(np.unique(row)) for row in codes]
    assert min(distinct) >= 100, distinct  # zero codebooks would give 1
    again = Codec.load("test")
    assert again.identity == codec.identity
    np.testing.assert_array_equal(again.encode(wav, 24_000), codes)


def test_windowed_encoding_matches_whole_song_and_bounds_memory(codec):
    wav = music_signal(40.0, seed=1)
    whole = Codec.load("test", window_seconds=1e6).encode(wav, 24_000)
    windowed_codec = Codec.load("test", window_seconds=5.0, context_seconds=2.0)
    chunk_sizes = []
    hook = windowed_codec.model.encoder.register_forward_hook(lambda m, inp, out: chunk_sizes.append(inp[0].shape[-1]))
    windowed = windowed_codec.encode(wav, 24_000)
    hook.remove()
    assert windowed.shape == whole.shape
    # EnCodec is causal: with 2 s of left context, windows agree with one pass almost everywhere
    assert (windowed == whole).mean() > 0.97
    # and no pass ever sees more than window + context of audio
    assert len(chunk_sizes) == 8 and max(chunk_sizes) <= 7 * 24_000
    # decoding in windows matches one-pass decoding too
    np.testing.assert_allclose(windowed_codec.decode(whole), Codec.load("test", window_seconds=1e6).decode(whole), atol=1e-3)


def test_encode_rejects_wrong_rate_and_stereo(codec):
    with pytest.raises(ValueError, match="24000 Hz"):
        codec.encode(np.zeros(4410, np.float32), 44_100)
    with pytest.raises(ValueError, match="mono"):
        codec.encode(np.zeros((2, 4800), np.float32), 24_000)


def test_save_and_load_local_directory(codec, tmp_path):
    codec.save(tmp_path / "codec")
    local = Codec.load(str(tmp_path / "codec"))
    assert local.identity.same_model(codec.identity)
    wav = music_signal(2.0)
    np.testing.assert_array_equal(local.encode(wav, 24_000), codec.encode(wav, 24_000))


def test_unreachable_hub_id_names_the_offline_options(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CodecUnavailable, match="--codec tiny .*autosong codec check"):
        Codec.load("facebook/encodec_24khz_not_cached")


def test_test_codec_identity_does_not_depend_on_thread_count(codec):
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert Codec.load("test").identity == codec.identity
    finally:
        torch.set_num_threads(threads)


def test_encode_many_batches_equal_windows_across_songs():
    codec = Codec.load("test", window_seconds=2.0, context_seconds=1.0)
    wavs = [music_signal(s, seed=i) for i, s in enumerate((7.0, 5.5, 0.01, 9.3))]
    single = [codec.encode(w, 24_000) for w in wavs]
    batches = []
    hook = codec.model.encoder.register_forward_hook(lambda m, inp, out: batches.append(inp[0].shape[0]))
    many = codec.encode_many(wavs, 24_000, batch_windows=4)
    hook.remove()
    # 4 + 3 + 1 + 5 windows; the middle ones (3 s of audio each) of all songs share forwards of 4
    assert max(batches) == 4 and len(batches) < 13
    for one, batched in zip(single, many):
        assert batched.shape == one.shape and batched.dtype == np.int16
        # a batched convolution may sum in another order: near-tie codes may flip, nothing more
        assert (batched == one).mean() > 0.99
    assert codec.encode_many([], 24_000) == []


def test_tiny_codec_loads_offline_with_a_stable_identity(tmp_path):
    tiny = Codec.load("tiny")  # shipped in the package: no download, no training step
    assert tiny.spectral and (tiny.num_codebooks, tiny.codebook_size, tiny.frame_rate) == (2, 1024, 75)
    assert tiny.identity == Codec.load("tiny").identity
    assert tiny.identity.weights_sha256.startswith("9347c206fc49")  # the committed weights, as loaded
    tiny.save(tmp_path / "copy")  # a local copy is the same codec, with the same codes
    copy = Codec.load(str(tmp_path / "copy"))
    assert copy.spectral and copy.identity.same_model(tiny.identity)
    wav = music_signal(2.0)
    np.testing.assert_array_equal(copy.encode(wav, 24_000), tiny.encode(wav, 24_000))


def test_tiny_codec_holds_a_note_that_is_no_multiple_of_the_frame_rate():
    """The hum's regression test: EnCodec's own decoder turns a held note into a waveform that
    repeats every frame, so 415 Hz came back near 450 Hz (6 x 75). Through tiny's VQ it stays."""
    from autosong.eval.audio_metrics import estimate_pitch

    tiny = Codec.load("tiny")
    t = np.arange(2 * 24_000) / 24_000
    for hz in (196.0, 415.3):  # G3 (nearest frame-rate harmonic 225 Hz), G#4 (450 Hz)
        wav = (0.3 * np.sin(2 * np.pi * hz * t) + 0.12 * np.sin(4 * np.pi * hz * t)
               + 0.06 * np.sin(6 * np.pi * hz * t)).astype(np.float32)
        out = tiny.decode(tiny.encode(wav, 24_000))
        midi = 69 + 12 * np.log2(hz / 440)
        assert abs(estimate_pitch(out[12_000:36_000], 24_000) - midi) <= 1.0, hz


def test_codec_check_on_a_generated_stereo_file(tmp_path):
    """`autosong codec check` scores a codec on the user's own audio against noise and `test`."""
    import json
    import subprocess
    import sys

    import soundfile as sf

    from tests.conftest import ROOT, music_signal

    wav = music_signal(6, 44_100)
    (tmp_path / "songs" / "song_a").mkdir(parents=True)
    sf.write(tmp_path / "songs" / "song_a" / "audio.flac", np.stack([wav, 0.5 * wav], 1), 44_100)  # stereo, 44.1 kHz
    out = subprocess.run([sys.executable, "-m", "autosong_cli", "codec", "check", str(tmp_path / "songs"),
                          "--codec", "tiny", "--seconds", "4", "--json", str(tmp_path / "s.json")],
                         capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "song_a" in out.stdout and "noise" in out.stdout
    [score] = json.loads((tmp_path / "s.json").read_text())
    assert score["seconds"] == pytest.approx(4, abs=0.05)
    assert 0 < score["mel"] < score["noise_mel"]  # the trained codec renders these notes closer than noise
    assert score["test_mel"] > score["mel"] and len(score["bands_db"]) == 4 and abs(score["loudness_db"]) < 12
