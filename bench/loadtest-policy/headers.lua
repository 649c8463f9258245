-- The gallery's security headers, unchanged.
local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$")
return dofile(here .. "/../../lua/policy/headers.lua")
