-- Adds what one metered response consumed to its tenant's spend, on Redis's clock.
-- (windowBounds comes from window.lua, prepended.)
-- KEYS: spend (hash w = window start, n = tokens), days (hash day number -> tokens)
-- ARGV: tokens, window (minute|hour|day|month), daysKept
-- Returns the window's spend after the charge.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local tokens, window, kept = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3])
local ws, we = windowBounds(window, now)
local q = redis.call('HMGET', KEYS[1], 'w', 'n')
local used = 0
if q[1] and tonumber(q[1]) == ws then used = tonumber(q[2]) end
used = used + tokens
redis.call('HSET', KEYS[1], 'w', ws, 'n', used)
redis.call('PEXPIREAT', KEYS[1], we + 60000)
local day = math.floor(now / 86400000)
redis.call('HINCRBY', KEYS[2], day, tokens)
redis.call('HDEL', KEYS[2], day - kept)
redis.call('PEXPIRE', KEYS[2], (kept + 1) * 86400000)
return used
