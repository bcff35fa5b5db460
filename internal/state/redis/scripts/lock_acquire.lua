-- Takes a lock once, with a new lease. A held lock is refused, even to an
-- acquire naming the same owner: only the lease proves who holds it.
--
-- KEYS[1]  lock hash {owner, token, lease}, expiring with the lock
-- KEYS[2]  fencing counter of the key, never expiring
-- ARGV[1]  owner (a display name)
-- ARGV[2]  lease (the secret of this acquisition)
-- ARGV[3]  ttl in ms
-- Returns  {1, token, now_ms} when taken,
--          {0, holder_owner, holder_token, pttl_ms} when held
--
-- The token is max(counter + 1, now in µs): it grows with every acquisition,
-- and when Redis lost the counter (a restart without persistence, FLUSHALL)
-- the clock still puts it past every token issued before. Numbers are
-- formatted with %.0f: Lua's default formatting would round µs timestamps.
local t = redis.call('TIME')
local v = redis.call('HMGET', KEYS[1], 'owner', 'token')
if v[1] then
  return {0, v[1], tonumber(v[2]), redis.call('PTTL', KEYS[1])}
end
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
local token = tonumber(redis.call('GET', KEYS[2]) or '0') + 1
if token < now_us then
  token = now_us
end
local s = string.format('%.0f', token)
redis.call('SET', KEYS[2], s)
redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'token', s, 'lease', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return {1, token, tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)}
