-- Sets a new TTL on a lock only for the holder of its lease.
--
-- KEYS[1]  lock hash {owner, token, lease}
-- ARGV[1]  lease
-- ARGV[2]  ttl in ms
-- Returns  {1, now_ms} refreshed, {0, 0} not held, {-1, 0} held under another lease
local lease = redis.call('HGET', KEYS[1], 'lease')
if not lease then
  return {0, 0}
end
if lease ~= ARGV[1] then
  return {-1, 0}
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
local t = redis.call('TIME')
return {1, tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)}
