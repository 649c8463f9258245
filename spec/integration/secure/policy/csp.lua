-- The shipped CSP (lua/policy/csp.lua), report endpoint included.
local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$")
return dofile(here .. "/../../../../lua/policy/csp.lua")
