-- Describes a lock in one consistent read.
--
-- KEYS[1]  lock hash {owner, token}
-- Returns  {owner, token, pttl_ms}, or {} when the lock is not held
local v = redis.call('HMGET', KEYS[1], 'owner', 'token')
if not v[1] then
  return {}
end
return {v[1], tonumber(v[2]), redis.call('PTTL', KEYS[1])}
