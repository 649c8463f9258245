-- Benchmark headers: the gallery's policies for /secure; /hello and /cached
-- send none, like the anchors.
local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$")
local policies = dofile(here .. "/../../lua/policy/headers.lua")

policies.none = { headers = {}, csp = false }
policies.routes = { ["GET /hello"] = "none", ["GET /cached"] = "none" }
return policies
