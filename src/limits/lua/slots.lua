-- Keeps the concurrency slots of one replica's in-flight requests alive, on Redis's clock (TIME).
-- KEYS[1]: the concurrency key (sorted set: slot id → expiry ms)
-- ARGV: ttlMs, nHold, hold slot ids…, drop slot ids…
-- Held slots get a new expiry (re-added if they expired while Redis was unreachable: the request is
-- still in flight); dropped ones (released or abandoned while Redis did not answer) are removed.
-- Returns the number of live slots.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[1])
local nHold = tonumber(ARGV[2])
local key = KEYS[1]
redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
for i = 3, 2 + nHold do redis.call('ZADD', key, now + ttl, ARGV[i]) end
for i = 3 + nHold, #ARGV do redis.call('ZREM', key, ARGV[i]) end
local live = redis.call('ZCARD', key)
if live > 0 then redis.call('PEXPIRE', key, ttl * 2) end
return live
