-- Load-test limits: the gallery's (lua/policy/limits.lua), with the load
-- generator exempt: wrk on loopback, and the clients it simulates behind
-- loopback as a trusted proxy (X-Forwarded-For from 10.0.0.0/8). Otherwise
-- the per-address ceiling (2000 per hour) would turn a load test into 429s.
-- The storm scenarios run against the real lua/policy instead.
local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$")
local limits = dofile(here .. "/../../lua/policy/limits.lua")

limits.exempt = { "127.0.0.0/8", "10.0.0.0/8" }
return limits
