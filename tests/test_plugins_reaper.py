"""The REAPER script under a Lua 5.4 interpreter with REAPER's API stubbed: request building, JSON, writing
takes back, and one real round trip through curl to a running server."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from amt.models import create_model, tiny_config
from amt.plugins.engine import Limits, plan_request
from amt.plugins.protocol import GenerateRequest
from amt.plugins.server import BackgroundServer, create_app

LUA = shutil.which("lua5.4") or shutil.which("lua")
SCRIPT = Path(__file__).resolve().parents[1] / "plugins" / "reaper" / "amt_generate.lua"
CYCLE = SCRIPT.with_name("amt_cycle_variations.lua")
pytestmark = pytest.mark.skipif(LUA is None, reason="no Lua interpreter (apt-get install lua5.4)")

# A fake REAPER project: 120 bpm until QN 8, then 60 bpm; 4/4, then 3/4 from QN 8. Track 1 "Piano" has one
# MIDI item over QN 0-16 (960 PPQ), track 2 "Bass" one over QN 0-16. PPQ positions are take-relative.
HARNESS = r"""
AMT_LIBRARY = true
local PPQ = 960
local function qn_to_time(q) if q <= 8 then return q * 0.5 else return 4 + (q - 8) * 1.0 end end
local function time_to_qn(t) if t <= 4 then return t / 0.5 else return 8 + (t - 4) / 1.0 end end
local function item(track, notes)
  return { track = track, pos = 0, len = qn_to_time(16), takes = {}, active = 1, init = notes }
end
local tracks = { { name = "Piano", number = 1 }, { name = "Bass", number = 2 } }
local items = {
  item(tracks[1], { {0, 1, 60, 90, false}, {4, 1, 62, 80, true}, {5, 1, 64, 70, false},
                    {13, 2, 67, 60, false} }),
  item(tracks[2], { {0, 4, 36, 100, false}, {6, 2, 38, 100, false} }),
}
for _, it in ipairs(items) do
  local take = { item = it, name = "orig", notes = {}, ccs = {} }
  for _, n in ipairs(it.init) do
    take.notes[#take.notes + 1] = { p0 = n[1] * PPQ, p1 = (n[1] + n[2]) * PPQ, chan = 0, pitch = n[3],
                                    vel = n[4], sel = n[5] }
  end
  it.takes[1] = take
  tracks[it.track.number].items = tracks[it.track.number].items or {}
  table.insert(tracks[it.track.number].items, it)
