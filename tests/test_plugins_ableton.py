"""The Max for Live scripts under Node with Live's API (LiveAPI, Dict, outlets) and max-api stubbed: the
request built from a clip, variations written as new clips, and a round trip through a running server."""

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

NODE = shutil.which("node")
FOLDER = Path(__file__).resolve().parents[1] / "plugins" / "ableton"
pytestmark = pytest.mark.skipif(NODE is None, reason="no Node.js to run the Max for Live scripts")

# A Live set: track 0 "Keys" with a 16-beat clip in slot 0 (loop brace 4-8, notes 1-4, note 2 selected),
# slot 1 taken, slots 2+ empty; song tempo 90, clip in 4/4. Live objects are kept by path.
HARNESS = r"""
const vm = require("vm");
const fs = require("fs");
const path = require("path");
const [bridgeFile, clientFile, answerText, url] = process.argv.slice(2);
const slots = [{ has_clip: 1 }, { has_clip: 1 }, { has_clip: 0 }, { has_clip: 0 }];
const created = [];
const clipNotes = [
  { note_id: 1, pitch: 60, start_time: 0, duration: 1, velocity: 100, mute: 0 },
  { note_id: 2, pitch: 62, start_time: 4.5, duration: 0.5, velocity: 90, mute: 0 },
  { note_id: 3, pitch: 64, start_time: 5, duration: 1, velocity: 80, mute: 0 },
  { note_id: 4, pitch: 65, start_time: 9, duration: 2, velocity: 70, mute: 0 },
];
const dicts = {};
const statusLines = [];
let posted = null;
class LiveAPI {
  constructor(p) {
    this.path = p === "live_set view detail_clip" ? "live_set tracks 0 clip_slots 0 clip" : p;
    this.unquotedpath = this.path;
    this.id = 7;
  }
  get(prop) {
    const p = this.path;
    if (p === "live_set") return { tempo: [90] }[prop];
    if (p === "live_set tracks 0") return { name: ["Keys"] }[prop];
    if (p === "live_set tracks 0 clip_slots 0 clip") {
      return { is_midi_clip: [1], loop_start: [4], loop_end: [8], length: [16], signature_numerator: [4],
               signature_denominator: [4] }[prop];
    }
    const slot = p.match(/clip_slots (\d+)$/);
    if (slot) return [slots[Number(slot[1])].has_clip];
    throw new Error("unexpected get " + p + " " + prop);
  }
  getcount(prop) { return slots.length; }
  set(prop, value) {
    const clip = created.find((c) => c.path === this.path);
    clip[prop] = value;
  }
  call(name, ...args) {
    if (name === "get_notes_extended") return JSON.stringify({ notes: clipNotes });
    if (name === "get_selected_notes_extended") return JSON.stringify({ notes: [clipNotes[1]] });
    if (name === "create_clip") {
      const i = Number(this.path.split(" ").pop());
      slots[i].has_clip = 1;
      created.push({ path: this.path + " clip", length: args[0], notes: [] });
      return;
    }
    if (name === "add_new_notes") {
      created.find((c) => c.path === this.path).notes.push(...args[0].notes);
      return;
    }
    if (name === "create_scene") { slots.push({ has_clip: 0 }); return; }
    throw new Error("unexpected call " + name);
  }
}
class Dict {
  constructor(name) { this.name = name; }
  parse(text) { dicts[this.name] = JSON.parse(text); }
  stringify() { return JSON.stringify(dicts[this.name]); }
}
const sandbox = {
  LiveAPI, Dict, JSON, Math, Number, String,
  setinletassist() {}, setoutletassist() {},
  outlet(n, ...args) { if (n === 0) posted = args; else statusLines.push(args.slice(1).join(" ")); },
  arrayfromargs(a) { return Array.from(a); },
  module: { exports: {} },
};
vm.createContext(sandbox);
vm.runInContext(fs.readFileSync(bridgeFile, "utf8"), sandbox);
const bridge = sandbox.module.exports;

async function main() {
  bridge.task("infill");
  bridge.variations(2);
  bridge.grid(0.25);
  bridge.generate();
  const request = dicts.amt_request;
  if (url) {
    // amt_client.js with a stand-in max-api: it POSTs the dictionary to the real server.
    const handlers = {};
    const outs = [];
    const maxApi = {
      addHandler(name, fn) { handlers[name] = fn; },
      async getDict(name) { return dicts[name]; },
      async setDict(name, value) { dicts[name] = value; },
      async outlet(...args) { outs.push(args); },
    };
    const Module = require("module");
    const original = Module._load;
    Module._load = function (request, parent, isMain) {
      return request === "max-api" ? maxApi : original.apply(this, arguments);
    };
    require(clientFile);
    await handlers.post(url + "/generate");
    if (outs[0][0] !== "response") throw new Error("client said " + JSON.stringify(outs));
  } else {
    dicts.amt_response = JSON.parse(answerText);
  }
  bridge.response();
  console.log(JSON.stringify({ request, posted, created, status: statusLines, slots }));
}
main().catch((e) => { console.error(e); process.exit(1); });
"""

