-- Benchmark CSP: the gallery's.
local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$")
return dofile(here .. "/../../lua/policy/csp.lua")
