-- Benchmark headers: the gallery's policies for /secure; /hello sends none,
-- like the anchors.
local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$")
local policies = dofile(here .. "/../../lua/policy/headers.lua")

policies.none = { headers = {}, csp = false }
policies.routes = { ["GET /hello"] = "none" }
return policies
