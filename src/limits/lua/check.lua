-- The whole per-request limits decision, atomically, on Redis's own clock (TIME).
-- (windowBounds comes from window.lua, prepended.)
-- KEYS: bucket keys…, quota keys…, [token spend key], [concurrency key]   (all under one hash tag)
-- ARGV: deadline, nBuckets, nQuotas, hasConcurrency, hasTokens,
--       per bucket: ratePerMs, burst, cost, lease,
--       per quota: limit, window (minute|hour|day|month), [tokens: limit, window],
--       [concurrency: limit, ttlMs, slot]
-- deadline: ms on this server's clock after which the caller no longer waits for the answer
-- (0: none). A call that runs later (it sat in a paused server, an offline queue, a resend after a
-- reconnect) changes nothing: its caller already answered the request without it.
-- Returns: { allowed, code (0 none, 1 rate, 2 quota, 3 concurrency, 4 past its deadline, 5 tokens), retryMs,
--            bucket (0-based, -1), remaining, resetMs, now, granted… }
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local deadline = tonumber(ARGV[1])
if deadline > 0 and now >= deadline then
  return { 0, 4, 0, -1, 0, 0, now }
end
local nb = tonumber(ARGV[2])
local nq = tonumber(ARGV[3])
local hasConc = ARGV[4] == '1'
local hasTokens = ARGV[5] == '1'

local levels = {}
for i = 1, nb do
  local a = 5 + (i - 1) * 4
  local rate, burst, cost = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
  local v = redis.call('HMGET', KEYS[i], 't', 'ts')
  local tokens = burst
  if v[1] then
    tokens = math.min(burst, tonumber(v[1]) + (now - tonumber(v[2])) * rate)
    if tokens < 0 then tokens = 0 end
  end
  levels[i] = tokens
  if tokens < cost then
    return { 0, 1, math.ceil((cost - tokens) / rate), i - 1, math.floor(tokens), math.ceil((burst - tokens) / rate), now }
  end
end

local a = 5 + nb * 4
local k = nb
-- Quotas (the tier's, the API key's): all checked before any is counted.
local quotaKeys, quotaStarts, quotaEnds, quotaUsed = {}, {}, {}, {}
for j = 1, nq do
  k = k + 1
  local limit, window = tonumber(ARGV[a + 1]), ARGV[a + 2]
  a = a + 2
  local ws, we = windowBounds(window, now)
  local q = redis.call('HMGET', KEYS[k], 'w', 'n')
  local used = 0
  if q[1] and tonumber(q[1]) == ws then used = tonumber(q[2]) end
  if used + 1 > limit then
    return { 0, 2, we - now, -1, 0, 0, now }
  end
  quotaKeys[j], quotaStarts[j], quotaEnds[j], quotaUsed[j] = KEYS[k], ws, we, used
end
for j = 1, nq do
  redis.call('HSET', quotaKeys[j], 'w', quotaStarts[j], 'n', quotaUsed[j])
  redis.call('PEXPIREAT', quotaKeys[j], quotaEnds[j] + 60000)
end

-- Token spend is only read here: charge.lua adds to it once a response has ended.
if hasTokens then
  k = k + 1
  local limit, window = tonumber(ARGV[a + 1]), ARGV[a + 2]
  a = a + 2
  local ws, we = windowBounds(window, now)
  local s = redis.call('HMGET', KEYS[k], 'w', 'n')
  if s[1] and tonumber(s[1]) == ws and tonumber(s[2]) >= limit then
    return { 0, 5, we - now, -1, 0, 0, now }
  end
end

if hasConc then
  k = k + 1
  local key = KEYS[k]
  local limit, ttl, slot = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), ARGV[a + 3]
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  if redis.call('ZCARD', key) >= limit then
    return { 0, 3, 1000, -1, 0, 0, now }
  end
  redis.call('ZADD', key, now + ttl, slot)
  redis.call('PEXPIRE', key, ttl * 2)
end

for j = 1, nq do redis.call('HINCRBY', quotaKeys[j], 'n', 1) end

local out = { 1, 0, 0, -1, 0, 0, now }
local most = math.huge
for i = 1, nb do
  local b = 5 + (i - 1) * 4
  local rate, burst, cost, lease = tonumber(ARGV[b + 1]), tonumber(ARGV[b + 2]), tonumber(ARGV[b + 3]), tonumber(ARGV[b + 4])
  local take = math.max(cost, math.min(lease, math.floor(levels[i])))
  local left = levels[i] - take
  redis.call('HSET', KEYS[i], 't', tostring(left), 'ts', now)
  redis.call('PEXPIRE', KEYS[i], math.ceil(burst / rate) + 1000)
  out[7 + i] = take
  if left < most then
    most = left
    out[4] = i - 1
    out[5] = math.floor(left)
    out[6] = math.ceil((burst - left) / rate)
  end
end
return out