end
local selected_items, selected_tracks = { items[1] }, { tracks[2] }
local loop = { 2.0, 8.0 }  -- seconds: QN 4 .. 12
local ext, calls = {}, {}
reaper = {
  GetExtState = function(s, k) return ext[k] or "" end,
  SetExtState = function(s, k, v) ext[k] = v end,
  CountSelectedMediaItems = function() return #selected_items end,
  GetSelectedMediaItem = function(_, i) return selected_items[i + 1] end,
  CountSelectedTracks = function() return #selected_tracks end,
  GetSelectedTrack = function(_, i) return selected_tracks[i + 1] end,
  GetActiveTake = function(it) return it.takes[it.active] end,
  TakeIsMIDI = function(take) return true end,
  GetMediaItem_Track = function(it) return it.track end,
  GetSet_LoopTimeRange = function() return loop[1], loop[2] end,
  TimeMap2_timeToQN = function(_, t) return time_to_qn(t) end,
  TimeMap2_QNToTime = function(_, q) return qn_to_time(q) end,
  GetMediaItemInfo_Value = function(it, key) if key == "D_POSITION" then return it.pos end return it.len end,
  TimeMap_GetTimeSigAtTime = function() return 4, 4, 120 end,
  CountTempoTimeSigMarkers = function() return 2 end,
  GetTempoTimeSigMarker = function(_, i)
    if i == 0 then return true, 0, 0, 0, 120, 4, 4, false end
    return true, 4.0, 2, 0, 60, 3, 4, false
  end,
  GetTrackName = function(track) return true, track.name end,
  CountTrackMediaItems = function(track) return #(track.items or {}) end,
  GetTrackMediaItem = function(track, i) return track.items[i + 1] end,
  MIDI_CountEvts = function(take) return 1, #take.notes, 0, 0 end,
  MIDI_GetNote = function(take, k)
    local n = take.notes[k + 1]
    return true, n.sel, false, n.p0, n.p1, n.chan, n.pitch, n.vel
  end,
  MIDI_GetProjQNFromPPQPos = function(take, p) return time_to_qn(take.item.pos) + p / PPQ end,
  MIDI_GetPPQPosFromProjQN = function(take, q) return (q - time_to_qn(take.item.pos)) * PPQ end,
  GetSetProjectGrid = function() return 0.0625 end,
  SetActiveTake = function(take)
    for i, t in ipairs(take.item.takes) do if t == take then take.item.active = i end end
  end,
  SelectAllMediaItems = function() end,
  SetMediaItemSelected = function(it) calls.selected = it end,
  Main_OnCommand = function(id)
    assert(id == 40639, "unexpected action " .. id)
    local it = calls.selected
    local src = it.takes[it.active]
    local copy = { item = it, name = src.name, notes = {}, ccs = {} }
    for i, n in ipairs(src.notes) do copy.notes[i] = { p0 = n.p0, p1 = n.p1, chan = n.chan, pitch = n.pitch,
      vel = n.vel, sel = n.sel } end
    table.insert(it.takes, copy)
    it.active = #it.takes
  end,
  GetSetMediaItemTakeInfo_String = function(take, key, value) take.name = value end,
  MIDI_DeleteNote = function(take, k) table.remove(take.notes, k + 1) end,
  MIDI_InsertNote = function(take, sel, muted, p0, p1, chan, pitch, vel)
    take.notes[#take.notes + 1] = { p0 = p0, p1 = p1, chan = chan, pitch = pitch, vel = vel, sel = sel }
  end,
  MIDI_InsertCC = function(take, sel, muted, ppq, kind, chan, a, b)
    take.ccs[#take.ccs + 1] = { ppq = ppq, kind = kind, chan = chan, a = a }
  end,
  MIDI_Sort = function(take) table.sort(take.notes, function(x, y) return x.p0 < y.p0 end) end,
  MIDI_SetItemExtents = function(it, a, b) it.pos = qn_to_time(a); it.len = qn_to_time(b) - it.pos end,
  GetMediaTrackInfo_Value = function(track) return track.number end,
  InsertTrackAtIndex = function(index)
    tracks[#tracks + 1] = { name = "", number = index + 1, items = {} }
  end,
  GetTrack = function(_, index) return tracks[index + 1] end,
  GetSetMediaTrackInfo_String = function(track, key, value) track.name = value end,
  CreateNewMIDIItemInProj = function(track, a, b, qn)
    local it = { track = track, pos = qn_to_time(a), len = qn_to_time(b) - qn_to_time(a), takes = {},
                 active = 1 }
    it.takes[1] = { item = it, name = "", notes = {}, ccs = {} }
    table.insert(track.items, it)
    items[#items + 1] = it
    return it
  end,
}
local amt = dofile(SCRIPT)
local s = amt.settings()
s.task, s.variations, s.grid, s.url = TASK, 2, -1, URL
local region, sel_tracks, chosen = amt.selection()
local request, sources = amt.build_request(s, region, sel_tracks)
local answer = URL ~= "" and amt.post(s, request) or amt.json.decode(ANSWER)
local written = amt.apply(s, answer, region, sel_tracks, sources, chosen)
local function dump(it)
  local takes = {}
  for i, take in ipairs(it.takes) do
    local notes = {}
    for _, n in ipairs(take.notes) do
      notes[#notes + 1] = { n.p0 / PPQ, (n.p1 - n.p0) / PPQ, n.pitch, n.chan, n.vel }
    end
    takes[i] = { name = take.name, notes = amt.json.array(notes), ccs = amt.json.array(take.ccs) }
  end
  return amt.json.array(takes)
end
local new = items[3] and { track = items[3].track.name, takes = dump(items[3]), active = items[3].active }
print(amt.json.encode({ request = request, written = written, takes = dump(items[1]), bass = dump(items[2]),
  active = items[1].active, answer = answer, new = new }))
"""


def run_harness(tmp_path, task="infill", answer=None, url=""):
    harness = tmp_path / "harness.lua"
    prelude = (f"SCRIPT = {json.dumps(str(SCRIPT))}\nTASK = {json.dumps(task)}\nURL = {json.dumps(url)}\n"
               f"ANSWER = {json.dumps(json.dumps(answer or {}))}\n")
    harness.write_text(prelude + HARNESS)
    result = subprocess.run([LUA, str(harness)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


CANNED = {
    "task": "infill", "region": [4.0, 12.0], "locked": [1, 2, 4, 5], "replaced": [3, 6],
    "variations": [
        {"index": 0, "notes": [{"start": 5.0, "duration": 0.5, "pitch": 65, "velocity": 77, "program": 0,
                                "channel": 1, "track": 1, "track_name": "Piano (GM 1)"}]},
        {"index": 1, "notes": [{"start": 9.25, "duration": 1.0, "pitch": 72, "velocity": 70, "program": 40,
                                "channel": 2, "track": None, "track_name": "Strings (GM 41)"}]},
    ],
    "generation_seconds": 0.1, "queue_seconds": 0.0, "model": "canned", "protocol": 1,
}


def test_request_from_the_project(tmp_path):
    out = run_harness(tmp_path, answer=CANNED)
    request = GenerateRequest.model_validate(out["request"])  # the script speaks the protocol
    assert (request.region.start, request.region.end) == (4.0, 12.0)
    assert [(p.beat, p.bpm) for p in request.tempo] == [(0, 120.0), (8, 60.0)]
    assert [(t.beat, t.numerator, t.denominator) for t in request.time_signatures] == [(0, 4, 4), (8, 3, 4)]
    assert [(t.id, t.name) for t in request.tracks] == [(1, "Piano"), (2, "Bass")]
    piano = [(n.start, n.duration, n.pitch, n.velocity) for n in request.notes if n.track == 1]
    assert piano == [(0, 1, 60, 90), (4, 1, 62, 80), (5, 1, 64, 70), (13, 2, 67, 60)]
    assert request.grid == 0.25  # REAPER's 1/16 grid, in beats
    assert request.locked.ids == [2]  # the note selected in the MIDI editor inside the region
    assert request.sampling.variations == 2
    plan = plan_request(request, Limits())  # and the server reads its beats on the same clock
    assert (plan.start_tick + plan.offset, plan.end_tick + plan.offset) == (200, 800)
    assert plan.replaced_ids == [3, 6]


def test_variations_become_takes(tmp_path):
    out = run_harness(tmp_path, answer=CANNED)
    takes = out["takes"]
    assert [t["name"] for t in takes] == ["orig", "amt infill 1", "amt infill 2"]
    original = [[0, 1, 60, 0, 90], [4, 1, 62, 0, 80], [5, 1, 64, 0, 70], [13, 2, 67, 0, 60]]
    assert takes[0]["notes"] == original  # untouched
    kept = [n for n in original if n[2] != 64]  # note 3 was replaced
    assert takes[1]["notes"] == sorted([*kept, [5, 0.5, 65, 0, 77]])
    assert takes[2]["notes"] == sorted([*kept, [9.25, 1, 72, 1, 70]], key=lambda n: n[0])
    assert takes[2]["ccs"] == [{"ppq": 0, "kind": 0xC0, "chan": 1, "a": 40}]  # a new instrument's program
    assert out["active"] == 2 and out["written"] == 2
    # The bass note in the region was replaced too: its item gets takes without it (and no new notes).
    bass = out["bass"]
    assert [t["name"] for t in bass] == ["orig", "amt infill 1", "amt infill 2"]
    assert bass[1]["notes"] == bass[2]["notes"] == [[0, 4, 36, 0, 100]]


def test_accompaniment_goes_to_a_new_track(tmp_path):
    answer = dict(CANNED, task="accompany", locked=[1, 2, 3, 4, 5, 6], replaced=[])
    out = run_harness(tmp_path, task="accompany", answer=answer)
    request = GenerateRequest.model_validate(out["request"])
    assert request.locked.ids == [1, 2, 3, 4, 5, 6]  # everything sent is kept: accompany deletes nothing
    assert plan_request(request, Limits()).replaced_ids == []
    assert [t["name"] for t in out["takes"]] == ["orig"]  # the part itself is not touched
    new = out["new"]
    assert new["track"] == "amt accompaniment" and new["active"] == 1
    assert [t["name"] for t in new["takes"]] == ["amt accompany 1", "amt accompany 2"]
    # Item starts at QN 4 (the region), so take-relative positions are 1 and 5.25 beats in.
    assert new["takes"][0]["notes"] == [[1, 0.5, 65, 0, 77]]
    assert new["takes"][1]["notes"] == [[5.25, 1, 72, 1, 70]]


@pytest.mark.skipif(shutil.which("curl") is None, reason="the script posts with curl, which is not installed")
def test_round_trip_through_a_running_server(tmp_path):
    torch.manual_seed(0)
    with BackgroundServer(create_app(create_model(tiny_config()).eval(), model_name="tiny")) as server:
        out = run_harness(tmp_path, url=server.url)
    assert out["answer"]["task"] == "infill" and len(out["answer"]["variations"]) == 2
    assert len(out["takes"]) == 3
    for take, variation in zip(out["takes"][1:], out["answer"]["variations"], strict=True):
        for note in variation["notes"]:
            if note["track"] == 1:
                assert [note["start"], note["duration"], note["pitch"], note["channel"] - 1,
                        note["velocity"]] in take["notes"]


def test_json_codec(tmp_path):
    code = (f"AMT_LIBRARY = true\nreaper = {{}}\nlocal amt = dofile({json.dumps(str(SCRIPT))})\n"
            "local v = amt.json.decode('{\"a\": [1, 2.5, -3e2, true, false, null, "
            "\"q\\\\\"\\\\u00e9\\\\n\"], \"b\": {}, \"c\": []}')\n"
            "print(amt.json.encode(v))\n"
            "print(pcall(amt.json.decode, '{\"a\": }'))\n")
    harness = tmp_path / "codec.lua"
    harness.write_text(code)
    result = subprocess.run([LUA, str(harness)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    first, second = result.stdout.splitlines()
    assert json.loads(first) == {"a": [1, 2.5, -300, True, False, None, 'q"é\n'], "b": {}, "c": []}
    assert second.startswith("false") and "bad JSON" in second


def test_cycle_script_wraps_around(tmp_path):
    code = r"""
local item = { takes = { "a", "b", "c" }, active = 3 }
reaper = {
  CountSelectedMediaItems = function() return 1 end,
  GetSelectedMediaItem = function() return item end,
  CountTakes = function(it) return #it.takes end,
  GetActiveTake = function(it) return it.active end,
  GetMediaItemTakeInfo_Value = function(take) return take - 1 end,
  GetTake = function(it, i) return i + 1 end,
  SetActiveTake = function(take) item.active = take end,
  Undo_BeginBlock = function() end, Undo_EndBlock = function() end, UpdateArrange = function() end,
}
dofile(SCRIPT)
io.write(item.active, " ")
dofile(SCRIPT)
print(item.active)
"""
    harness = tmp_path / "cycle.lua"
    harness.write_text(f"SCRIPT = {json.dumps(str(CYCLE))}\n" + code)
    result = subprocess.run([LUA, str(harness)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["1", "2"]
