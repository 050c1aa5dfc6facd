-- amt_cycle_variations.lua: make the next take active on every selected item (wrapping around), so the
-- variations written by amt_generate.lua can be auditioned one after another. Bind it to a key.

local count = reaper.CountSelectedMediaItems(0)
if count == 0 then
  reaper.ShowMessageBox("Select the items whose variations you want to cycle.", "amt", 0)
  return
end
reaper.Undo_BeginBlock()
for i = 0, count - 1 do
  local item = reaper.GetSelectedMediaItem(0, i)
  local takes = reaper.CountTakes(item)
  if takes > 1 then
    local active = reaper.GetActiveTake(item)
    local number = reaper.GetMediaItemTakeInfo_Value(active, "IP_TAKENUMBER")
    reaper.SetActiveTake(reaper.GetTake(item, (number + 1) % takes))
  end
end
reaper.UpdateArrange()
reaper.Undo_EndBlock("amt: next variation", -1)
