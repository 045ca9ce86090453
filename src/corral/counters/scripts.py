"""The Redis Lua scripts behind RedisCounters: one atomic call per admission and per settlement.

Every key starts with the counters' prefix, which carries a hash tag (``{corral}``) so all keys
share one Redis Cluster slot and a script may touch keys it derives from its arguments. The
arithmetic mirrors ``corral.counters.buckets``; floats travel as strings (``%.6f``) because Redis
truncates Lua numbers in replies to integers.
"""

RESERVE = """
local P, now, id = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local tokens, cost, cost_arg = tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[5]
local expires, period, resets = tonumber(ARGV[6]), ARGV[7], tonumber(ARGV[8])
local keep_for, payload, n = ARGV[9], ARGV[10], tonumber(ARGV[11])
local PERIOD, EPS, CONC_RETRY = 60.0, 1e-6, 1.0

local function num(v) return tonumber(v) or 0 end
local function fmt(x) return string.format('%.6f', x) end
local function wait(tat, limit, units)
  if units > limit then return -1 end
  local excess = math.max(tat, now) + units * (PERIOD / limit) - now - PERIOD
  if excess > EPS then return excess end
  return 0
end
local function longer(a, b)
  if a == -1 then return b ~= -1 end
  return b ~= -1 and a > b
end

local scopes = {}
for i = 1, n do
  local o = 11 + (i - 1) * 5
  local s = {name = ARGV[o + 1], rpm = tonumber(ARGV[o + 2]), tpm = tonumber(ARGV[o + 3]),
             conc = tonumber(ARGV[o + 4]), budget = tonumber(ARGV[o + 5])}
  s.rk, s.tk = P .. ':r:' .. s.name, P .. ':t:' .. s.name
  s.ck, s.bk = P .. ':c:' .. s.name, P .. ':b:' .. s.name .. ':' .. period
  s.rtat, s.ttat, s.inflight = 0, 0, 0
  if s.rpm > 0 then s.rtat = num(redis.call('GET', s.rk)) end
  if s.tpm > 0 then s.ttat = num(redis.call('GET', s.tk)) end
  if s.conc > 0 then s.inflight = num(redis.call('GET', s.ck)) end
  local b = redis.call('HMGET', s.bk, 'spent', 'held')
  s.spent, s.held = num(b[1]), num(b[2])
  scopes[i] = s
end

local function reply(admitted, fi, fl, fw)
  local out = {admitted, fi, fl, fw}
  for _, s in ipairs(scopes) do
    table.insert(out, fmt(s.rtat)); table.insert(out, fmt(s.ttat))
    table.insert(out, s.inflight); table.insert(out, s.spent); table.insert(out, s.held)
  end
  return out
end

if redis.call('HEXISTS', KEYS[1], id) == 1 then return reply(1, 0, '', '') end

for i, s in ipairs(scopes) do
  if s.budget >= 0 and s.spent + s.held + cost > s.budget then
    return reply(0, i, 'budget', fmt(math.max(0, resets - now)))
  end
end
local fi, fl, fw = 0, '', 0
local function consider(i, limit, w)
  if w ~= 0 and (fi == 0 or longer(w, fw)) then fi, fl, fw = i, limit, w end
end
for i, s in ipairs(scopes) do
  if s.rpm > 0 then consider(i, 'requests', wait(s.rtat, s.rpm, 1)) end
  if s.tpm > 0 then consider(i, 'tokens', wait(s.ttat, s.tpm, tokens)) end
  if s.conc > 0 and s.inflight >= s.conc then consider(i, 'concurrent', CONC_RETRY) end
end
if fi > 0 then
  if fw == -1 then return reply(0, fi, fl, '') end
  return reply(0, fi, fl, fmt(fw))
end

for _, s in ipairs(scopes) do
  if s.rpm > 0 then
    s.rtat = math.max(s.rtat, now) + PERIOD / s.rpm
    redis.call('SET', s.rk, fmt(s.rtat), 'PX', math.ceil((s.rtat - now) * 1000) + 1000)
  end
  if s.tpm > 0 then
    s.ttat = math.max(s.ttat, now) + tokens * PERIOD / s.tpm
    redis.call('SET', s.tk, fmt(s.ttat), 'PX', math.ceil((s.ttat - now) * 1000) + 1000)
  end
  if s.conc > 0 then s.inflight = redis.call('INCR', s.ck) end
  if cost > 0 then
    s.held = redis.call('HINCRBY', s.bk, 'held', cost_arg)
    redis.call('EXPIRE', s.bk, keep_for)
  end
end
redis.call('HSET', KEYS[1], id, payload)
redis.call('ZADD', KEYS[2], expires, id)
return reply(1, 0, '', '')
"""

SETTLE = """
local raw = redis.call('HGET', KEYS[1], ARGV[2])
if not raw then return 0 end
redis.call('HDEL', KEYS[1], ARGV[2])
redis.call('ZREM', KEYS[2], ARGV[2])
local P, tokens, cost, now = ARGV[1], tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local r = cjson.decode(raw)
for _, c in ipairs(r.charges) do
  local name, tpm, conc = c[1], c[2], c[3]
  if tpm > 0 then
    local tk = P .. ':t:' .. name
    local tat = tonumber(redis.call('GET', tk)) or 0
    tat = math.max(now, math.max(tat, now) + (tokens - r.tokens) * (60.0 / tpm))
    if tat > now then
      redis.call('SET', tk, string.format('%.6f', tat), 'PX', math.ceil((tat - now) * 1000) + 1000)
    else
      redis.call('DEL', tk)
    end
  end
  if conc == 1 then
    local ck = P .. ':c:' .. name
    if redis.call('DECR', ck) <= 0 then redis.call('DEL', ck) end
  end
  if r.cost > 0 or cost > 0 then
    local bk = P .. ':b:' .. name .. ':' .. r.period
    if redis.call('HINCRBY', bk, 'held', string.format('%d', -r.cost)) < 0 then
      redis.call('HSET', bk, 'held', 0)
    end
    if cost > 0 then redis.call('HINCRBY', bk, 'spent', ARGV[4]) end
    if redis.call('TTL', bk) == -1 then redis.call('EXPIRE', bk, 6048000) end  -- 70 days
  end
end
return 1
"""

SPEND = """
if ARGV[1] == 'add' then
  redis.call('HINCRBY', KEYS[1], 'spent', ARGV[2])
elseif tonumber(ARGV[2]) > (tonumber(redis.call('HGET', KEYS[1], 'spent')) or 0) then
  redis.call('HSET', KEYS[1], 'spent', ARGV[2])
end
if redis.call('TTL', KEYS[1]) == -1 then redis.call('EXPIRE', KEYS[1], ARGV[3]) end
return 1
"""
