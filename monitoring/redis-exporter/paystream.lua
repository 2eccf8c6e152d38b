-- redis_exporter --script (oliver006/redis_exporter): returns name/value pairs, each exported as
-- redis_script_values{key="<name>"} on every scrape.
--
-- fraud_active_accounts_5m: accounts with a fraud alert detected in the last 5 minutes, counted
-- in the fraud:active_accounts sorted set the processors write (score: detection time in ms).
-- The same count as the live dashboard's "accounts alerting (5 min)", read from Redis, so it is
-- right whatever the number of processor replicas and across their restarts.
-- ZCOUNT is O(log N): cheap at any scrape interval.
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local active = redis.call('ZCOUNT', 'fraud:active_accounts', ms - 300000, '+inf')
return { 'fraud_active_accounts_5m', tostring(active) }
