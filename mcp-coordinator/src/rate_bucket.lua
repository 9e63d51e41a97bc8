-- A token bucket kept in Redis, shared by every coordinator using that Redis.
-- KEYS[1]: the client's bucket; ARGV[1]: rate (tokens per second); ARGV[2]: burst.
-- Returns 0 when a token was taken, else the whole seconds to wait for one.
-- Time is the Redis server's, so the coordinators' clocks do not matter.
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local saved = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(saved[1]) or burst
local at = tonumber(saved[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
else
  wait = math.max(1, math.ceil((1 - tokens) / rate))
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
-- A bucket untouched long enough to be full again is the same as none.
redis.call('EXPIRE', KEYS[1], math.ceil(burst / rate) + 1)
return wait
