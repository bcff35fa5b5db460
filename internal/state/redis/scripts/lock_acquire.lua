-- Takes a lock once. A lock its owner already holds has its TTL renewed and
-- keeps its token.
--
-- KEYS[1]  lock hash {owner, token}, expiring with the lock
-- KEYS[2]  fencing counter of the key, never expiring: tokens keep growing
--          across releases and expiries
-- ARGV[1]  owner
-- ARGV[2]  ttl in ms
-- Returns  {1, token, ttl_ms, now_ms} when held by ARGV[1] after the call,
--          {0, holder, pttl_ms, now_ms} when another owner holds it
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local holder = redis.call('HGET', KEYS[1], 'owner')
if holder then
  if holder ~= ARGV[1] then
    return {0, holder, redis.call('PTTL', KEYS[1]), now}
  end
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return {1, tonumber(redis.call('HGET', KEYS[1], 'token')), tonumber(ARGV[2]), now}
end
local token = redis.call('INCR', KEYS[2])
redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'token', token)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return {1, token, tonumber(ARGV[2]), now}
