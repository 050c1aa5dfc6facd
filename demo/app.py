"""The web demo: a Gradio Blocks page around the functions of ``amt.demo.callbacks``.

Upload a MIDI file (or pick an example), choose what to keep and what the model should write, and get up to
eight variations, each with a piano roll, audio rendered on the server, and a MIDI download. Generation runs
in Gradio's queue one request at a time, so two visitors never run the model at once on a CPU box.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from amt.demo import callbacks
from amt.demo.audio import AudioError, Renderer, find_renderer
from amt.demo.callbacks import MAX_CONTINUE_SECONDS, MAX_UPLOAD_BYTES, MAX_VARIATIONS, Piece, Request
from amt.errors import AmtError
from amt.models import DEFAULT_MODEL, PUBLISHED_MODELS, load_model
from amt.sampling.options import option

logger = logging.getLogger(__name__)

OUTPUT_LIFETIME = 3600.0
"""Seconds a request's files stay on disk (Gradio's own cache is cleaned on the same schedule)."""

INTRO = """# amt: Anticipatory Music Transformer co-pilot
Give it some music and say which notes to keep: it writes the rest. **Accompany** keeps the parts you pick and
writes new ones around them; **infill** rewrites a time span; **continue** carries on after the end.
Each part has its colour; kept notes are drawn pale with a dashed outline, new notes solid."""

CSS = """
.amt-status p { margin: 0; }
.amt-error { color: #b42318; }
"""


@dataclass
class _Slot:
    """The components that show one variation."""

    group: gr.Group
    title: gr.Markdown
    plot: gr.Plot
    audio: gr.Audio
    download: gr.File


def _slider(name: str, **kwargs) -> gr.Slider:
    """The slider of sampling option ``name``: its range, step and default as ``SamplingOptions`` declares
    them (``Option.slider``)."""
    low, high, step = option(name).slider
    kwargs.setdefault("value", getattr(Request, name))
    return gr.Slider(low, high, step=step, **kwargs)


def model_choices(names: Sequence[str]) -> list[tuple[str, str]]:
    """(label, name) for the model picker: the built-in model (when installed), ``names`` (folders or Hub
    ids given on the command line) and the published AMT models, each once."""
    choices: dict[str, str] = {}
    if (DEFAULT_MODEL / "config.json").is_file():
        choices[str(DEFAULT_MODEL)] = "built-in model"
    for name in names:
        path = Path(name).expanduser()
        choices.setdefault(str(name), f"{path.name} ({path})" if path.exists() else str(name))
    for name, size in PUBLISHED_MODELS.items():
        choices.setdefault(name, f"{name} (downloaded on first use: {size})")
    return [(label, name) for name, label in choices.items()]


class DemoApp:
    """The page and the state it needs beyond one session: the model, the audio renderer, a work folder.

    ``model_name`` is where ``model`` came from; the picker offers it, ``models`` (more folders or Hub ids)
    and the published AMT models. The model is shared by every visitor: picking another one replaces it
    for all (one is held in memory at a time)."""

    def __init__(self, model, *, model_name: str | None = None, models: Sequence[str] = (),
                 renderer: Renderer | str | None = "auto", workdir: str | Path | None = None,
                 max_seconds: float = callbacks.MAX_PIECE_SECONDS):
        self.model = model
        self.model_name = model_name or "(given model)"
        self.model_choices = model_choices([self.model_name, *models])
        if renderer == "auto":
            self.renderer, self.audio_note = find_renderer()
        else:
            self.renderer = renderer
            self.audio_note = "" if renderer is not None else "Audio is unavailable in this demo."
        self.workdir = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="amt-demo-"))
        self.max_seconds = max_seconds
        self.examples = callbacks.list_examples()
        self.blocks = self._build()

    # ---------------------------------------------------------------------------------------- layout

    def _build(self) -> gr.Blocks:
        with gr.Blocks(title="amt demo", delete_cache=(int(OUTPUT_LIFETIME), int(OUTPUT_LIFETIME))) as blocks:
            gr.Markdown(INTRO)
            if self.audio_note:
                gr.Markdown(f"_{self.audio_note}_", elem_id="audio-note")
            with gr.Row():
                model_name = gr.Dropdown(choices=self.model_choices, value=self.model_name, label="Model",
                                         scale=2, elem_id="model")
                model_status = gr.Markdown(self._model_summary(), elem_id="model-status",
                                           elem_classes=["amt-status"])
            piece = gr.State(None)
            with gr.Row():
                with gr.Column(scale=1, min_width=300):
                    upload = gr.File(label=f"MIDI file (.mid, up to {MAX_UPLOAD_BYTES // 2**20} MB)",
                                     file_types=[".mid", ".midi"], type="filepath", elem_id="upload")
                    example = gr.Dropdown(choices=list(self.examples), value=None,
                                          label="…or pick an example", elem_id="example")
                    summary = gr.Markdown("No piece loaded yet.", elem_id="summary")
                    input_audio = gr.Audio(label="Input", type="filepath", interactive=False,
                                           visible=self.renderer is not None, elem_id="input-audio")
                with gr.Column(scale=3):
                    input_plot = gr.Plot(label="Input piano roll", elem_id="input-roll")

            with gr.Row():
                with gr.Column(scale=1, min_width=300):
                    task = gr.Radio(["accompany", "infill", "continue"], value="accompany", label="Task",
                                    elem_id="task")
                    with gr.Group(visible=True) as keep_group:
                        # A multiselect Dropdown, not a CheckboxGroup: choices filled by an event would make a
                        # CheckboxGroup refuse API calls with other values.
                        keep = gr.Dropdown(choices=[], value=[], multiselect=True, allow_custom_value=True,
                                           label="Parts to keep, by number (accompany: the likely melody is "
                                           "preselected; infill: kept inside the span too)", elem_id="keep")
                    with gr.Group(visible=False) as infill_group, gr.Row():
                        span_start = gr.Number(value=None, label="From", minimum=0, elem_id="span-start")
                        span_end = gr.Number(value=None, label="To", minimum=0, elem_id="span-end")
                        span_unit = gr.Radio(["seconds", "bars"], value="seconds", label="Unit",
                                             elem_id="span-unit")
                    with gr.Group(visible=False) as continue_group:
                        continue_seconds = gr.Slider(
                            1, MAX_CONTINUE_SECONDS, value=10, step=1, label="Continue for (seconds)",
                            elem_id="continue-seconds",
                        )
                with gr.Column(scale=2), gr.Accordion("Sampling", open=True):
                    with gr.Row():
                        variations = gr.Slider(1, MAX_VARIATIONS, value=2, step=1, label="Variations",
                                               elem_id="variations")
                        # A text box: a Number field cannot be left empty (it shows and sends 0).
                        seed = gr.Textbox(value="", label="Seed", placeholder="random", elem_id="seed")
                    with gr.Row():
                        top_p = _slider("top_p", label="top-p", elem_id="top-p")
                        temperature = _slider("temperature", label="Temperature", elem_id="temperature")
                        density = _slider("density", value=Request.density,
                                          label="Density target (new notes/s, 0: off)", elem_id="density")
                    instruments = gr.Dropdown(
                        choices=callbacks.instrument_choices(), value=[], multiselect=True,
                        allow_custom_value=True, label="Instruments for new notes (empty: those of the "
                        "parts they replace; continue: any)",
                        elem_id="instruments",
                    )
                    with gr.Row():
                        grid = gr.Dropdown(choices=list(callbacks.GRIDS), value="file",
                                           label="Grid for new notes", elem_id="grid")
                        monophonic = gr.Checkbox(value=False, label="One note at a time per new part "
                                                 "(voices, winds)", elem_id="monophonic")
                    with gr.Row():
                        # Both rules bind single lines, so ticking either also makes new parts monophonic.
                        legato = gr.Checkbox(value=False, label="Legato: no rests once a new part enters "
                                             "(one note at a time)", elem_id="legato")
                        no_parallels = gr.Checkbox(value=False, label="No parallel fifths or octaves "
                                                   "(one note at a time)", elem_id="no-parallels")
                    # Each musical weight is the share of its probability a new note that breaks the rule
                    # keeps: lower is stricter, 1 switches the rule off.
                    with gr.Row():
                        key_weight = _slider("key_weight", label="Key weight (out-of-key notes; 1: off)",
                                             elem_id="key-weight")
                        chord_weight = _slider("chord_weight", label="Chord weight (notes fitting no chord "
                                               "on a beat; 1: off)", elem_id="chord-weight")
                        harmony_prior = _slider("harmony_prior", label="Harmony prior (follow Bach's chords "
                                                "on beats; 0: off)", elem_id="harmony-prior")
                        register_weight = _slider("register_weight", label="Register weight (notes at or "
                                                  "above the melody; 1: off)", elem_id="register-weight")
                        bass_weight = _slider("bass_weight", label="Bass weight (a bass held over the bar "
                                              "line; 1: off)", elem_id="bass-weight")
                    file_density = gr.Checkbox(value=Request.file_density,
                                               label="Match the replaced parts' density (without a target)",
                                               elem_id="file-density")
            generate = gr.Button("Generate", variant="primary", elem_id="generate")
            status = gr.Markdown("", elem_id="status", elem_classes=["amt-status"])

            slots = []
            for number in range(1, MAX_VARIATIONS + 1):
                with gr.Group(visible=False, elem_id=f"variation-{number}") as group:
                    title = gr.Markdown(f"### Variation {number}")
                    plot = gr.Plot(show_label=False, elem_id=f"roll-{number}")
                    with gr.Row():
                        audio = gr.Audio(label="Listen", type="filepath", interactive=False,
                                         visible=self.renderer is not None, elem_id=f"audio-{number}")
                        download = gr.File(label="MIDI", interactive=False, elem_id=f"midi-{number}")
                slots.append(_Slot(group, title, plot, audio, download))

            load_outputs = [piece, summary, input_plot, input_audio, keep, instruments, span_start, span_end,
                            status]
            groups = [s.group for s in slots]
            hide_results = [gr.Group(visible=False)] * MAX_VARIATIONS  # results of the previous piece
            upload.upload(self.load_upload, [upload], load_outputs, concurrency_limit=4).then(
                lambda: hide_results, None, groups, queue=False)
            example.input(self.load_example, [example], load_outputs, concurrency_limit=4).then(
                lambda: hide_results, None, groups, queue=False)
            # Same queue as generation: a model is never swapped in the middle of a request.
            model_name.input(self.select_model, [model_name], [model_name, model_status],
                             concurrency_limit=1, concurrency_id="model")
            task.change(lambda t: [gr.Group(visible=t in ("accompany", "infill")),
                                   gr.Group(visible=t == "infill"), gr.Group(visible=t == "continue")],
                        [task], [keep_group, infill_group, continue_group], queue=False)
            slot_outputs = [c for s in slots for c in (s.group, s.title, s.plot, s.audio, s.download)]
            generate.click(
                self.generate,
                [piece, task, keep, span_start, span_end, span_unit, continue_seconds, variations, top_p,
                 temperature, seed, instruments, density, grid, monophonic, legato, no_parallels, key_weight,
                 chord_weight, harmony_prior, register_weight, bass_weight, file_density],
                [status, *slot_outputs],
                concurrency_limit=1,
                concurrency_id="model",
            )
        return blocks

    # ------------------------------------------------------------------------------------- callbacks

    def _request_dir(self) -> Path:
        """A fresh folder for one request's files; folders older than OUTPUT_LIFETIME are removed."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        cutoff = time.time() - OUTPUT_LIFETIME
        for old in self.workdir.iterdir():
            if old.is_dir() and old.stat().st_mtime < cutoff:
                shutil.rmtree(old, ignore_errors=True)
        path = self.workdir / f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"
        path.mkdir()
        return path

    def _model_summary(self) -> str:
        millions = self.model.num_parameters() / 1e6
        return f"Model: **{Path(self.model_name).name}**, {millions:.0f} M parameters"

    def select_model(self, name: str | None,
                     progress=gr.Progress(track_tqdm=True)):  # noqa: B008 (shows the download's progress)
        """Load the picked model in place of the current one; an error leaves the current one and is shown
        in the page."""
        if not name or name == self.model_name:
            return gr.Dropdown(value=self.model_name), self._model_summary()
        progress(0.0, desc=f"Loading {name}")
        try:
            model = load_model(name, device=self.model.device)
        except AmtError as error:
            message = f"Could not load {name}: {error}"
            gr.Warning(message)
            return gr.Dropdown(value=self.model_name), _error_markdown(message)
        except Exception as error:  # a bug must still reach the page as a sentence
            logger.exception("loading model %s failed", name)
            message = f"Could not load {name} ({type(error).__name__}: {error})."
            gr.Warning(message)
            return gr.Dropdown(value=self.model_name), _error_markdown(message)
        self.model, self.model_name = model, name
        return gr.Dropdown(value=name), self._model_summary()

    def load_upload(self, path: str | None):
        """Load an uploaded file."""
        return self._load(path)

    def load_example(self, name: str | None):
        """Load a bundled example by its display name."""
        return self._load(str(self.examples[name]) if name in self.examples else None)

    def _load(self, path: str | None):
        try:
            loaded = callbacks.load_piece(path, max_seconds=self.max_seconds)
        except AmtError as error:
            return self._load_failed(str(error))
        except Exception as error:  # a reader bug must still reach the page as a sentence
            logger.exception("loading %s failed", path)
            return self._load_failed(f"Could not read {Path(path).name} ({type(error).__name__}: {error}).")
        melody = callbacks.guess_melody(loaded.parts)
        audio, status = None, ""
        if self.renderer is not None:
            try:
                audio = callbacks.render_input_audio(loaded, self._request_dir(), self.renderer)
            except AudioError as error:
                status = str(error)
        return (
            loaded,
            callbacks.describe_piece(loaded),
            callbacks.piece_pianoroll(loaded),
            audio,
            gr.Dropdown(choices=callbacks.part_choices(loaded), value=[str(melody.number)] if melody else [],
                        multiselect=True, allow_custom_value=True),
            gr.Dropdown(value=[], multiselect=True, allow_custom_value=True),
            # Default infill span: the middle third, which has context on both sides.
            gr.Number(value=round(loaded.duration / 3, 1)),
            gr.Number(value=round(2 * loaded.duration / 3, 1)),
            status,
        )

    def _load_failed(self, message: str):
        gr.Warning(message)
        return (None, "No piece loaded.", None, None,
                gr.Dropdown(choices=[], value=[], multiselect=True, allow_custom_value=True),
                gr.Dropdown(), gr.Number(), gr.Number(), _error_markdown(message))

    def generate(self, piece: Piece | None, task, keep, span_start, span_end, span_unit, continue_seconds,
                 variations, top_p, temperature, seed, instruments, density, grid="file", monophonic=False,
                 legato=False, no_parallels=False, key_weight=Request.key_weight,
                 chord_weight=Request.chord_weight, harmony_prior=Request.harmony_prior,
                 register_weight=Request.register_weight,
                 bass_weight=Request.bass_weight, file_density=Request.file_density,
                 progress=gr.Progress()):  # noqa: B008 (Gradio finds the progress bar by this default)
        """Run the request and fill one slot per variation (the others are hidden)."""
        hidden = [gr.Group(visible=False), gr.Markdown(), gr.Plot(), gr.Audio(), gr.File()]
        try:
            if piece is None:
                raise callbacks.DemoInputError("Upload a MIDI file or pick an example first.")
            request = Request(
                task=task, keep=list(keep or []), span_start=span_start, span_end=span_end,
                span_unit=span_unit, continue_seconds=continue_seconds, variations=int(variations),
                top_p=top_p, temperature=temperature, seed=seed, instruments=list(instruments or []),
                density=density or 0.0, grid=grid or "file", monophonic=bool(monophonic),
                legato=bool(legato), no_parallels=bool(no_parallels), key_weight=float(key_weight),
                chord_weight=float(chord_weight), harmony_prior=float(harmony_prior),
                register_weight=float(register_weight),
                bass_weight=float(bass_weight), file_density=bool(file_density),
            )
            progress(0.0, desc="Starting")
            results, status = callbacks.generate(
                self.model, piece, request, self._request_dir(), renderer=self.renderer,
                progress=lambda fraction, message: progress(fraction, desc=message),
            )
        except AmtError as error:
            gr.Warning(str(error))
            return [_error_markdown(str(error)), *(hidden * MAX_VARIATIONS)]
        except Exception as error:  # a bug must still reach the page as a sentence, not a stack trace
            logger.exception("generation failed")
            message = f"Generation failed ({type(error).__name__}: {error}). Please report this."
            gr.Warning(message)
            return [_error_markdown(message), *(hidden * MAX_VARIATIONS)]
        outputs = [status]
        for variation in results:
            outputs += [
                gr.Group(visible=True),
                gr.Markdown(f"### {variation.title}"),
                variation.figure,
                str(variation.audio_path) if variation.audio_path else None,
                str(variation.midi_path),
            ]
        outputs += hidden * (MAX_VARIATIONS - len(results))
        return outputs

    # ---------------------------------------------------------------------------------------- serving

    def launch(self, *, host: str = "127.0.0.1", port: int | None = 7860, share: bool = False,
               block: bool = True, quiet: bool = False):
        """Start the web server (returns at once when ``block`` is False)."""
        self.blocks.queue(default_concurrency_limit=1, max_size=32)
        return self.blocks.launch(
            server_name=host, server_port=port, share=share, prevent_thread_lock=not block, quiet=quiet,
            max_file_size=MAX_UPLOAD_BYTES, allowed_paths=[str(self.workdir)], css=CSS,
            footer_links=["api"], show_error=False,
        )

    def close(self) -> None:
        """Stop the server and delete this app's files."""
        self.blocks.close()
        shutil.rmtree(self.workdir, ignore_errors=True)


def _error_markdown(message: str) -> str:
    return f'<span class="amt-error">⚠ {message}</span>'
