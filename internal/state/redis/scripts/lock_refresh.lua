-- Sets a new TTL on a lock only for its owner.
--
-- KEYS[1]  lock hash {owner, token}
-- ARGV[1]  owner
-- ARGV[2]  ttl in ms
-- Returns  {1, now_ms} refreshed, {0, 0} not held, {-1, 0} held by another owner
local holder = redis.call('HGET', KEYS[1], 'owner')
if not holder then
  return {0, 0}
end
if holder ~= ARGV[1] then
  return {-1, 0}
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
local t = redis.call('TIME')
return {1, tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)}
