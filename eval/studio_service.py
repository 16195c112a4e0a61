"""The listening room's work, apart from its web page (eval/studio_app.py): the runs it serves, their
models loaded once and shared by every tab, songs generated into files with their figures, and
each run's curves and eval figures. Requests name a run by the name this object gave it, never by
a path, so nothing outside the runs it was started with can be read; one generation runs at a time
(the others wait), so two tabs never hold two songs' memory on the device at once."""
from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from autosong.eval.listening import alignment_maps
from autosong.eval.report import alignment_figure, spectrogram_figure
from autosong.manifests.errors import AutoSongError
from autosong.model.api import AutoSong, lrc_text
from autosong.model.audio import load_audio, write_wav
from autosong.model.bundle import load_bundle
from autosong.model.checkpoint_weights import checkpoint_steps
from autosong.model.devices import resolve_device, resolve_dtype
from autosong.model.edit import Edit, SourceSong
from autosong.model.line_times import has_words
from autosong.model.lrc import parse_lrc
from autosong.model.run_metrics import read_metrics


@dataclass(frozen=True)
class RunRef:
    """A model the studio serves: a run's export, or the weights of one of its checkpoints."""
    path: Path              # the run directory
    step: int | None = None  # a checkpoint's step; None: the export


@dataclass
class Take:
    """One generated song: its files and its figures (HTML: SVG with the images inside)."""
    run: str
    wav: Path
    files: list[Path]
    seconds: float
    spectrogram: str
    alignment: str
    lines: list[tuple[float, str]] = field(default_factory=list)  # (start s, line) when the model has heads


def find_runs(runs: str | Path | None, checkpoints: list[str], steps: bool = True) -> dict[str, RunRef]:
    """{name: RunRef} for every run under `runs` (a folder holding RUN/export/config.json, up to
    two levels down) and every --checkpoint given (names: paths relative to `runs`), and with
    `steps` each of their readable checkpoints as "NAME @ step N"."""
    found: dict[str, RunRef] = {}
    if runs is not None:
        root = Path(runs)
        if not root.is_dir():
            raise AutoSongError(f"--runs {root}: no such folder")
        for config in sorted(root.glob("*/export/config.json")) + sorted(root.glob("*/*/export/config.json")):
            run = config.parent.parent
            found[str(run.relative_to(root))] = RunRef(run.resolve())
    for given in checkpoints:
        path = Path(given)
        run = path.parent if path.name == "export" else path
        if not (run / "export" / "config.json").exists():
            raise AutoSongError(f"--checkpoint {given} holds no exported model (expected {run}/export/config.json)")
        found.setdefault(run.name if run.name not in found else str(run), RunRef(run.resolve()))
    if not found:
        raise AutoSongError("no runs to serve: give --runs DIR (a folder of runs) or --checkpoint RUN")
    if steps:
        for name, ref in list(found.items()):
            for step in checkpoint_steps(ref.path):
                found[f"{name} @ step {step}"] = RunRef(ref.path, step)
    return found


