-- amt_generate.lua: write music into REAPER with the amt co-pilot (a running `amt serve`).
--
-- What it sends: the region is the time selection, or else the span of the selected MIDI items. The notes
-- are those of every MIDI item on the selected tracks and on the tracks of the selected items, near the
-- region (64 quarter notes either side). Positions are sent in quarter notes (REAPER's QN) with the
-- project's tempo map (sampled per beat, so tempo ramps are exact at every beat) and time signatures, so
-- the result lands on REAPER's bars.
--
-- What it writes: for infill and continue, each variation becomes a new take of the items on the region
-- (a copy of the item's active take without the notes the server replaced, plus the new notes); for
-- accompany, a new track "amt accompaniment" gets one item over the region with one take per variation.
-- Run amt_cycle_variations.lua (or REAPER's "Take: Switch items to next take") to audition them.
--
-- Locked notes: infill keeps everything outside the region, continue everything before it; notes you
-- selected in the MIDI editor inside the region are kept too. Accompany keeps every note it sends (the
-- selected items and the selected tracks) and writes the new parts beside them.
--
-- Needs curl on the PATH (built into Windows 10+ and macOS; `apt install curl` on Linux).

local amt = {}

amt.defaults = {
  url = "http://127.0.0.1:8765",
  task = "infill",        -- infill | accompany | continue
  variations = 3,
  temperature = 1.0,
  top_p = 0.95,
  grid = 0,               -- quantise new notes to this many beats; 0 = off, -1 = REAPER's grid
  context_beats = 64,     -- music either side of the region sent as context
  timeout_seconds = 300,
}
local SECTION = "amt_generate"

-- ---------------------------------------------------------------------------------------------- JSON
-- REAPER's Lua has no JSON library; this is the minimum the protocol needs (objects, arrays, strings,
-- numbers, booleans, null), kept in the script so installing it is one file.
local json = {}
json.null = setmetatable({}, { __tostring = function() return "null" end })

local function escape_string(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    local named = { ['"'] = '\\"', ['\\'] = '\\\\', ['\n'] = '\\n', ['\r'] = '\\r', ['\t'] = '\\t' }
    return named[c] or string.format("\\u%04x", c:byte())
  end) .. '"'
end

local function is_array(t)
  if getmetatable(t) == json.array_mt then return true end
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n > 0 and #t == n
end
json.array_mt = {}
function json.array(t) return setmetatable(t or {}, json.array_mt) end

function json.encode(value)
  local kind = type(value)
  if value == nil or value == json.null then return "null"
  elseif kind == "boolean" then return tostring(value)
  elseif kind == "number" then
    if value ~= value or value == math.huge or value == -math.huge then error("cannot encode " .. value) end
    if math.type and math.type(value) == "integer" then return tostring(value) end
    if value == math.floor(value) and math.abs(value) < 1e15 then return string.format("%d", value) end
    return string.format("%.15g", value)
  elseif kind == "string" then return escape_string(value)
  elseif kind == "table" then
    local parts = {}
    if is_array(value) then
      for i = 1, #value do parts[i] = json.encode(value[i]) end
      return "[" .. table.concat(parts, ",") .. "]"
    end
    local keys = {}
    for k in pairs(value) do keys[#keys + 1] = tostring(k) end
    table.sort(keys)  -- stable output, easier to read and test
    for i, k in ipairs(keys) do parts[i] = escape_string(k) .. ":" .. json.encode(value[k]) end
    return "{" .. table.concat(parts, ",") .. "}"
  end
  error("cannot encode a " .. kind)
end

function json.decode(text)
  local pos = 1
  local function fail(what) error(string.format("bad JSON at character %d: %s", pos, what)) end
  local function skip() pos = text:find("[^ \t\r\n]", pos) or #text + 1 end
  local value
  local function str()
    local out, i = {}, pos + 1
    while true do
      local c = text:sub(i, i)
      if c == "" then fail("unterminated string") end
      if c == '"' then pos = i + 1; return table.concat(out) end
      if c == "\\" then
        local e = text:sub(i + 1, i + 1)
        local simple = { b = "\b", f = "\f", n = "\n", r = "\r", t = "\t", ['"'] = '"', ["\\"] = "\\", ["/"] = "/" }
        if simple[e] then out[#out + 1] = simple[e]; i = i + 2
        elseif e == "u" then
          local code = tonumber(text:sub(i + 2, i + 5), 16) or fail("bad \\u escape")
          out[#out + 1] = utf8 and utf8.char(code) or string.char(code % 256); i = i + 6
        else fail("bad escape") end
      else out[#out + 1] = c; i = i + 1 end
    end
  end
  value = function()
    skip()
    local c = text:sub(pos, pos)
    if c == "{" then
      local obj = {}
      pos = pos + 1; skip()
      if text:sub(pos, pos) == "}" then pos = pos + 1; return obj end
      while true do
        skip()
        if text:sub(pos, pos) ~= '"' then fail("expected a key") end
        local k = str(); skip()
        if text:sub(pos, pos) ~= ":" then fail("expected ':'") end
        pos = pos + 1
        obj[k] = value(); skip()
        local d = text:sub(pos, pos); pos = pos + 1
        if d == "}" then return obj elseif d ~= "," then fail("expected ',' or '}'") end
      end
    elseif c == "[" then
      local arr = json.array()
      pos = pos + 1; skip()
      if text:sub(pos, pos) == "]" then pos = pos + 1; return arr end
      while true do
        arr[#arr + 1] = value(); skip()
        local d = text:sub(pos, pos); pos = pos + 1
        if d == "]" then return arr elseif d ~= "," then fail("expected ',' or ']'") end
      end
    elseif c == '"' then return str()
    elseif text:sub(pos, pos + 3) == "true" then pos = pos + 4; return true
    elseif text:sub(pos, pos + 4) == "false" then pos = pos + 5; return false
    elseif text:sub(pos, pos + 3) == "null" then pos = pos + 4; return json.null
    else
      local number = text:match("^-?%d+%.?%d*[eE]?[-+]?%d*", pos)
      if not number or number == "" then fail("unexpected character") end
      pos = pos + #number
      return tonumber(number) or fail("bad number")
    end
  end
  local result = value(); skip()
  if pos <= #text then fail("trailing characters") end
  return result
end
amt.json = json

-- ---------------------------------------------------------------------------------------- settings
function amt.settings()
  local s = {}
  for k, v in pairs(amt.defaults) do
    local saved = reaper.GetExtState(SECTION, k)
    if saved ~= nil and saved ~= "" then s[k] = type(v) == "number" and (tonumber(saved) or v) or saved
    else s[k] = v end
  end
  return s
end

function amt.ask(s)
  local ok, answer = reaper.GetUserInputs("amt: generate", 6,
    "Task (infill/accompany/continue),Variations (1-8),Temperature,Top-p,Grid in beats (0 off / -1 REAPER),"
      .. "Server URL,extrawidth=120",
    table.concat({ s.task, s.variations, s.temperature, s.top_p, s.grid, s.url }, ","))
  if not ok then return nil end
  local task, variations, temperature, top_p, grid, url = answer:match("([^,]*),([^,]*),([^,]*),([^,]*),([^,]*),(.*)")
  if not task then return nil end
  s.task, s.url = task:lower():gsub("%s", ""), url
  s.variations, s.temperature = tonumber(variations) or s.variations, tonumber(temperature) or s.temperature
  s.top_p, s.grid = tonumber(top_p) or s.top_p, tonumber(grid) or s.grid
  for _, k in ipairs({ "task", "variations", "temperature", "top_p", "grid", "url" }) do
    reaper.SetExtState(SECTION, k, tostring(s[k]), true)
  end
  return s
end

-- ------------------------------------------------------------------------------ reading the project
local function is_midi(take)
  return take ~= nil and reaper.TakeIsMIDI(take)
end

local function item_span_qn(item)
  local position = reaper.GetMediaItemInfo_Value(item, "D_POSITION")
  local length = reaper.GetMediaItemInfo_Value(item, "D_LENGTH")
  return reaper.TimeMap2_timeToQN(0, position), reaper.TimeMap2_timeToQN(0, position + length)
end

-- The region, the tracks to read and the items the user chose.
function amt.selection()
  local selected_items, tracks, track_set = {}, {}, {}
  local function add_track(track)
    if not track_set[track] then track_set[track] = true; tracks[#tracks + 1] = track end
  end
  for i = 0, reaper.CountSelectedMediaItems(0) - 1 do
    local item = reaper.GetSelectedMediaItem(0, i)
    if is_midi(reaper.GetActiveTake(item)) then
      selected_items[#selected_items + 1] = item
      add_track(reaper.GetMediaItem_Track(item))
    end
  end
  for i = 0, reaper.CountSelectedTracks(0) - 1 do add_track(reaper.GetSelectedTrack(0, i)) end
  local start_time, end_time = reaper.GetSet_LoopTimeRange(false, false, 0, 0, false)
  local region
  if end_time > start_time then
    region = { reaper.TimeMap2_timeToQN(0, start_time), reaper.TimeMap2_timeToQN(0, end_time) }
  elseif #selected_items > 0 then
    for _, item in ipairs(selected_items) do
      local a, b = item_span_qn(item)
      region = region and { math.min(region[1], a), math.max(region[2], b) } or { a, b }
    end
  end
  return region, tracks, selected_items
end

-- (beat, bpm) per beat from 0 to `last` (merged where equal), from REAPER's own QN <-> time map.
function amt.tempo_map(last)
  local points = {}
  local previous = reaper.TimeMap2_QNToTime(0, 0)
  for beat = 0, math.ceil(last) do
    local t = reaper.TimeMap2_QNToTime(0, beat + 1)
    local bpm = 60 / (t - previous)
    bpm = math.floor(bpm * 1e6 + 0.5) / 1e6
    if #points == 0 or math.abs(points[#points].bpm - bpm) > 1e-6 then
      points[#points + 1] = { beat = beat, bpm = bpm }
    end
    previous = t
  end
  return json.array(points)
end

function amt.time_signatures()
  local first_num, first_den = reaper.TimeMap_GetTimeSigAtTime(0, 0)
  local out = { { beat = 0, numerator = first_num, denominator = first_den } }
  for i = 0, reaper.CountTempoTimeSigMarkers(0) - 1 do
    local _, time, _, _, _, num, den = reaper.GetTempoTimeSigMarker(0, i)
    local beat = reaper.TimeMap2_timeToQN(0, time)
    if num > 0 then
      if beat < 1e-9 then out[1] = { beat = 0, numerator = num, denominator = den }
      elseif out[#out].numerator ~= num or out[#out].denominator ~= den then
        out[#out + 1] = { beat = math.floor(beat * 1e6 + 0.5) / 1e6, numerator = num, denominator = den }
      end
    end
  end
  return json.array(out)
end

-- Everything the server needs; `notes_of` remembers where each note came from for writing back.
function amt.build_request(s, region, tracks)
  local notes, track_list, sources = json.array(), json.array(), {}
  local locked_ids = json.array()
  local low, high = region[1] - s.context_beats, region[2] + s.context_beats
  for t, track in ipairs(tracks) do
    local _, name = reaper.GetTrackName(track)
    track_list[#track_list + 1] = { id = t, name = name }
    for i = 0, reaper.CountTrackMediaItems(track) - 1 do
      local item = reaper.GetTrackMediaItem(track, i)
      local take = reaper.GetActiveTake(item)
      local a, b = item_span_qn(item)
      if is_midi(take) and b > low and a < high then
        local _, count = reaper.MIDI_CountEvts(take)
        for k = 0, count - 1 do
          local _, sel, muted, p0, p1, chan, pitch, vel = reaper.MIDI_GetNote(take, k)
          local q0 = reaper.MIDI_GetProjQNFromPPQPos(take, p0)
          local q1 = reaper.MIDI_GetProjQNFromPPQPos(take, p1)
          if not muted and q1 > q0 and q0 >= 0 and q0 >= low and q0 < high then
            local id = #sources + 1
            sources[id] = { item = item, take = take, index = k }
            notes[#notes + 1] = { id = id, start = q0, duration = q1 - q0, pitch = pitch,
                                  velocity = math.max(vel, 1), track = t, channel = chan + 1 }
            local inside = q0 >= region[1] and q0 < region[2]
            -- Accompany never deletes anything, so everything sent is kept and shown to the model.
            if s.task == "accompany" or (sel and inside) then
              locked_ids[#locked_ids + 1] = id
            end
          end
        end
      end
    end
  end
  local grid = s.grid
  if grid < 0 then grid = reaper.GetSetProjectGrid(0, false) * 4 end  -- REAPER's grid is in whole notes
  local request = {
    task = s.task,
    notes = notes,
    tracks = track_list,
    tempo = amt.tempo_map(high),
    time_signatures = amt.time_signatures(),
    region = { start = region[1], ["end"] = region[2], unit = "beats" },
    locked = { ids = locked_ids },
    sampling = { variations = s.variations, temperature = s.temperature, top_p = s.top_p },
  }
  if grid > 0 then request.grid = grid end
  return request, sources
end

-- ----------------------------------------------------------------------------------------- HTTP
local windows = package.config:sub(1, 1) == "\\"

local function shell_quote(s)
  if windows then return '"' .. s .. '"' end
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

-- POST the request with curl; returns the decoded answer or raises with the server's message.
function amt.post(s, request)
  -- REAPER's resource folder is writable everywhere (os.tmpname can name an unwritable path on Windows).
  local base = reaper.GetResourcePath and (reaper.GetResourcePath() .. "/amt-" .. os.time()) or os.tmpname()
  local body_path, answer_path = base .. ".amt-request.json", base .. ".amt-answer.json"
  local f = assert(io.open(body_path, "wb"))
  f:write(json.encode(request)); f:close()
  local command = table.concat({
    "curl", "-s", "-S", "--max-time", tostring(s.timeout_seconds), "-H", shell_quote("Content-Type: application/json"),
    "--data-binary", shell_quote("@" .. body_path), "-o", shell_quote(answer_path), "-w", "%{http_code}",
    shell_quote(s.url .. "/generate") }, " ")
  local status
  if windows and reaper.ExecProcess then  -- no console window flashing up, unlike io.popen
    local out = reaper.ExecProcess(command, (s.timeout_seconds + 10) * 1000) or ""
    status = out:match("^%-?%d+\n(.*)$") or out
  else
    local pipe = io.popen(command); status = pipe:read("*a"); pipe:close()
  end
  os.remove(body_path)
  local g = io.open(answer_path, "rb")
  local text = g and g:read("*a") or ""
  if g then g:close() end
  os.remove(answer_path)
  os.remove(base)
  local code = tonumber((status or ""):match("(%d%d%d)"))
  if not code or code == 0 then
    error("could not reach the amt server at " .. s.url .. ": is `amt serve` running?")
  end
  local ok, answer = pcall(json.decode, text)
  if code ~= 200 then
    error(string.format("amt server answered %d: %s", code, ok and type(answer) == "table" and answer.error or text))
  end
  if not ok then error("the amt server sent bad JSON: " .. tostring(answer)) end
  return answer
end

-- ------------------------------------------------------------------------------------ writing back
local function insert_notes(take, notes)
  local programs = {}
  for _, n in ipairs(notes) do
    local p0 = reaper.MIDI_GetPPQPosFromProjQN(take, n.start)
    local p1 = reaper.MIDI_GetPPQPosFromProjQN(take, n.start + n.duration)
    reaper.MIDI_InsertNote(take, false, false, p0, p1, n.channel - 1, n.pitch, n.velocity, true)
    if n.channel ~= 10 and n.track == json.null then programs[n.channel] = n.program end
  end
  -- New instruments: a program change at the take start so a GM synth plays the right sound.
  for channel, program in pairs(programs) do
    local start = reaper.MIDI_GetPPQPosFromProjQN(take, 0)
    reaper.MIDI_InsertCC(take, false, false, math.max(start, 0), 0xC0, channel - 1, program, 0)
  end
  reaper.MIDI_Sort(take)
end

local function new_take_copy(item, take, name)
  reaper.SetActiveTake(take)
  reaper.SelectAllMediaItems(0, false)
  reaper.SetMediaItemSelected(item, true)
  reaper.Main_OnCommand(40639, 0)  -- Take: Duplicate active take (keeps the MIDI source type and settings)
  local copy = reaper.GetActiveTake(item)
  reaper.GetSetMediaItemTakeInfo_String(copy, "P_NAME", name, true)
  return copy
end

-- Write each variation: new takes on the items holding the region (infill/continue), or a new track.
function amt.apply(s, answer, region, tracks, sources, selected_items)
  local replaced = {}
  for _, id in ipairs(answer.replaced) do replaced[id] = true end
  local written = 0
  if s.task == "accompany" then
    local last = tracks[#tracks]
    local index = reaper.GetMediaTrackInfo_Value(last, "IP_TRACKNUMBER")
    reaper.InsertTrackAtIndex(index, true)
    local track = reaper.GetTrack(0, index)
    reaper.GetSetMediaTrackInfo_String(track, "P_NAME", "amt accompaniment", true)
    local item = reaper.CreateNewMIDIItemInProj(track, region[1], region[2], true)
    local first = reaper.GetActiveTake(item)
    -- All takes are copies of the empty first one, made before any is filled.
    local takes = { first }
    for v = 2, #answer.variations do takes[v] = new_take_copy(item, first, "") end
    for v, variation in ipairs(answer.variations) do
      reaper.GetSetMediaItemTakeInfo_String(takes[v], "P_NAME", "amt accompany " .. v, true)
      insert_notes(takes[v], variation.notes)
      written = written + #variation.notes
    end
    reaper.SetActiveTake(first)
    return written
  end
  -- infill / continue: per track, new takes on the item holding the region (the selected one first),
  -- without the notes the server replaced and with the new notes meant for that track. New notes for no
  -- track in particular (a new instrument) go to the first track.
  local per_track = {}
  for t = 1, #tracks do per_track[t] = {} end
  for v, variation in ipairs(answer.variations) do
    for _, note in ipairs(variation.notes) do
      local t = note.track ~= json.null and per_track[note.track] and note.track or 1
      per_track[t][v] = per_track[t][v] or {}
      table.insert(per_track[t][v], note)
    end
  end
  local chosen = {}
  for _, item in ipairs(selected_items) do
    local track = reaper.GetMediaItem_Track(item)
    chosen[track] = chosen[track] or item
  end
  for t, track in ipairs(tracks) do
    local doomed_any = false
    for id, source in pairs(sources) do
      if replaced[id] and reaper.GetMediaItem_Track(source.item) == track then doomed_any = true end
    end
    if doomed_any or next(per_track[t]) then
      local item = chosen[track]
      if not item then
        for i = 0, reaper.CountTrackMediaItems(track) - 1 do
          local candidate = reaper.GetTrackMediaItem(track, i)
          local a, b = item_span_qn(candidate)
          if is_midi(reaper.GetActiveTake(candidate)) and a < region[2] and b > region[1] then
            item = candidate
            break
          end
        end
      end
      if not item then item = reaper.CreateNewMIDIItemInProj(track, region[1], region[2], true) end
      local a, b = item_span_qn(item)
      if a > region[1] or b < region[2] then
        reaper.MIDI_SetItemExtents(item, math.min(a, region[1]), math.max(b, region[2]))
      end
      local original = reaper.GetActiveTake(item)
      -- Indices of this take's replaced notes, deleted from each copy from the last one down.
      local doomed = {}
      for id, source in pairs(sources) do
        if replaced[id] and source.take == original then doomed[#doomed + 1] = source.index end
      end
      table.sort(doomed, function(x, y) return x > y end)
      local first
      for v = 1, #answer.variations do
        local take = new_take_copy(item, original, string.format("amt %s %d", s.task, v))
        for _, k in ipairs(doomed) do reaper.MIDI_DeleteNote(take, k) end
        insert_notes(take, per_track[t][v] or {})
        written = written + #(per_track[t][v] or {})
        first = first or take
      end
      reaper.SetActiveTake(first)  -- hear the first variation
    end
  end
  return written
end

function amt.main()
  local s = amt.ask(amt.settings())
  if not s then return end
  local region, tracks, selected_items = amt.selection()
  if not region or #tracks == 0 then
    reaper.ShowMessageBox("Select MIDI items, or make a time selection and select tracks.", "amt", 0)
    return
  end
  local request, sources = amt.build_request(s, region, tracks)
  local ok, answer = pcall(amt.post, s, request)
  if not ok then reaper.ShowMessageBox(tostring(answer), "amt", 0); return end
  reaper.Undo_BeginBlock()
  reaper.PreventUIRefresh(1)
  local written = amt.apply(s, answer, region, tracks, sources, selected_items)
  reaper.PreventUIRefresh(-1)
  reaper.UpdateArrange()
  reaper.Undo_EndBlock(string.format("amt %s: %d variations", s.task, #answer.variations), -1)
  if written == 0 then reaper.ShowMessageBox("The model wrote no notes in the region; try again.", "amt", 0) end
end

-- Loaded by the test harness (AMT_LIBRARY set) it only returns its functions; run by REAPER it acts.
if AMT_LIBRARY then return amt end
amt.main()
