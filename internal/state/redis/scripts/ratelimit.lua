-- Exact sliding-window rate limit, for limits up to state.ExactLimitMax (so
-- at most that many members); a denied call is not counted.
--
-- KEYS[1]  sorted set of admitted calls: member "<us>:<nonce>:<cost>", score = time in µs
-- KEYS[2]  running sum of the costs in KEYS[1]
-- ARGV[1]  limit
-- ARGV[2]  window in µs
-- ARGV[3]  cost
-- ARGV[4]  nonce, unique per call (members stay unique within one µs)
-- Returns  {allowed (0|1), remaining, retry_after_us (-1: never), reset_us}
--
-- The clock is Redis's own (TIME), so every worker shares it. Numbers are
-- formatted with %.0f: Lua's default formatting would round µs timestamps.
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local edge = string.format('%.0f', now - window)

local sum = tonumber(redis.call('GET', KEYS[2]) or '0')
local gone = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', edge)
if #gone > 0 then
  for _, m in ipairs(gone) do
    sum = sum - tonumber(string.match(m, ':(%d+)$'))
  end
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', edge)
end

local allowed, retry = 0, 0
if sum + cost <= limit then
  allowed = 1
  if cost > 0 then
    redis.call('ZADD', KEYS[1], string.format('%.0f', now), string.format('%.0f:%s:%d', now, ARGV[4], cost))
    sum = sum + cost
  end
elseif cost > limit then
  retry = -1
else
  local need, acc = sum + cost - limit, 0
  local calls = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
  for i = 1, #calls, 2 do
    acc = acc + tonumber(string.match(calls[i], ':(%d+)$'))
    if acc >= need then
      retry = tonumber(calls[i + 1]) + window - now
      break
    end
  end
end

local reset = 0
if sum > 0 then
  local newest = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
  reset = tonumber(newest[2]) + window - now
  local ttl = math.ceil(window / 1000) + 1000
  redis.call('SET', KEYS[2], string.format('%.0f', sum), 'PX', ttl)
  redis.call('PEXPIRE', KEYS[1], ttl)
else
  redis.call('DEL', KEYS[1], KEYS[2])
end
local remaining = limit - sum
if remaining < 0 then remaining = 0 end
return {allowed, remaining, retry, reset}
