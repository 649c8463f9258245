-- GET /secure of bench/app (the anchors' route), closed loop or at RATE.
local common = dofile(debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") .. "/common.lua")

common.scenario{ request = common.static_get("/secure") }