CANNED = {
    "task": "infill", "region": [4.0, 8.0], "locked": [1, 2, 4], "replaced": [3],
    "variations": [
        {"index": 0, "notes": [{"start": 5.0, "duration": 0.5, "pitch": 67, "velocity": 64, "program": 0,
                                "channel": 1, "track": 1, "track_name": "Piano (GM 1)"}]},
        {"index": 1, "notes": []},
    ],
    "generation_seconds": 0.25, "queue_seconds": 0.0, "model": "canned", "protocol": 1,
}


def run_harness(tmp_path: Path, url: str = "") -> dict:
    script = tmp_path / "harness.js"
    script.write_text(HARNESS)
    result = subprocess.run(
        [NODE, str(script), str(FOLDER / "amt_bridge.js"), str(FOLDER / "amt_client.js"), json.dumps(CANNED),
         url], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_request_from_the_detail_clip(tmp_path):
    out = run_harness(tmp_path)
    request = GenerateRequest.model_validate(out["request"])
    assert out["posted"] == ["post", "http://127.0.0.1:8765/generate"]
    assert (request.task, request.region.start, request.region.end, request.grid) == ("infill", 4, 8, 0.25)
    assert [(p.beat, p.bpm) for p in request.tempo] == [(0, 90)]
    notes = [(n.id, n.start, n.pitch) for n in request.notes]
    assert notes == [(1, 0, 60), (2, 4.5, 62), (3, 5, 64), (4, 9, 65)]
    assert request.tracks[0].name == "Keys"
    assert request.locked.ids == [2]  # selected inside the loop brace
    plan = plan_request(request, Limits())
    assert plan.replaced_ids == [3] and sorted(plan.locked_ids) == [1, 2, 4]


def test_variations_become_clips_in_empty_slots(tmp_path):
    out = run_harness(tmp_path)
    paths = [c["path"] for c in out["created"]]
    assert paths == ["live_set tracks 0 clip_slots 2 clip", "live_set tracks 0 clip_slots 3 clip"]
    first, second = out["created"]
    assert (first["name"], first["length"]) == ("amt infill 1", 16)
    kept = [(n["pitch"], n["start_time"]) for n in first["notes"]]
    assert kept == [(60, 0), (62, 4.5), (65, 9), (67, 5.0)]  # note 3 replaced by the new note
    assert [(n["pitch"], n["start_time"]) for n in second["notes"]] == [(60, 0), (62, 4.5), (65, 9)]
    assert "2 variation(s), 1 new notes" in out["status"][-1]


def test_round_trip_through_a_running_server(tmp_path):
    torch.manual_seed(0)
    with BackgroundServer(create_app(create_model(tiny_config()).eval(), model_name="tiny")) as server:
        out = run_harness(tmp_path, url=server.url)
    assert len(out["created"]) == 2
    for clip in out["created"]:
        for note in clip["notes"]:
            assert 0 <= note["start_time"] < 16 and 0 <= note["pitch"] <= 127
        new = [n for n in clip["notes"] if 4 <= n["start_time"] < 8 and n["pitch"] not in (62, 64)]
        for note in new:
            assert abs(note["start_time"] / 0.25 - round(note["start_time"] / 0.25)) < 1e-9
