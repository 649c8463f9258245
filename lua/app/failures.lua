-- How the gallery logs and answers a failed database call.
--
--   failures.log_database(what, err, kind)   logs "what: err". An outage
--       (kinds "timeout", "io": the database down, slow or out of
--       connections) fails every request that needs it: one line per
--       OUTAGE_QUIET seconds in each worker, the next one counting the
--       failures left out. Any other failure (a query the schema refuses)
--       is logged each time.
--   failures.database_answer(res, kind)   answers 503 "Service unavailable"
--       for an outage, else 500 "Server error"
--   failures.answer_database(res, what, err, kind)   logs, then answers
local log = require "luahost.log"

local M = {}

local OUTAGE_QUIET = 10
local quiet_until, left_out = 0, 0

local function outage(kind)
    return kind == "timeout" or kind == "io"
end

function M.log_database(what, err, kind)
    local line = what .. ": " .. tostring(err)
    if not outage(kind) then
        return log.error(line)
    end
    local now = os.time()
    if now < quiet_until then
        left_out = left_out + 1
        return
    end
    if left_out > 0 then
        line = ("%s (and %d more database failures in this worker since the last such line)")
            :format(line, left_out)
    end
    quiet_until, left_out = now + OUTAGE_QUIET, 0
    log.error(line)
end

function M.database_answer(res, kind)
    if outage(kind) then
        return res:json({ success = false, message = "Service unavailable" }, 503)
    end
    return res:json({ success = false, message = "Server error" }, 500)
end

function M.answer_database(res, what, err, kind)
    M.log_database(what, err, kind)
    return M.database_answer(res, kind)
end

return M
