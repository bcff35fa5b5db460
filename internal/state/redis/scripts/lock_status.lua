-- Describes a lock in one consistent read, without its lease.
--
-- KEYS[1]  lock hash {owner, token, lease}
-- Returns  {owner, token, pttl_ms}, or {} when the lock is not held
local v = redis.call('HMGET', KEYS[1], 'owner', 'token')
if not v[1] then
  return {}
end
return {v[1], tonumber(v[2]), redis.call('PTTL', KEYS[1])}
