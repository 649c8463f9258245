-- The shipped security headers (lua/policy/headers.lua), plus one route
-- mapped to the "svg" policy by route key.
local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$")
local policies = dofile(here .. "/../../../../lua/policy/headers.lua")

policies.routes = { ["GET /svg-route"] = "svg" }
return policies
