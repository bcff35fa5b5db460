-- Sliding-window counter, for limits above state.ExactLimitMax: constant size
-- whatever the limit. A denied call is not counted.
--
-- KEYS[1]  hash {s = start of the current aligned window in µs, c = its count,
--          p = the previous window's count}
-- ARGV[1]  limit
-- ARGV[2]  window in µs
-- ARGV[3]  cost
-- Returns  {allowed (0|1), remaining, retry_after_us (-1: never), reset_us}
--
-- The estimate is p weighted by the part of the previous window still inside
-- the sliding one, plus c: exact when the previous window's calls were evenly
-- spread. c never exceeds limit; any sliding window admits at most 2 x limit.
-- Same arithmetic as the memory backend's counter.
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local start = now - (now % window)

local v = redis.call('HMGET', KEYS[1], 's', 'c', 'p')
local s, curr, prev = tonumber(v[1] or '-1'), tonumber(v[2] or '0'), tonumber(v[3] or '0')
if s ~= start then
  if s == start - window then
    prev, curr = curr, 0
  else
    prev, curr = 0, 0
  end
end
local weight = (window - (now - start)) / window

local allowed, retry = 0, 0
if prev * weight + curr + cost <= limit then
  allowed = 1
  curr = curr + cost
elseif cost > limit then
  retry = -1
elseif curr + cost <= limit then
  local at = window - (limit - curr - cost) * window / prev
  retry = math.ceil(at) - (now - start)
else
  local at = window - (limit - cost) * window / curr
  retry = start + window - now + math.ceil(at)
end

local remaining = limit - math.ceil(prev * weight + curr)
if remaining < 0 then remaining = 0 end
local reset = 0
if curr > 0 then
  reset = start + 2 * window - now
elseif prev > 0 then
  reset = start + window - now
end
if reset > 0 then
  redis.call('HSET', KEYS[1], 's', string.format('%.0f', start), 'c', string.format('%.0f', curr), 'p', string.format('%.0f', prev))
  redis.call('PEXPIRE', KEYS[1], math.ceil(reset / 1000) + 1000)
else
  redis.call('DEL', KEYS[1])
end
return {allowed, remaining, retry, reset}
