-- Apply one speed-layer micro-batch atomically (see speed_layer/redis_apply.py).
-- KEYS[1] = offsets hash (partition -> next offset), KEYS[2] = meta hash,
-- KEYS[3] = epoch string, KEYS[4] = rebuild hash (partition -> replay target).
-- ARGV[1] = msgpack map:
--   ep  = the epoch the batch was consumed in (its offsets are positions of that epoch)
--   o   = {partition, first offset, next offset, ...}   (flat triples)
--   ag  = {partition, stored next, ...}: gaps accepted (Kafka no longer has those offsets)
--   ttl = retention seconds, counted from arr = arrival (ms) of the batch's newest message
--   hk, hf, hv = hash keys, their fields, their increments (parallel lists)
--   uk, uv     = HyperLogLog keys and their members
--   mi  = {field, increment, ...} for the meta hash
--   mx  = max event time of the batch (ms), now = wall clock (ms)
-- Replies (nothing is written unless the first element is 1):
--   {1}                       applied
--   {0, partition, stored...} replay: a first offset is below the stored next offset
--   {2, partition, stored...} gap: a first offset is above the stored next offset (0 if none)
--   {3}                       the epoch key is missing: the state was lost
--   {4, epoch}                the epoch is another one (a rebuild started since)
local b = cmsgpack.unpack(ARGV[1])
local epoch = redis.call('GET', KEYS[3])
if not epoch then
  return {3}
end
if epoch ~= b.ep then
  return {4, epoch}
end
local o = b.o
local allowed = {}
for i = 1, #b.ag, 2 do
  allowed[b.ag[i]] = b.ag[i + 1]
end
local stale, gaps = {}, {}
for i = 1, #o, 3 do
  -- no stored offset: nothing of the partition is applied in this epoch, so the
  -- batch must start at offset 0 (or where Kafka's log now starts: ag says so)
  local stored = tonumber(redis.call('HGET', KEYS[1], o[i]) or '0')
  if o[i + 1] < stored then
    stale[#stale + 1] = o[i]
    stale[#stale + 1] = stored
  elseif o[i + 1] > stored and allowed[o[i]] ~= stored then
    gaps[#gaps + 1] = o[i]
    gaps[#gaps + 1] = stored
  end
end
if #stale > 0 then
  table.insert(stale, 1, 0)
  return stale
end
if #gaps > 0 then
  table.insert(gaps, 1, 2)
  return gaps
end
-- A key's TTL runs from the arrival of the newest message written to it and is
-- never shortened; a key created by a replay of messages already past the
-- retention expires at once instead of living another retention period.
local ttl_ms = b.arr + b.ttl * 1000 - b.now
local function expire(key)
  local cur = redis.call('PTTL', key)
  if cur == -1 or ttl_ms > cur then
    if ttl_ms > 0 then
      redis.call('PEXPIRE', key, ttl_ms)
    else
      redis.call('DEL', key)
    end
  end
end
local hk, hf, hv = b.hk, b.hf, b.hv
-- Read-modify-write per hash in chunks (HMGET + one HSET) instead of one
-- HINCRBY per field: a tenth of the calls (and of the AOF records). Atomic,
-- as the whole script is; sums stay exact integers below 2^53.
for k = 1, #hk do
  local key, f, v = hk[k], hf[k], hv[k]
  for s = 1, #f, 3000 do
    local e = math.min(s + 2999, #f)
    local cur = redis.call('HMGET', key, unpack(f, s, e))
    local args = {}
    for i = s, e do
      args[#args + 1] = f[i]
      args[#args + 1] = (tonumber(cur[i - s + 1]) or 0) + v[i]
    end
    redis.call('HSET', key, unpack(args))
  end
  expire(key)
end
local uk, uv = b.uk, b.uv
for k = 1, #uk do
  local key, m = uk[k], uv[k]
  for i = 1, #m, 4000 do
    redis.call('PFADD', key, unpack(m, i, math.min(i + 3999, #m)))
  end
  expire(key)
end
for i = 1, #o, 3 do
  redis.call('HSET', KEYS[1], o[i], o[i + 2])
end
-- The rebuild in progress: a partition is replayed once it reaches its target.
if #o > 0 and redis.call('EXISTS', KEYS[4]) == 1 then
  for i = 1, #o, 3 do
    local t = tonumber(redis.call('HGET', KEYS[4], o[i]) or '-1')
    if t >= 0 and o[i + 2] >= t then
      redis.call('HDEL', KEYS[4], o[i])
    end
  end
  if redis.call('EXISTS', KEYS[4]) == 0 then
    redis.call('HSET', KEYS[2], 'rebuilding', '0', 'rebuilt_ms', b.now)
  end
end
local mi = b.mi
for i = 1, #mi, 2 do
  redis.call('HINCRBY', KEYS[2], mi[i], mi[i + 1])
end
local cur = tonumber(redis.call('HGET', KEYS[2], 'max_event_ts') or '0')
if b.mx > cur then
  redis.call('HSET', KEYS[2], 'max_event_ts', b.mx)
end
redis.call('HSET', KEYS[2], 'last_applied_ms', b.now)
return {1}
