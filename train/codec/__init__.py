"""The codec trainer: settings and model (`config.py`), what it learns from (`data.py`), the
quantizer's EMA k-means (`vq.py`), the Fourier start (`encoder_init.py`), the training loop
(`trainer.py`) and its command (`cli.py`, `autosong codec train`)."""
