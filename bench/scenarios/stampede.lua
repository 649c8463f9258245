-- A stampede: every connection asks for the same list page (STAMPEDE_PATH),
-- which the runner has cached and then invalidated (an upload and a delete
-- through the API). The gallery should compute it once (single flight), not
-- once per waiting request; the runner reads luahost_cache_computations_total
-- before and after.
local common = dofile(debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") .. "/common.lua")

common.scenario{ request = common.static_get(common.env("STAMPEDE_PATH", "/api/svg/list?page=1&per_page=11")) }
