-- wrk script for spec/integration/faults_spec.lua: the gallery's read traffic
-- (bench/scenarios/common.lua counts the statuses). Which route answered
-- what is read from the server's access log afterwards.
--   40 %  GET /api/svg/list?page=1..5      cached pages (database on a miss)
--   30 %  GET /api/svg/:id                 database (counts a view)
--   20 %  GET /svg/:id.svg                 cached (database on a miss)
--   10 %  GET /health                      nothing
-- Environment: IMAGE_IDS (comma-separated public ids).
local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$")
local common = dofile(here .. "/../../../bench/scenarios/common.lua")

local ids = common.list("IMAGE_IDS")
local random = math.random

common.scenario{
    expect = { 200, 503 },
    request = common.weighted{
        { 40, function() return common.get(("/api/svg/list?page=%d&per_page=10"):format(random(5))) end },
        { 30, function() return common.get("/api/svg/" .. ids[random(#ids)]) end },
        { 20, function() return common.get("/svg/" .. ids[random(#ids)] .. ".svg") end },
        { 10, function() return common.get("/health") end },
    },
}
