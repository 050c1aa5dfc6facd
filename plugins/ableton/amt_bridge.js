// amt_bridge.js: the Live side of the amt Max for Live device (a Max [js] object; ES5, as Max's JS engine).
//
// "generate" reads the clip shown in Live's detail view (Session or Arrangement), sends its notes in beats
// with the clip's loop brace as the region to write, and on the answer writes each variation as a new
// Session clip in the next empty slots of the same track (launch them to audition: that is the
// "cycle variations" of Live). HTTP is done by amt_client.js in a [node.script] object; requests and
// answers travel through the Max dictionaries "amt_request" and "amt_response" (clips can be larger
// than a Max message).
//
// Locked notes: infill keeps everything outside the loop brace (continue: everything before it) plus the
// notes you selected inside it; accompany keeps the whole clip and writes new parts beside it.

autowatch = 1;
inlets = 1;
outlets = 2;  // 0: "post URL" to [node.script amt_client.js]; 1: status text for the device's display
setinletassist(0, "generate, response, failed, task/variations/temperature/top_p/grid/url settings");
setoutletassist(0, "to node.script amt_client.js");
setoutletassist(1, "status text");

var settings = { url: "http://127.0.0.1:8765", task: "infill", variations: 3, temperature: 1.0, top_p: 0.95,
                 grid: 0 };
var pending = null;  // what the answer will be written against: the clip's path, notes and region

function status(text) {
  outlet(1, "set", text);
}

function task(name) {
  if (name === "infill" || name === "accompany" || name === "continue") settings.task = name;
  else status("unknown task " + name);
}
function variations(n) { settings.variations = Math.max(1, Math.min(8, Math.round(n))); }
function temperature(x) { settings.temperature = x; }
function top_p(x) { settings.top_p = x; }
function grid(x) { settings.grid = x; }  // beats; 0 = off
function url(u) { settings.url = u; }

function liveNumber(api, property) {
  return Number(api.get(property)[0]);
}

// Notes of a clip (Live 11+ API), as plain objects in clip beats.
function readNotes(clip, selectedOnly) {
  var call = selectedOnly ? clip.call("get_selected_notes_extended")
                          : clip.call("get_notes_extended", 0, 128, -100000, 200000);
  var parsed = JSON.parse(call);
  return parsed.notes || [];
}

