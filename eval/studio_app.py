"""`autosong studio`'s page, in Gradio: Generate (lyrics in, a song out with its spectrogram, lyric
alignment and downloads), Compare (the same request through two to four runs, side by side with
each run's eval figures), Edit (a song generated here, sung again from a line with new words,
before and after side by side) and Runs (training curves, eval figures, the report). The work is
eval/studio_service.py's; this module only lays it out. Offline: the theme uses the system's fonts
and analytics are off, so the page fetches nothing beyond the local server."""
from __future__ import annotations

import html
import os
import sys

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402

from autosong.eval.studio_service import Studio, Take  # noqa: E402
from autosong.manifests.errors import AutoSongError  # noqa: E402
from autosong.model.sampling import SamplingConfig  # noqa: E402
from autosong.eval.report import line_chart

EXAMPLE = "[verse]\nI walk along the river\n我爱你 tonight\n\n[chorus]\nLa la la, shine away\n"
MAX_COMPARED = 4
SYSTEM_FONTS = ["ui-sans-serif", "system-ui", "sans-serif"]
CSS = ".take, .curves {overflow-x: auto} .take svg {display: block}"  # figures keep their size and scroll


def theme() -> gr.themes.Base:
    """The default look with the system's fonts: Gradio's own default fetches Google Fonts."""
    return gr.themes.Default(font=SYSTEM_FONTS, font_mono=["ui-monospace", "monospace"])


def _settings(guidance, temperature, top_k, top_p, note_hold, seed):
    return SamplingConfig(temperature=float(temperature), top_k=int(top_k), top_p=float(top_p),
                          note_hold=float(note_hold), guidance=float(guidance), seed=int(seed))


def _checked(values, choices, what: str) -> None:
    """Refuse a value that is not one of `choices` (a crafted API call: a page offers only these)
    before Gradio's own check, which prints a traceback per call: one console line, one toast."""
    for value in values:
        if value not in choices:
            print(f"studio: refused a request for {what} {str(value)[:80]!r}: not one of this studio's", file=sys.stderr,
                  flush=True)
            raise gr.Error(f"{what} {str(value)[:80]!r} is not one of this studio's: pick one of "
                           f"{', '.join(map(str, choices))}", print_exception=False)


class ChoiceDropdown(gr.Dropdown):
    """A dropdown whose value must be one of its choices, checked by _checked."""

    def get_block_name(self) -> str:
        return "dropdown"  # the page draws it with Gradio's own dropdown

    def preprocess(self, payload):
        if payload is not None:
            _checked(payload if isinstance(payload, list) else [payload], [v for _, v in self.choices], self.label)
        return super().preprocess(payload)


class ChoiceGroup(gr.CheckboxGroup):
    """Checkboxes whose values must be among their choices, checked by _checked."""

    def get_block_name(self) -> str:
        return "checkboxgroup"

    def preprocess(self, payload):
        _checked(payload or [], [v for _, v in self.choices], self.label)
        return super().preprocess(payload)


def _figures(take: Take) -> str:
    lines = "".join(f"<li>{t:.2f} s: {html.escape(text)}</li>" for t, text in take.lines)
    return (f'<div class="take">{take.spectrogram}{take.alignment}'
            + (f'<ol class="line-times">{lines}</ol>' if lines else "") + "</div>")


def _eval_figures(summary: dict) -> str:
    ev = summary["eval"]
    if ev is None:
        return f"<p>step {summary['step']}; no eval yet (`autosong eval --checkpoint RUN --data OUT`)</p>"
    cells = [("step", summary["step"]), ("held-out CE (nats)", _num(ev["ce"], ".3f")),
             ("lyric gain (nats/token)", _num(ev["lyric_gain"], "+.4f")), ("note error rate", _num(ev["ner"], ".3f"))]
    rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{v}</td></tr>" for k, v in cells)
    return f'<table class="eval-figures">{rows}</table>'


def _num(value, fmt: str) -> str:
    return "n/a" if value is None else format(value, fmt)


def _curves(summary: dict) -> str:
    metrics = summary["metrics"]
    keys = ["loss"] + [k for k in (metrics[0] if metrics else {}) if k.startswith("ce_q")]
    return line_chart({k: [(m["step"], m[k]) for m in metrics if m.get(k) is not None] for k in keys},
                      "training step", "cross-entropy (nats)")


