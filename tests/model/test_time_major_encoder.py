"""The time-major encoder computes what EnCodec's encoder computes, and the codec uses it."""
import numpy as np
import pytest
import torch

from autosong.model.codec import Codec
from autosong.model.lyrics import default_tokenizer
from autosong.model.synth_music import SAMPLE_RATE, make_lyrics, render_song
from autosong.model.time_major_encoder import TimeMajorEncoder
from autosong.train.codec.config import CodecTrainConfig, encodec_config


def _song(seconds: float, seed: int) -> np.ndarray:
    import soxr

    rng, tok = np.random.default_rng(seed), default_tokenizer()
    stereo = render_song(make_lyrics(rng, seconds, "pop", tok), "pop", seconds, rng, tok)
    return soxr.resample(stereo.mean(1), SAMPLE_RATE, 24_000).astype(np.float32)


@pytest.mark.parametrize("ratios", ["80,4", "8,5,8"])
def test_the_time_major_encoder_computes_the_encoders_function(ratios):
    """On random weights of two shapes (tiny's strides, and three strides), the same embeddings as
    transformers' forward to float rounding, on audio and on lengths down to the 7 frames it fits."""
    from transformers import EncodecModel

    torch.manual_seed(0)
    model = EncodecModel(encodec_config(CodecTrainConfig(upsampling_ratios=ratios, encoder_init="random",
                                                         num_filters=16))).eval()
    fast = TimeMajorEncoder.of(model)
    assert fast is not None
    for samples in (320 * 7, 320 * 37, 24_000 * 3):
        wav = torch.as_tensor(_song(3.0, samples)[:samples])[None, None]
        with torch.inference_mode():
            want = model.encoder(wav)
        got = fast(wav)
        assert got.shape == want.shape
        assert torch.allclose(got, want, rtol=1e-4, atol=1e-5 * want.abs().max().item()), (got - want).abs().max()
    assert fast.fits(320 * 7) and not fast.fits(320 * 6)  # the last kernel's 6 mirrored rows need 7 frames
    with pytest.raises(ValueError, match="fits"):
        fast(torch.zeros(1, 1, 320 * 6))


def test_an_encoder_with_residual_blocks_keeps_its_own_forward():
    from transformers import EncodecModel

    model = EncodecModel(encodec_config(CodecTrainConfig(encoder_init="random", residual_layers=1, num_filters=8)))
    assert TimeMajorEncoder.of(model) is None
    assert Codec.load("test").time_major is None


def test_tiny_encodes_through_it_to_the_same_codes():
    """tiny's codes through the time-major path equal the module's on a 14 s song (two windows with
    context), a few frames of audio fall back to the module, and encode_many agrees with encode."""
    codec = Codec.load("tiny")
    assert codec.time_major is not None
    wavs = [_song(14.0, 1), _song(4.0, 2)[:1900]]
    fast = [codec.encode(w, 24_000) for w in wavs]
    codec.time_major, kept = None, codec.time_major
    slow = [codec.encode(w, 24_000) for w in wavs]
    codec.time_major = kept
    assert fast[0].shape == slow[0].shape == (2, 14 * 75)
    assert (fast[0] == slow[0]).mean() > 0.995  # a near tie may flip; on the songs measured, none did
    assert np.array_equal(fast[1], slow[1]) and fast[1].shape == (2, 6)
    many = codec.encode_many(wavs, 24_000)
    assert (many[0] == fast[0]).mean() > 0.995 and np.array_equal(many[1], fast[1])
