-- luahost.transaction: adds db.transaction(fn) to the luahost.db module, in
-- Lua so that fn may yield (each statement waits for the database).
--   db.transaction(fn) -> fn's results | nil, err, kind
--       fn(tx) runs inside START TRANSACTION; returns: COMMIT; raises:
--       ROLLBACK, then the error is raised again.
local pcall, select, unpack = pcall, select, unpack

local function finish(tx, ok, ...)
    if not ok then
        tx:rollback()
        error((...), 0)
    end
    local committed, err, kind = tx:commit()
    if not committed then
        return nil, err, kind
    end
    return ...
end

return function(db)
    function db.transaction(fn)
        if type(fn) ~= "function" then
            error("db.transaction wants a function", 2)
        end
        local tx, err, kind = db.begin()
        if not tx then
            return nil, err, kind
        end
        return finish(tx, pcall(fn, tx))
    end
end