def _refuse(err: Exception):
    """The one-line message in the page (a Gradio error toast) and on the console, never a traceback."""
    line = str(err).splitlines()[0] if str(err) else type(err).__name__
    print(f"studio: refused a request: {line}", file=sys.stderr, flush=True)
    raise gr.Error(line, print_exception=False)


def _first_named(genres: list[str]) -> str:
    return ([g for g in genres if g != "unknown"] or genres)[0]


def _generate_tab(studio: Studio, names: list[str], genres: list[str]) -> list:
    """The Generate view; returns its sampling controls, which Compare uses too."""
    def generate(run, lyrics, genre, seconds, guidance, temperature, top_k, top_p, note_hold, seed, prompt,
                 progress=gr.Progress(track_tqdm=True)):
        try:
            settings = _settings(guidance, temperature, top_k, top_p, note_hold, seed)
            take = studio.generate(run, lyrics, genre, float(seconds), settings,
                                   prompt, progress=True)
        except (AutoSongError, ValueError) as err:
            _refuse(err)
        return str(take.wav), _figures(take), [str(f) for f in take.files]

    def genres_of(run):
        try:
            choices = studio.genres(run)
        except AutoSongError as err:
            _refuse(err)
        return gr.Dropdown(choices=choices, value=_first_named(choices))

    with gr.Row():
        with gr.Column():
            run = ChoiceDropdown(names, value=names[0], label="run")
            lyrics = gr.Textbox(EXAMPLE, lines=10, label="lyrics ([verse], [chorus] ... tags on their own line)",
                                elem_id="lyrics")
            genre = gr.Dropdown(genres, value=_first_named(genres), label="genre", elem_id="genre",
                                allow_custom_value=True)  # the run's genres; the service refuses others
            seconds = gr.Number(10, label="length (s)", minimum=0.1, elem_id="seconds")
            with gr.Accordion("sampling", open=False):
                d = SamplingConfig()  # the defaults generate and eval use (bench/sing.py chose them)
                sampling = [gr.Slider(1, 10, d.guidance, step=0.5, label="guidance (1 = off)"),
                            gr.Slider(0, 2, d.temperature, step=0.05, label="temperature (0 = greedy)"),
                            gr.Slider(0, 1024, d.top_k, step=1, label="top-k (0 = off)"),
                            gr.Slider(0, 1, d.top_p, step=0.05, label="top-p (0 = off)"),
                            gr.Slider(0, 4, d.note_hold, step=0.25, label="note hold (0 = off)"),
                            gr.Number(d.seed, precision=0, label="seed")]
            prompt = gr.Audio(type="filepath", label="audio prompt (optional: continue it)", sources=["upload"])
            go = gr.Button("Generate", variant="primary", elem_id="generate")
        with gr.Column():
            song = gr.Audio(type="filepath", label="the song", elem_id="song", interactive=False)
            figures = gr.HTML(elem_id="figures")
            downloads = gr.File(label="downloads: WAV, codes, settings, LRC", file_count="multiple", interactive=False)
    run.change(genres_of, run, genre)
    go.click(generate, [run, lyrics, genre, seconds, *sampling, prompt], [song, figures, downloads])
    return sampling


def _compare_tab(studio: Studio, names: list[str], genres: list[str], sampling: list) -> None:
    """The Compare view: one request through two to four runs, side by side."""
    def compare(runs, lyrics, genre, seconds, guidance, temperature, top_k, top_p, note_hold, seed,
                progress=gr.Progress(track_tqdm=True)):
        runs = list(runs or [])
        if not 2 <= len(runs) <= MAX_COMPARED:
            _refuse(AutoSongError(f"pick two to {MAX_COMPARED} runs to compare ({len(runs)} picked)"))
        settings = _settings(guidance, temperature, top_k, top_p, note_hold, seed)
        try:
            takes = [(studio.generate(run, lyrics, genre, float(seconds), settings, None, progress=True),
                      studio.summary(run)) for run in runs]
        except (AutoSongError, ValueError) as err:
            _refuse(err)
        updates = []
        for take, summary in takes:
            updates += [gr.Audio(value=str(take.wav), label=take.run, visible=True),
                        gr.HTML(value=f"<h4>{html.escape(take.run)}</h4>{_eval_figures(summary)}{_figures(take)}",
                                visible=True)]
        for _ in range(MAX_COMPARED - len(takes)):
            updates += [gr.Audio(value=None, visible=False), gr.HTML(value="", visible=False)]
        return updates

    picked = ChoiceGroup(names, value=names[:2], label=f"runs (two to {MAX_COMPARED})", elem_id="picked")
    lyrics = gr.Textbox(EXAMPLE, lines=6, label="lyrics", elem_id="compare-lyrics")
    with gr.Row():
        genre = gr.Dropdown(genres, value=_first_named(genres), label="genre (every run must know it)",
                            allow_custom_value=True)
        seconds = gr.Number(10, label="length (s)", minimum=0.1)
        seed = gr.Number(0, precision=0, label="seed")
    go = gr.Button("Compare", variant="primary", elem_id="compare")
    slots = []
    with gr.Row():
        for _ in range(MAX_COMPARED):
            with gr.Column():
                slots += [gr.Audio(type="filepath", visible=False, interactive=False), gr.HTML(visible=False)]
    go.click(compare, [picked, lyrics, genre, seconds, *sampling[:5], seed], slots)


