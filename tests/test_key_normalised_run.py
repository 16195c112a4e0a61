"""A key-normalised dataset as a user meets it (pipeline build --key-normalise): each song moved to C
before encoding, the shift in its manifest row, a model trained on it that sings in C and gives
its songs back in the key asked for, and refusals where runs or builds would mix the two."""
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import TINY, autosong_here, train_cli


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from autosong.pipeline.synth import synth_corpus

    root = tmp_path_factory.mktemp("key_normalised")
    synth_corpus(root / "corpus", songs=4, seconds=3, seed=11)
    return root


def build(corpus, out: str, *flags):
    made = autosong_here("pipeline", "build", str(corpus / "corpus"), "--out", str(corpus / out), "--codec", "tiny",
                         "--val-fraction", "0.25", "--workers", "1", *flags)
    assert made.returncode == 0, made.stderr[-2000:]
    return corpus / out


def test_a_key_normalised_build_encodes_each_song_moved_to_c(corpus, ray_local):
    import torch

    from autosong.manifests import DatasetCard
    from autosong.manifests.dataset import Dataset
    from autosong.model.audio import load_audio
    from autosong.model.codec import Codec
    from autosong.model.key_shift import normalising_shift, pitch_shift

    data = build(corpus, "moved", "--key-normalise")
    assert DatasetCard.load(data).key_normalised
    samples = [s for split in ("train", "val") for s in Dataset.open(data).samples(split)]
    assert len(samples) == 4 and all(s.key_signatures for s in samples)
    assert [s.key_shift for s in samples] == [normalising_shift(s.key_signatures[0]) for s in samples]
    assert any(s.key_shift for s in samples)
    assert "all moved to C before encoding (--key-normalise)" in autosong_here("pipeline", "inspect", str(data)).stdout
    codec, threads = Codec.load("tiny"), torch.get_num_threads()
    torch.set_num_threads(1)  # as the build's actors encode
    try:
        for s in samples:  # the shard holds the codes of the song moved by its shift
            wav = load_audio(next((corpus / "corpus" / s.key).glob("audio.*")), codec.sample_rate).wav
            assert np.array_equal(s.codes, codec.encode(pitch_shift(wav, codec.sample_rate, s.key_shift),
                                                        codec.sample_rate)), s.key
    finally:
        torch.set_num_threads(threads)

    again = autosong_here("pipeline", "build", str(corpus / "corpus"), "--out", str(data), "--codec", "tiny",
                          "--val-fraction", "0.25")
    assert again.returncode == 2 and "was built with --key-normalise; pass the same" in again.stderr

    lost = Path(shutil.copytree(data, corpus / "lost"))  # dataset.json lost, and the flag forgotten: the index is
    (lost / "dataset.json").unlink()                     # recovered from the shards, the moved songs encoded again
    recovered = autosong_here("pipeline", "build", str(corpus / "corpus"), "--out", str(lost), "--codec", "tiny",
                              "--val-fraction", "0.25")
    assert recovered.returncode == 0, recovered.stderr[-2000:]
    assert f"built {sum(bool(s.key_shift) for s in samples)} songs" in recovered.stdout
    assert not DatasetCard.load(lost).key_normalised
    assert all(s.key_shift == 0 for split in ("train", "val") for s in Dataset.open(lost).samples(split))


def test_a_model_of_songs_in_c_sings_in_c_and_gives_songs_back_in_their_key(corpus, tmp_path, ray_local):
    from autosong.eval.evaluate import evaluate
    from autosong.manifests.errors import AutoSongError
    from autosong.model.api import AutoSong
    from autosong.model.edit import CROSSFADE_SECONDS, Edit, SourceSong
    from autosong.model.sampling import SamplingConfig

    data = corpus / "moved" if (corpus / "moved" / "dataset.json").exists() else build(corpus, "moved", "--key-normalise")
    run = tmp_path / "run"
    out = train_cli("--data", str(data), "--run", str(run), "--steps", "3", *TINY, "--model.song_key", "true")
    assert out.returncode == 0, out.stderr[-3000:]
    song = AutoSong.load(run, "cpu", "fp32")
    assert song.bundle.key_normalised

    sr = song.sample_rate
    t = np.arange(2 * sr) / sr
    a4 = (0.4 * np.sin(2 * np.pi * 440 * t) + 0.15 * np.sin(4 * np.pi * 440 * t)).astype(np.float32)
    codes = song.encode(a4, key=4)  # heard in E major: moved down 4 semitones to C, as the build moves songs
    assert abs(peak_hz(song.codec.decode(codes), sr) - 349.2) < 3  # F4 in the model's codes
    assert abs(peak_hz(song.decode(codes, key=4), sr) - 440) < 3   # and A4 again as the song is given back

    lyrics, sampling = "[verse]\nlove night dream fire\n", SamplingConfig(seed=0)
    asked = song.generate(lyrics, "ballad", 1.0, sampling, key="E major")
    assert np.allclose(asked.audio[0], song.decode(asked.codes[0], key=4), atol=1e-6)
    assert not np.allclose(asked.audio[0], song.codec.decode(asked.codes[0]), atol=1e-3)  # moved from C
    own = song.generate(lyrics, "ballad", 1.0, sampling)  # the key its lyrics call for, as the sampler chose it
    called_for = song.key_signature_for(lyrics, "ballad")
    assert np.allclose(own.audio[0], song.decode(own.codes[0], key=called_for), atol=1e-6)
    source = SourceSong(codes=own.codes[0], lyrics=lyrics, genre="ballad")  # its codes alone, in C
    extended = song.edit(source, Edit(extend=0.5), sampling=sampling)
    kept = len(own.audio[0]) - int(CROSSFADE_SECONDS * sr)  # up to the crossfade: the source as it sounded
    assert np.allclose(extended.audio[:kept], own.audio[0][:kept], atol=1e-6)

    plain = build(corpus, "plain")  # the same songs in their own keys: the run's codes meant other notes
    resumed = train_cli("--data", str(plain), "--run", str(run), "--steps", "4", *TINY, "--model.song_key", "true",
                        "--resume")
    assert resumed.returncode != 0 and "learned songs moved to C (--key-normalise)" in resumed.stderr
    with pytest.raises(AutoSongError, match="learned songs moved to C"):  # scored on songs in their own keys
        evaluate(song.bundle, str(plain), "val")


def peak_hz(wav: np.ndarray, sr: int) -> float:
    part = wav[sr // 4 : sr // 4 + sr]
    return float(np.argmax(np.abs(np.fft.rfft(part * np.hanning(len(part))))) * sr / len(part))