// Track index and slot index from a clip path "live_set tracks 2 clip_slots 5 clip" (slot -1 for
// Arrangement clips).
function clipPlace(clip) {
  var words = String(clip.unquotedpath || clip.path).replace(/"/g, "").split(" ");
  var place = { track: -1, slot: -1 };
  for (var i = 0; i < words.length - 1; i++) {
    if (words[i] === "tracks") place.track = Number(words[i + 1]);
    if (words[i] === "clip_slots") place.slot = Number(words[i + 1]);
  }
  return place;
}

function buildRequest(clip) {
  var place = clipPlace(clip);
  var track = new LiveAPI("live_set tracks " + place.track);
  var song = new LiveAPI("live_set");
  var notes = readNotes(clip, false);
  var selected = {};
  var chosen = readNotes(clip, true);
  for (var s = 0; s < chosen.length; s++) selected[chosen[s].note_id] = true;
  var region = [liveNumber(clip, "loop_start"), liveNumber(clip, "loop_end")];
  var out = [];
  var locked = [];
  for (var i = 0; i < notes.length; i++) {
    var n = notes[i];
    if (n.mute || n.start_time < 0 || n.duration <= 0) continue;
    out.push({ id: n.note_id, start: n.start_time, duration: n.duration, pitch: n.pitch,
               velocity: Math.max(1, Math.min(127, Math.round(n.velocity))), track: 1 });
    var inside = n.start_time >= region[0] && n.start_time < region[1];
    if (settings.task !== "accompany" && inside && selected[n.note_id]) locked.push(n.note_id);
  }
  var request = {
    task: settings.task,
    notes: out,
    // A name with spaces can come back as several atoms.
    tracks: [{ id: 1, name: [].concat(track.get("name")).join(" ") }],
    // Live's song tempo (tempo automation is not visible to the API: the clip plays at this tempo).
    tempo: [{ beat: 0, bpm: liveNumber(song, "tempo") }],
    time_signatures: [{ beat: 0, numerator: liveNumber(clip, "signature_numerator"),
                        denominator: liveNumber(clip, "signature_denominator") }],
    region: { start: region[0], end: region[1], unit: "beats" },
    locked: settings.task === "accompany" ? { tracks: [1] } : { ids: locked },
    sampling: { variations: settings.variations, temperature: settings.temperature, top_p: settings.top_p }
  };
  if (settings.grid > 0) request.grid = settings.grid;
  return { request: request, place: place, notes: out, length: liveNumber(clip, "length") };
}

function generate() {
  var clip = new LiveAPI("live_set view detail_clip");
  if (!clip || Number(clip.id) === 0) { status("Select a MIDI clip first"); return; }
  if (liveNumber(clip, "is_midi_clip") !== 1) { status("The selected clip is not MIDI"); return; }
  var built = buildRequest(clip);
  if (built.request.region.end <= built.request.region.start) { status("Set the clip's loop brace"); return; }
  pending = built;
  var dict = new Dict("amt_request");
  dict.parse(JSON.stringify(built.request));
  status("generating " + settings.variations + " variation(s)...");
  outlet(0, "post", settings.url + "/generate");
}

// The next empty clip slot of the track at or after `from`, adding a scene when there is none.
function emptySlot(trackIndex, from) {
  var track = new LiveAPI("live_set tracks " + trackIndex);
  var count = track.getcount("clip_slots");
  for (var i = Math.max(from, 0); i < count; i++) {
    var slot = new LiveAPI("live_set tracks " + trackIndex + " clip_slots " + i);
    if (liveNumber(slot, "has_clip") === 0) return slot;
  }
  new LiveAPI("live_set").call("create_scene", -1);
  return new LiveAPI("live_set tracks " + trackIndex + " clip_slots " + count);
}

function response() {
  if (!pending) return;
  var answer = JSON.parse(new Dict("amt_response").stringify());
  var replaced = {};
  for (var r = 0; r < answer.replaced.length; r++) replaced[answer.replaced[r]] = true;
  var from = pending.place.slot + 1;
  var written = 0;
  for (var v = 0; v < answer.variations.length; v++) {
    var notes = [];
    if (settings.task !== "accompany") {
      for (var k = 0; k < pending.notes.length; k++) {
        var old = pending.notes[k];
        if (!replaced[old.id]) notes.push({ pitch: old.pitch, start_time: old.start, duration: old.duration,
                                            velocity: old.velocity, mute: 0 });
      }
    }
    var fresh = answer.variations[v].notes;
    for (var j = 0; j < fresh.length; j++) {
      notes.push({ pitch: fresh[j].pitch, start_time: fresh[j].start, duration: fresh[j].duration,
                   velocity: fresh[j].velocity, mute: 0 });
    }
    var slot = emptySlot(pending.place.track, from);
    slot.call("create_clip", Math.max(pending.length, answer.region[1]));
    from = Number(String(slot.path).replace(/"/g, "").split(" ").pop()) + 1;
    var clip = new LiveAPI(String(slot.unquotedpath || slot.path).replace(/"/g, "") + " clip");
    clip.set("name", "amt " + settings.task + " " + (v + 1));
    if (notes.length) clip.call("add_new_notes", { notes: notes });
    written += fresh.length;
  }
  status(answer.variations.length + " variation(s), " + written + " new notes, "
         + answer.generation_seconds.toFixed(1) + " s");
  pending = null;
}

// A failed request (named so as not to shadow Max's own error() printing function).
function failed(message) {
  pending = null;
  status("amt: " + arrayfromargs(arguments).join(" "));
}

// Node (the test harness) loads this file as a module; Max ignores this.
if (typeof module !== "undefined") {
  module.exports = { generate: generate, response: response, failed: failed, task: task, variations: variations,
                     grid: grid, settings: settings };
}
