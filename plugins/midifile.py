"""Build a bridge request from a MIDI file: what a DAW script does, for tests, benchmarks and scripted use."""

from __future__ import annotations

import os
from typing import Any

import symusic

from amt.errors import MidiError
from amt.plugins.protocol import GenerateRequest


def _last_per_beat(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # MIDI files may repeat a meta event at one time; the last one is the one in force.
    by_beat = {p["beat"]: p for p in points}
    return [by_beat[b] for b in sorted(by_beat)]


def request_from_midi(
    source: str | os.PathLike,
    *,
    task: str,
    region: tuple[float, float],
    unit: str = "beats",
    locked: dict[str, Any] | None = None,
    sampling: dict[str, Any] | None = None,
    grid: float | None = None,
) -> GenerateRequest:
    """A request carrying every note of a MIDI file, in beats, with its tempo and meter maps.

    Tracks get ids ``0, 1, ...`` (file order, with their names and programs; drum tracks channel 10), notes
    ids ``"TRACK:INDEX"``. ``locked``, ``sampling`` and ``grid`` are passed through as protocol fields.
    Raises ``MidiError`` for a file symusic cannot read.
    """
    try:
        score = symusic.Score(str(source)).to("quarter")
    except Exception as error:  # symusic raises plain RuntimeErrors/ValueErrors for broken files
        raise MidiError(source, f"cannot read: {error}") from None
    tracks, notes = [], []
    for t, track in enumerate(score.tracks):
        tracks.append({"id": t, "name": track.name, "program": None if track.is_drum else track.program,
                       "channel": 10 if track.is_drum else None})
        for i, note in enumerate(track.notes):
            notes.append({"id": f"{t}:{i}", "start": float(note.time),
                          "duration": max(float(note.duration), 1e-3), "pitch": int(note.pitch),
                          "velocity": max(int(note.velocity), 1), "track": t})
    tempo = _last_per_beat([{"beat": 0.0, "bpm": 120.0}] + [{"beat": float(x.time), "bpm": float(x.qpm)}
                                                            for x in score.tempos])
    meter = _last_per_beat([{"beat": 0.0, "numerator": 4, "denominator": 4}] + [
        {"beat": float(x.time), "numerator": int(x.numerator), "denominator": int(x.denominator)}
        for x in score.time_signatures])
    return GenerateRequest.model_validate({
        "task": task, "notes": notes, "tracks": tracks, "tempo": tempo, "time_signatures": meter,
        "region": {"start": region[0], "end": region[1], "unit": unit}, "locked": locked or {},
        "sampling": sampling or {}, "grid": grid,
    })
