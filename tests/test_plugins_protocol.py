"""DAW bridge without a model: tempo/meter maps, instrument names, request validation and planning."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from amt.plugins.engine import Limits, event_to_note, plan_request
from amt.plugins.instruments import instrument_name, program_from_name, resolve_instrument
from amt.plugins.midifile import request_from_midi
from amt.plugins.protocol import GenerateRequest, GenerateResponse, RequestError, Sampling
from amt.plugins.server import parse_request
from amt.sampling.options import SamplingOptions
from amt.tokenization.vocab import DRUMS, DUR_OFFSET, NOTE_OFFSET, TIME_OFFSET, TIME_RESOLUTION

from conftest import REFERENCE_DIR as REFERENCE

TEMPO_FILE = REFERENCE / "synth_tempo_trumpet_drums.mid"  # 100 bpm, 150 bpm from beat 8
CHORALE = REFERENCE / "bach_bwv66.6.mid"


def test_instruments_from_names_programs_and_channels():
    assert program_from_name("Violin I") == 40
    assert program_from_name("String Bass") == 43
    assert program_from_name("Bass Clarinet") == 71
    assert program_from_name("Drum Kit") == DRUMS
    assert program_from_name("Untitled 3") is None
    assert resolve_instrument(None, 10, "Piano") == DRUMS
    assert resolve_instrument(33, None, "Violin") == 33
    assert resolve_instrument(None, None, "Cello") == 42
    assert instrument_name(DRUMS) == "Drums"
    assert instrument_name(40) == "Violin" and instrument_name(47) == "Timpani"  # GM names, not families


def _body(**changes):
    body = {"task": "infill", "notes": [{"start": 0, "duration": 1, "pitch": 60}],
            "region": {"start": 0, "end": 4}}
    body.update(changes)
    return json.dumps(body)


@pytest.mark.parametrize(
    ("text", "status", "words"),
    [
        ("{not json", 400, "malformed JSON"),
        ("[1, 2]", 400, "JSON object"),
        (_body(task="remix"), 422, "task"),
        (_body(region={"start": 4, "end": 2}), 422, "must be after"),
        (_body(tempo=[{"beat": 0, "bpm": -5}]), 422, "tempo.0.bpm"),
        (_body(tempo=[{"beat": 2, "bpm": 100}]), 422, "start at beat 0"),
        (_body(notes=[{"start": -1, "duration": 1, "pitch": 60}]), 422, "notes.0.start"),
        (_body(grid=1e-9), 422, "grid"),  # a step finer than 1/64 beat would only cost memory
        (_body(sampling={"monophonic": "sometimes"}), 422, "sampling.monophonic"),
        (_body(sampling={"legato": True}), 422, "set monophonic"),
        (_body(sampling={"monophonic": True, "no_parallels": True, "beat_parallels": 1.5}), 422,
         "sampling.beat_parallels"),
        (_body(sampling={"key_weight": 0}), 422, "sampling.key_weight"),  # 0 would forbid; 1 is off
        (_body(sampling={"chord_weight": 1.5}), 422, "sampling.chord_weight"),
        (_body(sampling={"register_weight": -0.1}), 422, "sampling.register_weight"),
        (_body(sampling={"file_density": "sometimes"}), 422, "sampling.file_density"),
        (_body(notes=[{"start": 0, "duration": 1, "pitch": 200}]), 422, "notes.0.pitch"),
        (_body(sampling={"temprature": 2}), 422, "temprature"),
        (_body(time_signatures=[{"beat": 0, "numerator": 4, "denominator": 3}]), 422, "power of two"),
        ('{"task": "infill", "region": {"start": 0, "end": NaN}}', 422, "region.end"),
    ],
)
def test_bad_requests_are_named(text, status, words):
    with pytest.raises(RequestError, match=words) as caught:
        parse_request(text)
    assert caught.value.status == status


def test_plan_limits_and_locks():
    many = [{"start": i / 8, "duration": 0.1, "pitch": 60} for i in range(50)]
    with pytest.raises(RequestError, match="too many notes") as caught:
        plan_request(parse_request(_body(notes=many)), Limits(max_notes=10))
    assert caught.value.status == 413
    with pytest.raises(RequestError, match="region lasts"):
        plan_request(parse_request(_body(region={"start": 0, "end": 400})), Limits())
    with pytest.raises(RequestError, match="accompany needs locked notes"):
        plan_request(parse_request(_body(task="accompany")), Limits())
    with pytest.raises(RequestError, match="locked tracks not in the request"):
        plan_request(parse_request(_body(locked={"tracks": ["nope"]})), Limits())
    clash = [{"id": 1, "start": 0, "duration": 1, "pitch": 60}, {"start": 1, "duration": 1, "pitch": 62}]
    with pytest.raises(RequestError, match="ids must be unique"):  # the second note's id is its index, 1
        plan_request(parse_request(_body(notes=clash)), Limits())


def test_plan_from_a_file_with_a_tempo_change():
    request = request_from_midi(TEMPO_FILE, task="infill", region=(4, 12))
    plan = plan_request(request, Limits())
    # 4 beats at 100 bpm = 2.4 s; beat 8 = 4.8 s, then 150 bpm: beat 12 = 6.4 s.
    assert (plan.start_tick + plan.offset, plan.end_tick + plan.offset) == (240, 640)
    inside = [n for n in request.notes if 4 <= n.start < 12]
    assert sorted(plan.replaced_ids) == sorted(n.id for n in inside)
    assert len(plan.locked_ids) + len(plan.replaced_ids) == len(request.notes)
    assert plan.kept.sum() <= len(plan.locked_ids)
    onsets = plan.piece.events[:, 0] - TIME_OFFSET
    assert np.all(onsets[plan.kept & plan.prompt] < plan.start_tick)
    assert np.all(onsets[plan.kept & ~plan.prompt] >= plan.end_tick)  # infill: nothing locked inside it
    # A generated event converts back onto the DAW's beats through the tempo change.
    event = np.array([560 - plan.offset, DUR_OFFSET + 20, NOTE_OFFSET + 56 * 128 + 64])  # 5.6 s, trumpet
    note = event_to_note(plan, event)
    assert note is not None and note.start == pytest.approx(8 + 0.8 / 0.4)
    assert note.duration == pytest.approx(0.2 / 0.4)
    assert (note.program, note.pitch, note.track) == (56, 64, 0)
    outside = np.array([700 - plan.offset, DUR_OFFSET + 20, NOTE_OFFSET + 64])
    assert event_to_note(plan, outside) is None


def test_plan_accompany_by_bars_and_grid():
    request = request_from_midi(CHORALE, task="accompany", region=(2, 4), unit="bars",
                                locked={"tracks": [0]}, grid=0.25)
    plan = plan_request(request, Limits())
    assert plan.region == (4.0, 12.0)
    soprano = {n.id for n in request.notes if n.track == 0}
    assert set(plan.locked_ids) == soprano
    assert all(not str(i).startswith("0:") for i in plan.replaced_ids)
    seconds_per_beat = 60 / request.tempo[0].bpm
    tick = round((4 + 1.13) * seconds_per_beat * TIME_RESOLUTION) - plan.offset  # off the grid
    note = event_to_note(plan, np.array([tick, DUR_OFFSET + 7, NOTE_OFFSET + 52]))
    assert note.start == pytest.approx(5.25) and note.duration == pytest.approx(0.25)  # snapped, >= a step


def test_request_schema_is_published():
    schema = GenerateRequest.model_json_schema()
    assert {"task", "notes", "tempo", "region", "locked", "sampling", "grid"} <= set(schema["properties"])


def test_protocol_document_examples_are_valid():
    text = (Path(__file__).resolve().parents[1] / "plugins" / "PROTOCOL.md").read_text()
    blocks = [json.loads(b.split("```", 1)[0]) for b in text.split("```json\n")[1:]]
    request, response = blocks[0], blocks[1]
    plan = plan_request(GenerateRequest.model_validate(request), Limits())
    assert plan.region == (8.0, 16.0)  # bars 3-5 of 4/4
    assert plan.locked_ids == ["n1", "n2"]
    GenerateResponse.model_validate(response)


def _sampler_arguments(request: GenerateRequest, monkeypatch) -> dict:
    """What the engine hands the sampler for ``request`` (the sampler itself not run)."""
    from amt.plugins.engine import Engine
    from amt.sampling import sampler

    seen = []
    monkeypatch.setattr(sampler, "generate", lambda model, **kwargs: seen.append(kwargs) or [])
    Engine(model=None, name="none").run(plan_request(request, Limits()))
    return seen[0]


def _options_of(request: GenerateRequest, monkeypatch) -> SamplingOptions:
    """The SamplingOptions the engine hands the sampler for ``request``."""
    return _sampler_arguments(request, monkeypatch)["options"]


def test_the_chord_weight_hears_the_bar_lines_of_the_projects_meter(monkeypatch):
    # 3/4 then 2/4 from beat 6, at 60 bpm (a beat is 100 ticks): bars start on beats 0, 3, 6, 8, 10, ...
    body = json.loads(_body(region={"start": 1, "end": 12},
                            time_signatures=[{"beat": 0, "numerator": 3, "denominator": 4},
                                             {"beat": 6, "numerator": 2, "denominator": 4}],
                            tempo=[{"beat": 0, "bpm": 60}]))
    arguments = _sampler_arguments(GenerateRequest.model_validate(body), monkeypatch)
    ticks, strong = arguments["time_map"].beats(1300)
    beats, strong = ticks // 100, ticks[strong] // 100
    assert set(range(0, 13)) <= set(beats.tolist())
    assert [b for b in strong.tolist() if b <= 12] == [0, 3, 6, 8, 10, 12]


def test_musical_weights_default_to_the_samplers_and_reach_it(monkeypatch):
    defaults = SamplingOptions()
    sampling = Sampling()
    rows = {line.split("|")[1].strip(): line for line in
            (Path(__file__).resolve().parents[1] / "plugins" / "PROTOCOL.md").read_text().splitlines()
            if line.startswith("| `sampling.")}
    for name in ("key_weight", "chord_weight", "register_weight", "file_density"):
        assert getattr(sampling, name) == getattr(defaults, name)
        default = str(getattr(defaults, name)).lower()
        assert f"(default {default})" in rows[f"`sampling.{name}`"]  # the document says today's default
    body = json.loads(_body())
    options = _options_of(GenerateRequest.model_validate(body), monkeypatch)
    assert (options.key_weight, options.chord_weight, options.register_weight) == \
        (defaults.key_weight, defaults.chord_weight, defaults.register_weight)
    body["sampling"] = {"key_weight": 0.5, "chord_weight": 1, "register_weight": 0.05}
    options = _options_of(GenerateRequest.model_validate(body), monkeypatch)
    assert (options.key_weight, options.chord_weight, options.register_weight) == (0.5, 1.0, 0.05)


def test_file_density_matches_the_replaced_notes_or_the_music_before(monkeypatch):
    # Six piano notes (program 0) and two violin notes replaced in beats 4-8 (2 s at 120 bpm); one locked
    # note a beat before the region.
    notes = [{"start": 3, "duration": 1, "pitch": 72, "track": "melody"}]
    notes += [{"start": 4 + i * 0.5, "duration": 0.5, "pitch": 48 + i, "track": "piano"} for i in range(6)]
    notes += [{"start": 4 + i, "duration": 1, "pitch": 67, "track": "violin"} for i in range(2)]
    body = {"task": "accompany", "notes": notes, "region": {"start": 4, "end": 8},
            "tracks": [{"id": "melody", "program": 73}, {"id": "piano", "program": 0},
                       {"id": "violin", "program": 40}], "locked": {"tracks": ["melody"]}}
    assert _options_of(GenerateRequest.model_validate(body), monkeypatch).density == pytest.approx(8 / 2)
    body["sampling"] = {"instruments": [40]}  # only the violin is written: its two notes are the target
    assert _options_of(GenerateRequest.model_validate(body), monkeypatch).density == pytest.approx(2 / 2)
    body["sampling"] = {"file_density": False}
    assert _options_of(GenerateRequest.model_validate(body), monkeypatch).density is None
    body["sampling"] = {"density": 1.5}  # per beat: a given target wins, converted at 2 beats per second
    assert _options_of(GenerateRequest.model_validate(body), monkeypatch).density == pytest.approx(3.0)
    # Continue into an empty region: the locked music before it, 7 notes from beat 0 to beat 4 (2 s).
    before = [{"start": i * 0.5, "duration": 0.5, "pitch": 60 + i} for i in range(7)]
    body = {"task": "continue", "notes": before, "region": {"start": 4, "end": 8}}
    assert _options_of(GenerateRequest.model_validate(body), monkeypatch).density == pytest.approx(7 / 2)
