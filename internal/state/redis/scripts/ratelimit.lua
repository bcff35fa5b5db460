-- Exact sliding-window rate limit, for limits up to state.ExactLimitMax (so
-- at most that many members); a denied call is not counted.
--
-- KEYS[1]  sorted set of admitted calls: member "<us>:<nonce>:<cost>:<cum>",
--          score = time in µs, strictly increasing; cum is the running total
--          of the costs admitted on the key, this call's included
-- KEYS[2]  running sum of the costs in KEYS[1]
-- ARGV[1]  limit
-- ARGV[2]  window in µs
-- ARGV[3]  cost
-- ARGV[4]  nonce, unique per call (members stay unique within one µs)
-- Returns  {allowed (0|1), remaining, retry_after_us (-1: never), reset_us}
--
-- Cost: O(log n) commands and entries read, whatever the call's answer. A
-- denied call finds the entry that decides retry_after by a binary search
-- over ranks (ZRANGE i i) on cum, never by reading the log. Entries written
-- before cum existed (no 4th field) fall back to reading the first `need`
-- entries, for at most one window after an upgrade. Expired entries are read
-- once each, when they leave the window.
--
-- The clock is Redis's own (TIME), so every worker shares it. Numbers are
-- formatted with %.0f: Lua's default formatting would round µs timestamps.
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local edge = string.format('%.0f', now - window)

local function costOf(m) return tonumber(string.match(m, '^%d+:[^:]*:(%d+)')) end
local function cumOf(m) return tonumber(string.match(m, '^%d+:[^:]*:%d+:(%d+)$')) end

local sum = tonumber(redis.call('GET', KEYS[2]) or '0')
local gone = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', edge)
if #gone > 0 then
  for _, m in ipairs(gone) do
    sum = sum - costOf(m)
  end
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', edge)
end

local newest = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
local allowed, retry = 0, 0
if sum + cost <= limit then
  allowed = 1
  if cost > 0 then
    -- Scores strictly increase, so rank order is the order of cum.
    local at = now
    local cum = sum + cost
    if #newest > 0 then
      at = math.max(now, tonumber(newest[2]) + 1)
      local last = cumOf(newest[1])
      if last then cum = last + cost end
    end
    redis.call('ZADD', KEYS[1], string.format('%.0f', at), string.format('%.0f:%s:%d:%.0f', at, ARGV[4], cost, cum))
    newest = {'', string.format('%.0f', at)}
    sum = sum + cost
  end
elseif cost > limit then
  retry = -1
else
  -- The oldest entries whose costs add up to need must leave the window.
  -- Every cost is at least 1, so the deciding entry is among the first need.
  local need = sum + cost - limit
  local hi = math.min(need, redis.call('ZCARD', KEYS[1])) - 1
  local lo = 0
  local first = redis.call('ZRANGE', KEYS[1], 0, 0)
  local base = first[1] and cumOf(first[1])
  if base then base = base - costOf(first[1]) end
  while base and lo < hi do
    local mid = math.floor((lo + hi) / 2)
    local c = cumOf(redis.call('ZRANGE', KEYS[1], mid, mid)[1])
    if not c then
      base = nil
    elseif c - base >= need then
      hi = mid
    else
      lo = mid + 1
    end
  end
  if base then
    local e = redis.call('ZRANGE', KEYS[1], lo, lo, 'WITHSCORES')
    retry = tonumber(e[2]) + window - now
  else
    local acc = 0
    local calls = redis.call('ZRANGE', KEYS[1], 0, math.max(hi, 0), 'WITHSCORES')
    for i = 1, #calls, 2 do
      acc = acc + costOf(calls[i])
      if acc >= need then
        retry = tonumber(calls[i + 1]) + window - now
        break
      end
    end
  end
end

local reset = 0
if sum > 0 then
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
