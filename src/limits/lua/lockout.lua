-- Authentication-failure lockout for one client IP, on Redis's own clock (TIME).
-- KEYS[1]: `${prefix}{ip:<ip>}:lockout` (hash: n = failures in the window, w = window end, u = locked until)
-- ARGV: failures, windowMs, durationMs. failures = 0: only ask (no failure is counted).
-- Returns: ms left of the lockout (0: not locked out).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local v = redis.call('HMGET', KEYS[1], 'n', 'w', 'u')
local u = tonumber(v[3] or '0')
if u > now then return u - now end
local failures = tonumber(ARGV[1])
if failures == 0 then return 0 end
local windowMs, durationMs = tonumber(ARGV[2]), tonumber(ARGV[3])
local n, w = tonumber(v[1] or '0'), tonumber(v[2] or '0')
if w <= now then
  n = 0
  w = now + windowMs
end
n = n + 1
if n >= failures then
  redis.call('HSET', KEYS[1], 'n', 0, 'w', now, 'u', now + durationMs)
  redis.call('PEXPIRE', KEYS[1], durationMs)
  return durationMs
end
redis.call('HSET', KEYS[1], 'n', n, 'w', w, 'u', 0)
redis.call('PEXPIRE', KEYS[1], w - now)
return 0
