-- Releases a lock only for the holder of its lease: the check and the delete
-- are one step.
--
-- KEYS[1]  lock hash {owner, token, lease}
-- ARGV[1]  lease
-- Returns  1 released, 0 not held, -1 held under another lease
local lease = redis.call('HGET', KEYS[1], 'lease')
if not lease then
  return 0
end
if lease ~= ARGV[1] then
  return -1
end
redis.call('DEL', KEYS[1])
return 1
