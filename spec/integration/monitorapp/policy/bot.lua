-- The gallery's bot policy, unchanged.
local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$")
return dofile(here .. "/../../../../lua/policy/bot.lua")
