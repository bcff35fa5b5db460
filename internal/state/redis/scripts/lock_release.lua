-- Releases a lock only for its owner: the check and the delete are one step.
--
-- KEYS[1]  lock hash {owner, token}
-- ARGV[1]  owner
-- Returns  1 released, 0 not held, -1 held by another owner
local holder = redis.call('HGET', KEYS[1], 'owner')
if not holder then
  return 0
end
if holder ~= ARGV[1] then
  return -1
end
redis.call('DEL', KEYS[1])
return 1
