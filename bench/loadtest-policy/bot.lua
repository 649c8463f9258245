-- Load-test bot policy: the gallery's, with a threshold no load test reaches
-- (exempt addresses are not even counted; see limits.lua).
local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$")
local bot = dofile(here .. "/../../lua/policy/bot.lua")

bot.threshold = 1000000000
return bot
