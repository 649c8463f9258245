-- Failing requests must not leak: 12,000 requests to /boom (each a script
-- error with a logged traceback, the coroutine dropped) over keep-alive
-- connections, with the resident memory measured after a warm-up.
local S = require "integration.support.server"

local WARMUP = 2000
local MEASURED = 10000
local CONNECTIONS = 4 -- spread over both worker threads
local BATCH = 100 -- requests pipelined per write
local MAX_GROWTH_KB = 8 * 1024

-- Sends n GET path requests over the clients, BATCH at a time per client;
-- returns a table status -> count.
local function hammer(clients, path, n)
    local statuses = {}
    local request = S.format_request("GET", path)
    local sent = 0
    while sent < n do
        local batches = {}
        for i, c in ipairs(clients) do
            local k = math.min(BATCH, n - sent)
            if k <= 0 then
                break
            end
            assert(c:send(request:rep(k)))
            batches[i] = k
            sent = sent + k
        end
        for i, k in pairs(batches) do
            for _ = 1, k do
                local res, err = clients[i]:read_response("GET")
                assert.is_truthy(res, "connection " .. i .. ": " .. tostring(err))
                statuses[res.status] = (statuses[res.status] or 0) + 1
            end
        end
    end
    return statuses
end

describe("memory #integration", function()
    after_each(function()
        S.stop_all()
    end)

    it("answers 10,000 failing requests with 500 without growing without bound", function()
        -- A sanitizer's shadow memory and quarantine grow with every
        -- allocation: RSS says nothing about leaks there.
        if S.sanitized() then
            pending("RSS is not meaningful under a sanitizer")
            return
        end
        local srv = S.start({ workers = 2 })
        local clients = {}
        finally(function()
            for _, c in ipairs(clients) do
                c:close()
            end
        end)
        for i = 1, CONNECTIONS do
            clients[i] = assert(srv:client())
        end

        local warm = hammer(clients, "/boom", WARMUP)
        assert.are.same({ [500] = WARMUP }, warm)
        local before = assert(S.rss_kb(srv.pid))

        local t0 = S.now()
        local measured = hammer(clients, "/boom", MEASURED)
        local elapsed = S.now() - t0
        assert.are.same({ [500] = MEASURED }, measured)
        local after = assert(S.rss_kb(srv.pid))

        local growth = after - before
        assert.is_true(growth < MAX_GROWTH_KB, ("VmRSS grew by %d KiB (%d -> %d KiB) over %d failing requests"):format(
            growth, before, after, MEASURED))

        -- Still healthy, on the old connections and on a new one.
        local res = assert(clients[1]:request("GET", "/hello"))
        assert.are.equal(200, res.status)
        res = assert(srv:request("GET", "/hello"))
        assert.are.equal(200, res.status)
        assert.is_true(srv:running())

        -- Every failure was logged with its traceback.
        local log = srv:error_log()
        local _, errors = log:gsub("kaboom\nstack traceback", "")
        assert.are.equal(WARMUP + MEASURED, errors)
        io.stderr:write(("\n[memory] %d failing requests in %.2fs, VmRSS %d -> %d KiB\n"):format(MEASURED,
            elapsed, before, after))
    end)
end)
