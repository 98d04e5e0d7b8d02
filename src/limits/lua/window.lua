-- Prepended to the scripts that count in calendar windows (UTC), on Redis's clock.
-- windowBounds(window, now) -> start, end (ms) of the minute|hour|day|month containing now.
local function windowBounds(window, now)
  if window == 'minute' then local s = now - now % 60000; return s, s + 60000 end
  if window == 'hour' then local s = now - now % 3600000; return s, s + 3600000 end
  if window == 'day' then local s = now - now % 86400000; return s, s + 86400000 end
  -- calendar month in UTC (days-from-civil, H. Hinnant)
  local function daysFromCivil(y, m, d)
    if m <= 2 then y = y - 1 end
    local era = math.floor(y / 400)
    local yoe = y - era * 400
    local mp = (m + 9) % 12
    local doy = math.floor((153 * mp + 2) / 5) + d - 1
    local doe = yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy
    return era * 146097 + doe - 719468
  end
  local z = math.floor(now / 86400000) + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524) - math.floor(doe / 146096)) / 365)
  local y = yoe + era * 400
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local m = mp < 10 and mp + 3 or mp - 9
  if m <= 2 then y = y + 1 end
  local ny, nm = y, m + 1
  if nm == 13 then ny = y + 1; nm = 1 end
  return daysFromCivil(y, m, 1) * 86400000, daysFromCivil(ny, nm, 1) * 86400000
end