class Studio:
    def __init__(self, runs: dict[str, RunRef], out: Path, device: str = "auto", dtype: str = "auto"):
        self.runs, self.out, self.device, self.dtype = runs, Path(out), device, dtype
        self.out.mkdir(parents=True, exist_ok=True)
        self._songs: dict[str, object] = {}
        self._lock = threading.Lock()  # one load or generation at a time: requests queue here
        self.takes: dict[str, tuple[str, Path]] = {}  # a generated song's id -> (run, folder): what Edit offers

    def run_ref(self, name: str) -> RunRef:
        if name not in self.runs:
            raise AutoSongError(f"{name!r} is not one of the runs this studio serves ({', '.join(self.runs)})")
        return self.runs[name]

    def run_dir(self, name: str) -> Path:
        return self.run_ref(name).path

    def song(self, name: str):
        """The run's model.api.AutoSong, loaded on first use and kept (call under the lock)."""
        if name not in self._songs:
            ref, dev = self.run_ref(name), resolve_device(self.device)
            bundle = load_bundle(ref.path, dev, resolve_dtype(self.dtype, dev), step=ref.step)
            self._songs[name] = AutoSong.from_bundle(bundle)
        return self._songs[name]

    def genres(self, name: str) -> list[str]:
        meta = json.loads((self.run_dir(name) / "export" / "config.json").read_text())
        return list(meta["genres"])

    def generate(self, name: str, lyrics: str, genre: str, seconds: float, settings, prompt: str | None = None,
                 progress: bool = False) -> Take:
        """Generate one song with run `name`; bad input raises AutoSongError (one line)."""
        if not lyrics or not lyrics.strip():
            raise AutoSongError("the lyrics are empty: generation is conditioned on the full lyrics")
        if not seconds > 0:
            raise AutoSongError(f"a song of {seconds:g} s: give a length above 0")
        with self._lock:
            song = self.song(name)
            wav = None
            if prompt:
                try:
                    wav = load_audio(prompt, song.sample_rate, max_seconds=10.0).wav
                except (AutoSongError, OSError) as err:
                    raise AutoSongError(f"the audio prompt {Path(prompt).name} cannot be read: {err}") from None
            made = song.generate(lyrics, genre, seconds, settings, wav, progress=progress)
            return self._write(name, song, made, lyrics, genre, seconds, settings)

    def _write(self, name, song, made, lyrics, genre, seconds, settings, known=None, keys=()) -> Take:
        import numpy as np

        folder = self.out / f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
        folder.mkdir(parents=True)
        wav_path = made.save(folder / "song.wav")[0]
        codes = made.codes[0]
        np.save(folder / "song.npy", codes)
        (folder / "settings.json").write_text(json.dumps({
            "run": name, "checkpoint": str(song.bundle.path), "step": song.bundle.step, "lyrics": lyrics,
            "genre": genre, "seconds": seconds, "sampling": settings.to_dict()}, indent=2, ensure_ascii=False))
        files = [wav_path, folder / "song.npy", folder / "settings.json"]
        lines, starts = [], None
        if song.bundle.alignment is not None and song.autoencoder is None and has_words(lyrics):
            texts, times = song.line_times(codes, lyrics, genre, known, keys=keys)
            starts, lines = times.starts, list(zip(times.starts, texts))
            (folder / "song.lrc").write_text(lrc_text(texts, times), encoding="utf-8")
            files.append(folder / "song.lrc")
        amap, rate, _ = alignment_maps(song, [codes], [lyrics], [genre], song.codec.frame_rate)[0]
        self.takes[f"{folder.name} ({name})"] = (name, folder)
        return Take(name, wav_path, files, codes.shape[-1] / song.codec.frame_rate,
                    spectrogram_figure(made.audio[0], song.sample_rate, "spectrogram of the generated song"),
                    alignment_figure(amap, rate, "cross-attention alignment: lyric token by time", starts), lines)

    def take_lyrics(self, take: str) -> str:
        return json.loads((self._take(take)[1] / "settings.json").read_text())["lyrics"]

    def _take(self, take: str) -> tuple[str, Path]:
        if take not in self.takes:
            raise AutoSongError(f"{take!r} is not a song generated here: generate one first")
        return self.takes[take]

    def edit(self, take: str, lyrics: str, from_line: int, settings) -> tuple[Path, Take]:
        """Regenerate a song generated here from line `from_line` on with new lyrics (model/edit.py):
        (the source's WAV, the edited take)."""
        import numpy as np

        name, folder = self._take(take)
        if not lyrics or not lyrics.strip():
            raise AutoSongError("the lyrics are empty: an edit sings the complete new lyrics")
        record = json.loads((folder / "settings.json").read_text())
        lrc = folder / "song.lrc"
        starts = [line.start for line in parse_lrc(lrc.read_text(encoding="utf-8")).lines] if lrc.exists() else None
        source = SourceSong(np.load(folder / "song.npy"), record["lyrics"], record["genre"], starts, str(folder))
        with self._lock:
            song = self.song(name)
            edited = song.edit(source, Edit(from_line=int(from_line)), lyrics, settings)
            made = _Made([edited.audio], edited.codes[None], song.sample_rate)
            return folder / "song.wav", self._write(name, song, made, lyrics, record["genre"],
                                                    edited.codes.shape[-1] / song.codec.frame_rate, settings,
                                                    edited.known_starts, edited.keys)

    def summary(self, name: str) -> dict:
        """What a run's page shows: step, genres, its eval's figures (RUN/eval/eval.json), curves."""
        ref = self.run_ref(name)
        run = ref.path
        meta = json.loads((run / "export" / "config.json").read_text())
        out = {"name": name, "step": meta.get("step") if ref.step is None else ref.step, "genres": meta["genres"], "stage": meta.get("stage", "sound"),
               "metrics": read_metrics(run / "metrics.jsonl"), "eval": None, "report": None}
        evaluated = run / "eval" / "eval.json"
        if evaluated.exists() and ref.step is None:  # the eval scored the export
            result = json.loads(evaluated.read_text())
            gain = result.get("conditioning_gain", {}).get("shuffled_lyrics", {})
            out["eval"] = {"ce": result.get("ce", {}).get("mean"), "lyric_gain": gain.get("mean"),
                           "lyric_gain_ci": gain.get("ci95"), "ner": result.get("note_errors", {}).get("ner_true"),
                           "step": result.get("step")}
        if (run / "eval" / "report.html").exists():
            out["report"] = run / "eval" / "report.html"
        return out


@dataclass
class _Made:
    """An edited song in the shape _write takes (model.api.Songs' fields)."""
    audio: list
    codes: object
    sample_rate: int

    def save(self, path: Path) -> list[Path]:
        write_wav(path, self.audio[0], self.sample_rate)
        return [path]
