-- Abuse over real HTTP: slow-loris connections, a connection flood beyond
-- the limit, and request smuggling through ambiguous framing. (Oversized
-- headers and bodies are in http_spec.lua, path traversal in
-- static_spec.lua.)
local S = require "integration.support.server"
local socket = require "socket"

-- Opens n connections that send a request's headers one byte at a time.
local function slow_clients(port, n)
    local socks = {}
    for i = 1, n do
        local s = socket.tcp()
        s:settimeout(2)
        if s:connect("127.0.0.1", port) then
            socks[#socks + 1] = s
        else
            s:close()
            error(("slow client %d could not connect"):format(i))
        end
    end
    return socks
end

local function drip(socks, byte)
    for _, s in ipairs(socks) do
        s:send(byte)
    end
end

-- GET /hello from another loopback address than the slow clients' (Linux
-- routes all of 127.0.0.0/8 to lo): a different client to the per-address
-- connection limit. Returns the response (or nil) and the seconds it took.
local function timed_hello(srv)
    local t0 = S.now()
    local sock = socket.tcp()
    sock:settimeout(3)
    local res
    if sock:bind("127.0.0.2", 0) and sock:connect("127.0.0.1", srv.port)
        and sock:send(S.format_request("GET", "/hello", { Host = "127.0.0.1" })) then
        res = S.read_response(sock)
    end
    sock:close()
    return res, S.now() - t0
end

-- Sends raw bytes and reads everything until the server closes.
local function raw_all(srv, bytes)
    return srv:raw(bytes, { read_all = true, timeout = 3 })
end

describe("abuse #integration", function()
    teardown(function()
        S.stop_all()
    end)

    -- One address gets --max-connections-per-ip (256) of its 500, logged;
    -- everyone else is served as usual.
    it("keeps serving normal clients while 500 slow-loris connections drip headers", function()
        local srv = S.start({ args = { "--idle-timeout", "30" } })
        local socks = slow_clients(srv.port, 500)
        finally(function()
            for _, s in ipairs(socks) do
                s:close()
            end
        end)
        local header = "GET /hello HTTP/1.1\r\nHost: x\r\nX-Slow: "
        local worst = 0
        for i = 1, 5 do -- five seconds, one byte a second each
            drip(socks, header:sub(i, i))
            for _ = 1, 10 do
                local res, took = timed_hello(srv)
                assert.is_truthy(res, "a normal client got no answer")
                assert.are.equal(200, res.status)
                worst = math.max(worst, took)
            end
            S.sleep(1)
        end
        assert.is_true(worst < 0.5, ("slowest normal request took %.3f s"):format(worst))
        assert.is_true(srv:running())
        assert.is_truthy(srv:error_log("[warn] http: Server reached connection limit", 5, true),
            srv:error_log())
    end)

    it("refuses connections beyond max_connections without harming established clients", function()
        local srv = S.start({ args = { "--max-connections", "40" } })
        local established = assert(srv:client(3))
        local res = assert(established:request("GET", "/hello"))
        assert.are.equal(200, res.status)

        -- Fill every slot, and then some.
        local flood = {}
        finally(function()
            for _, s in ipairs(flood) do
                s:close()
            end
            established:close()
        end)
        for _ = 1, 60 do
            local s = socket.tcp()
            s:settimeout(1)
            if s:connect("127.0.0.1", srv.port) then
                flood[#flood + 1] = s
            end
        end
        -- The connections past the limit are not served: closed, or left
        -- unaccepted in the kernel's backlog, where a request gets no answer.
        local refused = 0
        for _, s in ipairs(flood) do
            s:settimeout(0.05)
            s:send("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        end
        S.sleep(0.5)
        for _, s in ipairs(flood) do
            local line, err = s:receive("*l")
            if not line or err then
                refused = refused + 1
            end
        end
        assert.is_true(refused >= 15, refused .. " of 60 extra connections refused")
        assert.is_true(refused <= 60 - 30, "the connections within the limit are served")

        -- The established keep-alive client is still served.
        for _ = 1, 5 do
            res = assert(established:request("GET", "/hello"))
            assert.are.equal(200, res.status)
        end
        assert.is_true(srv:running())
        for _, s in ipairs(flood) do
            s:close()
        end
        flood = {}
        -- And once the flood is gone, new clients get in again.
        local deadline = S.now() + 5
        repeat
            res = srv:request("GET", "/hello", nil, nil, 1)
        until (res and res.status == 200) or S.now() > deadline
        assert.are.equal(200, res.status)
    end)

    it("refuses ambiguous framing and closes the connection, so nothing is smuggled", function()
        local srv = S.start()
        local cases = {
            -- Content-Length and Transfer-Encoding: a proxy might use one, the server the other.
            "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
                .. "0\r\n\r\nGET /hello HTTP/1.1\r\nHost: x\r\n\r\n",
            "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 40\r\n\r\n"
                .. "0\r\n\r\nGET /hello HTTP/1.1\r\nHost: x\r\n\r\n",
            -- Two different lengths.
            "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 30\r\n\r\n"
                .. "abcdGET /hello HTTP/1.1\r\nHost: x\r\n\r\n",
        }
        for i, bytes in ipairs(cases) do
            local out = raw_all(srv, bytes)
            assert.is_truthy(out:match("^HTTP/1%.1 400"), ("case %d: %s"):format(i, out))
            local _, responses = out:gsub("HTTP/1%.1 %d%d%d", "")
            assert.are.equal(1, responses, ("case %d: the smuggled request was answered"):format(i))
            assert.is_truthy(out:find("Connection: close", 1, true), ("case %d"):format(i))
        end
        -- A transfer coding the server does not know: no answer to a smuggled request either.
        local out = raw_all(srv, "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n"
            .. "0\r\n\r\nGET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        assert.is_nil(out:find('"message":"hello"', 1, true), out)
        assert.is_true(srv:running())
        -- Ordinary requests with a body still work.
        local res = assert(srv:request("POST", "/echo", { ["Content-Type"] = "text/plain" }, "abcd"))
        assert.are.equal(200, res.status)
    end)
end)
