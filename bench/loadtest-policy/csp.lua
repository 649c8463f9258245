-- The gallery's CSP, unchanged.
local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$")
return dofile(here .. "/../../lua/policy/csp.lua")
