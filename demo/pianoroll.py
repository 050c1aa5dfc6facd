"""Piano-roll pictures of a piece: time on x, pitch on y, one colour per part (a track, channel and
program: a song's voice and piano apart even when both are program 0).

Drawn with matplotlib's object API (no pyplot), so figures are not global state and several requests can
draw at once. gradio-pianoroll needs gradio < 6, hence matplotlib.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.collections import PolyCollection
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from amt.demo.notes import NoteArrays

# Tableau's 10 colours, then 10 more from tab20's light half: 20 instruments before a colour repeats.
PALETTE: tuple[str, ...] = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
    "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94", "#f7b6d2", "#c7c7c7",
    "#dbdb8d", "#9edae5",
)
KEPT_ALPHA = 0.28
"""Fill opacity of kept (given) notes: faded, so that the new notes stand out."""
NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


def part_colours(keys: Sequence, known: Sequence = ()) -> list[str]:
    """Colour of each part, by its key: the keys in ``known`` (the input's parts) keep their palette places,
    so a part has one colour in the input and in every variation; other parts take the next colours."""
    place = {key: i for i, key in enumerate(known)}
    extra = [key for key in keys if key not in place]
    for key in extra:
        place[key] = len(place)
    return [PALETTE[place[key] % len(PALETTE)] for key in keys]


def _rectangles(onsets: np.ndarray, durations: np.ndarray, pitches: np.ndarray) -> np.ndarray:
    """Vertices (n, 4, 2) of note rectangles one semitone high, centred on their pitch."""
    x0, x1 = onsets, onsets + np.maximum(durations, 0.02)  # keep very short notes visible
    y0, y1 = pitches - 0.42, pitches + 0.42
    return np.stack([np.stack([x0, y0], 1), np.stack([x1, y0], 1), np.stack([x1, y1], 1),
                     np.stack([x0, y1], 1)], 1)


def plot_pianoroll(
    notes: NoteArrays,
    parts: np.ndarray,
    labels: Sequence[str],
    *,
    generated: np.ndarray | None = None,
    colour_keys: Sequence | None = None,
    known_keys: Sequence = (),
    title: str | None = None,
    region: tuple[float, float] | None = None,
    duration: float | None = None,
) -> Figure:
    """Draw ``notes`` as a piano roll, a colour per part, and return the figure.

    ``parts`` gives each note's index into ``labels`` (the parts' names); ``colour_keys`` and ``known_keys``
    keep each part's colour from the input to a variation (see ``part_colours``). ``generated`` marks new
    notes: drawn solid with a dark outline, while kept notes are pale with a dashed outline of their part's
    colour, and the legend says which is which for each part. ``region`` shades the time span (seconds) the
    model wrote, and ``duration`` fixes the x extent so rolls of one piece line up.
    """
    figure = Figure(figsize=(11, 3.8), dpi=100, layout="constrained")
    axes = figure.add_subplot()
    contrast = generated is not None  # only a result has kept and new notes to tell apart
    if generated is None:
        generated = np.zeros(len(notes), dtype=bool)
    colours = part_colours(list(colour_keys) if colour_keys is not None else list(range(len(labels))),
                           known_keys)
    handles = []
    for k, (label, colour) in enumerate(zip(labels, colours, strict=True)):
        of_part = parts == k
        if not of_part.any():
            continue
        for new in (False, True):
            chosen = of_part & (generated == new)
            if not chosen.any():
                continue
            faded = contrast and not new
            rectangles = _rectangles(notes.onsets[chosen], notes.durations[chosen],
                                     notes.pitches[chosen].astype(float))
            axes.add_collection(PolyCollection(
                rectangles, facecolors=[to_rgba(colour, KEPT_ALPHA if faded else 1.0)],
                edgecolors=[to_rgba(colour, 0.9) if faded else "#222222"],
                linewidths=0.8 if faded else 0.6, linestyles="--" if faded else "-", zorder=1 if faded else 2,
            ))
        count, new_count = int(of_part.sum()), int((of_part & generated).sum())
        if not contrast:
            text = f"{label}: {count} notes"
        elif new_count == count:
            text = f"{label}: {count} new"
        else:
            text = f"{label}: {count - new_count} kept" + (f", {new_count} new" if new_count else "")
        faded_only = contrast and new_count == 0
        handles.append(Patch(facecolor=to_rgba(colour, KEPT_ALPHA if faded_only else 1.0),
                             edgecolor=colour if faded_only else "#222222",
                             linestyle="--" if faded_only else "-", label=text))

    end = duration if duration is not None else float((notes.onsets + notes.durations).max(initial=0.0))
    if region is not None:
        axes.axvspan(region[0], region[1], color="#fff3b0", alpha=0.6, zorder=0)
        end = max(end, region[1])
    axes.set_xlim(0.0, max(end, 1.0))
    if len(notes):
        low, high = int(notes.pitches.min()) - 2, int(notes.pitches.max()) + 2
    else:
        low, high = 48, 84
    axes.set_ylim(low - 0.5, high + 0.5)
    octave_cs = [p for p in range(low, high + 1) if p % 12 == 0]
    axes.set_yticks(octave_cs, [f"{NOTE_NAMES[p % 12]}{p // 12 - 1}" for p in octave_cs])
    axes.grid(axis="y", color="#e6e6e6", linewidth=0.6)
    axes.set_axisbelow(True)
    axes.set_xlabel("time (s)")
    axes.set_ylabel("pitch")
    if title:
        axes.set_title(title, loc="left", fontsize=11)
    if contrast:
        handles += [
            Patch(facecolor=to_rgba("#777777", KEPT_ALPHA), edgecolor="#777777", linestyle="--",
                  label="kept notes: pale, dashed"),
            Patch(facecolor="#777777", edgecolor="#222222", label="new notes: solid"),
        ]
    if handles:
        axes.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    return figure