def _edit_tab(studio: Studio, sampling: list, view) -> None:
    """The Edit view: a song generated here, new lyrics, the line to rewrite from; both versions."""
    def takes():
        return gr.Dropdown(choices=list(studio.takes), value=(list(studio.takes) or [None])[-1])

    def lyrics_of(take):
        if not take:
            return ""
        try:
            return studio.take_lyrics(take)
        except AutoSongError as err:
            _refuse(err)

    def edit(take, lyrics, line, guidance, temperature, top_k, top_p, note_hold, seed,
             progress=gr.Progress(track_tqdm=True)):
        if not take:
            _refuse(AutoSongError("generate a song first (the Generate view), then pick it here"))
        try:
            settings = _settings(guidance, temperature, top_k, top_p, note_hold, seed)
            before, after = studio.edit(take, lyrics, int(line), settings)
        except (AutoSongError, ValueError) as err:
            _refuse(err)
        return str(before), str(after.wav), _figures(after), [str(f) for f in after.files]

    gr.Markdown("Keep a generated song up to a line and sing the rest with new words (`autosong edit`).")
    take = gr.Dropdown([], label="a song generated here", elem_id="take", allow_custom_value=True)
    lyrics = gr.Textbox("", lines=8, label="the new complete lyrics", elem_id="edit-lyrics")
    line = gr.Number(2, precision=0, minimum=2, label="rewrite from line (1 = the first line with words)",
                     elem_id="from-line")
    go = gr.Button("Edit", variant="primary", elem_id="edit")
    with gr.Row():
        before = gr.Audio(type="filepath", label="before", interactive=False, elem_id="before")
        after = gr.Audio(type="filepath", label="after", interactive=False, elem_id="after")
    figures = gr.HTML(elem_id="edit-figures")
    downloads = gr.File(label="downloads", file_count="multiple", interactive=False)
    go.click(edit, [take, lyrics, line, *sampling], [before, after, figures, downloads])
    view.select(takes, None, take)  # the songs generated so far
    take.change(lyrics_of, take, lyrics)


def _runs_tab(studio: Studio, names: list[str]) -> None:
    """The Runs view: a run's curves, eval figures and report link."""
    def show_run(run):
        try:
            summary = studio.summary(run)
        except AutoSongError as err:
            _refuse(err)
        report = (f'<p><a class="report" href="/gradio_api/file={summary["report"]}" target="_blank">'
                  f"the eval's report</a></p>" if summary["report"] else "")
        genres = ", ".join(summary["genres"])
        return (f"<h3>{html.escape(run)}</h3><p>{summary['stage']} model, genres: {html.escape(genres)}</p>"
                f"{_eval_figures(summary)}{report}<div class='curves'>{_curves(summary)}</div>")

    which = ChoiceDropdown(names, value=names[0], label="run", elem_id="which")
    page = gr.HTML(show_run(names[0]), elem_id="run-page")
    which.change(show_run, which, page)


def build(studio: Studio) -> gr.Blocks:
    names = list(studio.runs)
    genres = studio.genres(names[0])
    with gr.Blocks(title="AutoSong studio", analytics_enabled=False) as app:
        gr.Markdown("# AutoSong studio\nGenerate, listen, and compare runs. Everything stays on this machine.")
        with gr.Tab("Generate"):
            sampling = _generate_tab(studio, names, genres)
        with gr.Tab("Compare"):
            _compare_tab(studio, names, genres, sampling)
        with gr.Tab("Edit") as edit_view:
            _edit_tab(studio, sampling, edit_view)
        with gr.Tab("Runs"):
            _runs_tab(studio, names)
    return app
