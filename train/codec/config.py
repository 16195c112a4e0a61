"""What `autosong codec train` trains: its settings (`CodecTrainConfig`, one flag per field) and the
EncodecModel they describe."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from autosong.model.codec import spectral_encodec
from autosong.model.spectral_decoder import SpectralDecoderConfig

@dataclass
class CodecTrainConfig:
    steps: int = 16000
    minutes: float = 0.0        # > 0: train for this long instead of `steps` (equal-time ablations)
    batch: int = 4
    crop_seconds: float = 1.0   # 75 frames: the spectral decoder sees +-18 frames around each
    lr: float = 2e-3
    lr_min: float = 1e-4
    songs: int = 128            # songs in the training set (plus the reference signal)
    data: str = ""              # a corpus folder (DATASET/song_*/audio.*) to learn from; "" = synth songs
    song_seconds: float = 12.0
    key_normalise: bool = False  # move each song to C first, as `pipeline build --key-normalise` does: a
                                 # codec for the keys a normalised dataset holds
    num_filters: int = 64       # EnCodec's channel width (the full model uses 32); with the Fourier
                                # start, the frequencies analysed
    upsampling_ratios: str = "80,4"  # decoder strides, product 320 (the encoder mirrors them: 4, then 80)
    hidden_size: int = 32       # latent width = codebook dimension (low: nearest codes stay meaningful)
    residual_layers: int = 0    # EnCodec's residual blocks per stride (the Fourier start needs none)
    encoder_init: str = "fourier"  # fourier (train/codec/encoder_init.py: a spectrum analyser to start from) | random
    decoder: str = "spectral"   # spectral (STFT magnitudes, phase reconstructed) | encodec (its waveform decoder)
    decoder_channels: int = 256  # the spectral decoder's width
    decoder_blocks: int = 6     # and its ConvNeXt blocks
    commitment: float = 1.0
    ema_decay: float = 0.99
    dead_fraction: float = 0.5  # revive a code used less than this share of a uniform code's use
    ae_warmup: float = 0.2      # share of training without the quantizer (see below); 1 = never quantize
    save_every: int = 1000      # the codec directory is rewritten this often (a crash keeps it)
    seed: int = 0
    threads: int = 0            # 0 = torch's default
    device: str = "auto"        # auto (cuda where present) | cpu | cuda[:N]

    def to_dict(self) -> dict:
        return asdict(self)


COLLAPSED_BELOW = 16  # distinct codes in a training batch (~4 x 1 s crops, 300 frames)


def encodec_config(cfg: CodecTrainConfig):
    from transformers import EncodecConfig

    if cfg.decoder not in ("spectral", "encodec"):
        raise ValueError(f"--decoder {cfg.decoder}: expected spectral or encodec")
    if cfg.encoder_init not in ("fourier", "random"):
        raise ValueError(f"--encoder-init {cfg.encoder_init}: expected fourier or random")
    ratios = [int(r) for r in cfg.upsampling_ratios.split(",")]
    if math.prod(ratios) != 320:
        raise ValueError(f"--upsampling-ratios {cfg.upsampling_ratios}: their product must be 320 "
                         f"(24 kHz at 75 frames/s), got {math.prod(ratios)}")
    if cfg.encoder_init == "fourier" and (len(cfg.upsampling_ratios.split(",")) != 2 or cfg.hidden_size > cfg.num_filters):
        raise ValueError(f"--encoder-init fourier needs two strides (--upsampling-ratios 80,4) and --hidden-size "
                         f"at most --num-filters (the frequencies analysed); got {cfg.upsampling_ratios} and "
                         f"{cfg.hidden_size} > {cfg.num_filters}, or use --encoder-init random")

    # target_bandwidths=[1.5] keeps exactly the 2 codebooks used, so the weights stay small.
    return EncodecConfig(num_filters=cfg.num_filters, hidden_size=cfg.hidden_size, codebook_dim=cfg.hidden_size,
                         num_lstm_layers=1, target_bandwidths=[1.5], upsampling_ratios=ratios,
                         num_residual_layers=cfg.residual_layers)


def codec_model(cfg: CodecTrainConfig):
    """A fresh `EncodecModel`; with `decoder: spectral`, its decoder is a `SpectralDecoder`."""
    from transformers import EncodecModel

    config = encodec_config(cfg)
    if cfg.decoder == "encodec":
        return EncodecModel(config)
    return spectral_encodec(config.to_dict(), SpectralDecoderConfig(
        latent_dim=cfg.hidden_size, channels=cfg.decoder_channels, blocks=cfg.decoder_blocks))
