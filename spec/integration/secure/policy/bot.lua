-- The shipped bot policy (more than 50 requests of a fingerprint in 10 s: a
-- bot, retry_after 60), so that the specs check the reference numbers.
local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$")
return dofile(here .. "/../../../../lua/policy/bot.lua")
