"""Phase from magnitudes: a held note keeps its pitch at any frequency, not only multiples of 75 Hz."""
import numpy as np
import torch

from autosong.eval.audio_metrics import estimate_pitch
from autosong.model.phase import griffin_lim, istft, stft, vocoder_phase
from autosong.model.spectral_decoder import SpectralDecoder, SpectralDecoderConfig, magnitude_loss


def _note(hz: float, seconds: float = 1.0, sr: int = 24_000) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (0.3 * np.sin(2 * np.pi * hz * t) + 0.1 * np.sin(4 * np.pi * hz * t)).astype(np.float32)


def test_stft_round_trip_is_exact():
    wav = torch.from_numpy(_note(311.1))[None]
    back = istft(stft(wav, 1280, 320), 1280, 320, wav.shape[1])
    assert torch.allclose(back, wav, atol=1e-5)


def test_vocoder_phase_advances_with_the_partials_frequency():
    hz = 311.1  # D#4: 4.15 frames of 75 Hz, not a multiple of the frame rate
    mag = stft(torch.from_numpy(_note(hz))[None], 1280, 320).abs()
    phase = vocoder_phase(mag, 1280, 320)
    peak = int(round(hz * 1280 / 24_000))
    steps = torch.diff(phase[0, peak, 5:-5]) % (2 * np.pi)
    expected = (2 * np.pi * hz * 320 / 24_000) % (2 * np.pi)
    assert torch.allclose(steps, torch.full_like(steps, expected), atol=0.05)


def test_magnitudes_alone_give_back_the_pitch():
    for hz in (196.0, 311.1, 466.2):  # G3, D#4, A#4: none a multiple of 75 Hz
        wav = _note(hz)
        mag = stft(torch.from_numpy(wav)[None], 1280, 320).abs()
        # the shipped recipe: the vocoder's phase, then 16 Griffin-Lim iterations (from zero phase,
        # 16 iterations leave 311 Hz half a semitone sharp)
        out = griffin_lim(mag, 1280, 320, len(wav), 16, phase=vocoder_phase(mag, 1280, 320))[0].numpy()
        midi = 69 + 12 * np.log2(hz / 440)
        assert abs(estimate_pitch(out[6000:18000], 24_000, 50, 90) - midi) <= 0.25


def test_spectral_decoder_shapes_and_loss():
    cfg = SpectralDecoderConfig(latent_dim=8, channels=32, blocks=2)
    decoder = SpectralDecoder(cfg)
    latents = torch.randn(2, 8, 30)
    assert decoder.log_magnitudes(latents).shape == (2, 641, 30)
    assert decoder.magnitudes(latents).shape == (2, 641, 31)
    wav = decoder(latents)
    assert wav.shape == (2, 1, 30 * 320) and torch.isfinite(wav).all()
    target = torch.from_numpy(_note(311.1, 30 * 320 / 24_000))[None].repeat(2, 1)
    loss = magnitude_loss(decoder.log_magnitudes(latents), target, cfg)
    loss.backward()
    assert torch.isfinite(loss) and decoder.output.weight.grad.abs().sum() > 0
    exact = torch.log(stft(target, 1280, 320).abs()[..., :30] + 1e-2)
    assert magnitude_loss(exact, target, cfg) < 1e-4  # perfect magnitudes: no loss
