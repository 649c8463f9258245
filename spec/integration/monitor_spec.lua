-- Metrics and the monitor over real HTTP: exact counts after a known
-- sequence of requests, the exposition checked by promtool, Lua's own
-- metrics, the event stream, an alert that fires and resolves, slow requests
-- logged, access to /metrics, reloads counted, metrics off.
--
-- The app is spec/integration/monitorapp/app; its policy directory has an
-- alert on p95 > 200 ms for 1 s and a 100 ms slow-request threshold.
local S = require "integration.support.server"
local cjson = require "cjson"

local APP = "spec/integration/monitorapp/app"

local function start(args)
    return S.start({ app = APP, args = args })
end

-- { ["name{labels}"] = value } of a Prometheus text exposition.
local function parse(text)
    local samples = {}
    for line in text:gmatch("[^\n]+") do
        if line:sub(1, 1) ~= "#" then
            local key, value = line:match("^(%S+) (%S+)$")
            if not key then -- label values may hold spaces
                key, value = line:match("^(.-}) (%S+)$")
            end
            samples[assert(key, "bad line: " .. line)] = tonumber(value)
        end
    end
    return samples
end

local function scrape(srv)
    local res = assert(srv:request("GET", "/metrics"))
    assert.are.equal(200, res.status, res.body)
    assert.are.equal("text/plain; version=0.0.4; charset=utf-8", res.headers["content-type"])
    return parse(res.body), res.body
end

local function get(srv, path)
    return assert(srv:request("GET", path))
end

-- The sample events a stream delivers within seconds, counting only the
-- samples taken after it connected (not the replayed history).
local function stream_events(srv, seconds)
    local c = assert(S.client(srv.port, 2))
    local connected = os.time() - 1
    assert(c:send(S.format_request("GET", "/monitor/stream")))
    c:settimeout(0.1)
    local buffer, deadline = {}, S.now() + seconds
    while S.now() < deadline do
        local data, err, partial = c.sock:receive(4096)
        local got = data or partial
        if got and #got > 0 then
            buffer[#buffer + 1] = got
        elseif err == "closed" then
            break
        end
    end
    c:close()
    local text = table.concat(buffer)
    local live = 0
    for t in text:gmatch('event: sample\ndata: {"t":([%d.]+)') do
        if tonumber(t) >= connected then
            live = live + 1
        end
    end
    return live, text
end

describe("metrics #integration", function()
    local srv

    setup(function()
        srv = start()
    end)

    teardown(function()
        S.stop_all()
    end)

    it("counts a known sequence of requests exactly", function()
        for _ = 1, 3 do
            assert.are.equal(200, get(srv, "/ok").status)
        end
        for _ = 1, 2 do
            assert.are.equal(201, assert(srv:request("POST", "/ok", {}, "")).status)
        end
        assert.are.equal(500, get(srv, "/boom").status)
        for _ = 1, 2 do
            assert.are.equal(404, get(srv, "/missing").status)
        end
        assert.are.equal(404, get(srv, "/no/such/route").status)
        assert.are.equal(405, assert(srv:request("DELETE", "/ok")).status)

        -- A request is counted when libmicrohttpd reports it complete, which
        -- may come just after the client has read its answer (under TSan,
        -- after the next request's): the scrape waits for the last one.
        local last = 'luahost_http_requests_total{route="unmatched",method="DELETE",status="4xx"}'
        local m = scrape(srv)
        local by = S.now() + 2
        while m[last] == nil and S.now() < by do
            S.sleep(0.05)
            m = scrape(srv)
        end
        assert.are.equal(3, m['luahost_http_requests_total{route="/ok",method="GET",status="2xx"}'])
        assert.are.equal(2, m['luahost_http_requests_total{route="/ok",method="POST",status="2xx"}'])
        assert.are.equal(1, m['luahost_http_requests_total{route="/boom",method="GET",status="5xx"}'])
        assert.are.equal(2,
            m['luahost_http_requests_total{route="/missing",method="GET",status="4xx"}'])
        assert.are.equal(1,
            m['luahost_http_requests_total{route="unmatched",method="GET",status="4xx"}'])
        assert.are.equal(1,
            m['luahost_http_requests_total{route="unmatched",method="DELETE",status="4xx"}'])
        assert.are.equal(3, m['luahost_http_request_duration_seconds_count{route="/ok",method="GET"}'])
        assert.are.equal(3,
            m['luahost_http_request_duration_seconds_bucket{route="/ok",method="GET",le="+Inf"}'])
        assert.is_true(m['luahost_http_request_duration_seconds_sum{route="/ok",method="GET"}'] > 0)
        assert.are.equal(1, m.luahost_lua_errors_total)
        assert.is_nil(m['luahost_http_requests_total{route="/slow",method="GET",status="2xx"}'])
        assert.is_true(m.process_resident_memory_bytes > 1e6)
        assert.is_true(m.process_open_fds > 3)
        assert.is_true(m.luahost_http_requests_in_flight >= 1) -- the scrape itself
    end)

    it("exposes the metrics Lua routes define", function()
        local res = assert(srv:request("POST", "/custom?depth=7", {}, ("x"):rep(500)))
        assert.are.equal(200, res.status, res.body)
        local m = scrape(srv)
        assert.are.equal(1, m.gallery_test_uploads_total)
        assert.are.equal(0, m['gallery_test_size_bytes_bucket{le="100"}'])
        assert.are.equal(1, m['gallery_test_size_bytes_bucket{le="1000"}'])
        assert.are.equal(1, m.gallery_test_size_bytes_count)
        assert.are.equal(500, m.gallery_test_size_bytes_sum)
        assert.are.equal(7, m.gallery_test_queue_depth)
    end)

    it("refuses app metrics named like the core's or another metric's series", function()
        local refused = cjson.decode(get(srv, "/refused").body)
        assert.are.same({
            luahost_http_requests_total = "metric luahost_http_requests_total: series "
                .. "luahost_http_requests_total: names beginning luahost_ or process_ are the core's",
            process_cpu_seconds_total = "metric process_cpu_seconds_total: series "
                .. "process_cpu_seconds_total: names beginning luahost_ or process_ are the core's",
            gallery_test_size_bytes_count = "metric gallery_test_size_bytes_count: series "
                .. "gallery_test_size_bytes_count is also metric gallery_test_size_bytes's",
        }, refused)
    end)

    it("passes promtool check metrics", function()
        assert.is_true(os.execute("command -v promtool >/dev/null") == 0
            or os.execute("command -v promtool >/dev/null") == true, "promtool is installed")
        local _, text = scrape(srv)
        local file = S.tmpdir() .. "/metrics.txt"
        S.write_file(file, text)
        local code, out = S.run({ "sh", "-c", "promtool check metrics < " .. S.shell_quote(file) .. " 2>&1" })
        assert.are.equal(0, code, out)
    end)

    it("streams a sample every second", function()
        local live, text = stream_events(srv, 3.5)
        assert.is_true(live >= 3, ("%d live samples in 3.5 s:\n%s"):format(live, text))
        local last = text:match('.*event: sample\ndata: ({.-})\n\n')
        local sample = cjson.decode(last)
        for _, field in ipairs({ "rps", "p50_ms", "error_rate", "inflight", "cache", "alerts" }) do
            assert.is_not_nil(sample[field], field)
        end
        -- The access log counts the events sent before the viewer left.
        local line = srv:access_log('"GET /monitor/stream" 200 ', 5, true)
        assert.is_truthy(line, srv:access_log())
        local bytes = tonumber(line:match('"GET /monitor/stream" 200 (%d+)'))
        assert.is_truthy(bytes and bytes >= #text / 2 and bytes <= #text, line .. " of " .. #text)
    end)

    it("samples the cache's hit rate of the last second, not since the start", function()
        local c = assert(srv:client())
        for _ = 1, 200 do -- a miss, then hits
            assert.are.equal(200, assert(c:request("GET", "/cache/hot")).status)
        end
        S.sleep(1.2)
        local run = tostring(S.now())
        for i = 1, 100 do -- misses only
            assert.are.equal(200, assert(c:request("GET", "/cache/cold-" .. run .. "-" .. i)).status)
        end
        c:close()
        S.sleep(1.2)
        local _, text = stream_events(srv, 0.5) -- the last 60 samples, replayed
        local rates = {}
        for data in text:gmatch("event: sample\ndata: ({.-})\n\n") do
            local rate = cjson.decode(data).cache.l1_hit_rate
            rates[#rates + 1] = rate ~= cjson.null and rate or nil
        end
        table.sort(rates)
        assert.is_true(rates[1] ~= nil and rates[1] < 0.1, "a second of misses: " .. table.concat(rates, " "))
        assert.is_true(rates[#rates] > 0.9, "a second of hits: " .. table.concat(rates, " "))
    end)

    it("leaves open dashboard streams out of the requests in flight", function()
        local viewers = {}
        for i = 1, 2 do
            viewers[i] = assert(S.client(srv.port, 2))
            assert(viewers[i]:send(S.format_request("GET", "/monitor/stream")))
            assert.is_truthy(viewers[i].sock:receive("*l"):find("^HTTP/1%.1 200"))
        end
        local m = scrape(srv)
        for _, c in ipairs(viewers) do
            c:close()
        end
        assert.are.equal(1, m.luahost_http_requests_in_flight) -- the scrape itself
    end)

    it("puts no latency quantile of a second above its slowest request", function()
        -- 110 ms lies in the histogram's 100-250 ms bucket: interpolating
        -- inside it alone would put p99 near 250 ms.
        S.sleep(1.1)
        local from, slowest = S.now(), 0
        for _ = 1, 4 do
            local started = S.now()
            assert.are.equal(200, get(srv, "/slow?ms=110").status)
            slowest = math.max(slowest, S.now() - started)
        end
        S.sleep(1.2)
        local _, text = stream_events(srv, 0.5)
        local seen = {}
        for data in text:gmatch("event: sample\ndata: ({.-})\n\n") do
            local sample = cjson.decode(data)
            if sample.t > from and sample.p99_ms ~= cjson.null then
                seen[#seen + 1] = sample.p99_ms
                -- The server's clock stops after the client has read the
                -- answer: a few ms of slack, far from the bucket's 250 ms.
                assert.is_true(sample.p99_ms >= 110 and sample.p99_ms <= slowest * 1000 + 10,
                    ("p99 %.1f ms, slowest request %.1f ms"):format(sample.p99_ms, slowest * 1000))
            end
        end
        assert.is_true(#seen >= 1, text)
    end)

    it("answers a HEAD of the stream with its head alone, so the next answer stays in step", function()
        local raw = srv:raw("HEAD /monitor/stream HTTP/1.1\r\nHost: x\r\n\r\n"
            .. "GET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", { read_all = true })
        local head, rest = raw:match("^(HTTP/1%.1 200 .-\r\n\r\n)(.*)$")
        assert.is_truthy(head, raw)
        assert.is_truthy(head:find("text/event-stream", 1, true), head)
        assert.is_truthy(rest:find("^HTTP/1%.1 200 "), "bytes between the answers: " .. rest:sub(1, 40))
    end)

    it("logs requests slower than their route's threshold, with the request id", function()
        local res = get(srv, "/slow?ms=150")
        local id = res.headers["x-request-id"]
        assert.is_truthy(srv:error_log(id .. ": slow request: GET /slow took %d+ ms", 2))
        local m = scrape(srv)
        assert.is_true(m.luahost_slow_requests_total >= 1)
    end)

    it("fires an alert while a route is slow and resolves it after", function()
        -- Slow requests, several at once, for about 2.5 s: p95 above 200 ms.
        local deadline = S.now() + 2.5
        while S.now() < deadline do
            local clients = {}
            for i = 1, 4 do
                clients[i] = assert(S.client(srv.port, 5))
                assert(clients[i]:send(S.format_request("GET", "/slow?ms=300")))
            end
            for _, c in ipairs(clients) do
                assert(c:read_response("GET"))
                c:close()
            end
        end
        assert.is_truthy(srv:error_log("alert slow_p95 firing", 3, true), srv:error_log())
        local body = cjson.decode(get(srv, "/api/monitor/alerts").body)
        assert.are.equal(1, #body.alerts)
        assert.are.equal("slow_p95", body.alerts[1].name)
        assert.is_true(body.alerts[1].value > 200)

        -- Fast requests only: it resolves.
        deadline = S.now() + 5
        repeat
            get(srv, "/ok")
            S.sleep(0.1)
        until srv:error_log("alert slow_p95 resolved", 0, true) or S.now() > deadline
        assert.is_truthy(srv:error_log("alert slow_p95 resolved", 0, true))
        assert.are.same({}, cjson.decode(get(srv, "/api/monitor/alerts").body).alerts)
    end)

    it("fires an alert on failures at under a request a second: quiet seconds are no recovery", function()
        -- One failing request every 1.6 s: most seconds have none, so no
        -- error rate; the failures alone must hold the rule for its 3 s.
        local deadline = S.now() + 12
        repeat
            assert.are.equal(500, get(srv, "/boom").status)
            S.sleep(1.6)
        until srv:error_log("alert sparse_errors firing", 0, true) or S.now() > deadline
        assert.is_truthy(srv:error_log("alert sparse_errors firing", 0, true), srv:error_log())
        local names = {}
        for _, alert in ipairs(cjson.decode(get(srv, "/api/monitor/alerts").body).alerts) do
            names[#names + 1] = alert.name
        end
        assert.are.same({ "sparse_errors" }, names)

        deadline = S.now() + 5
        repeat
            get(srv, "/ok")
            S.sleep(0.1)
        until srv:error_log("alert sparse_errors resolved", 0, true) or S.now() > deadline
        assert.is_truthy(srv:error_log("alert sparse_errors resolved", 0, true), srv:error_log())
    end)

    it("counts reloads", function()
        assert.is_true(srv:signal("HUP") == 0)
        assert.is_truthy(srv:error_log("reloaded ", 5, true))
        assert.are.equal(1, scrape(srv).luahost_reloads_total)
    end)

    it("serves the dashboard with the response's CSP nonce on every script and style", function()
        local res = get(srv, "/monitor")
        assert.are.equal(200, res.status)
        local nonce = res.headers["content-security-policy"]:match("'nonce%-([%w_%-]+)'")
        assert.is_truthy(nonce)
        local tags, with_nonce = 0, 0
        for tag in res.body:gmatch("<script[^>]*>") do
            tags = tags + 1
            with_nonce = with_nonce + (tag:find('nonce="' .. nonce .. '"', 1, true) and 1 or 0)
        end
        assert.is_true(tags >= 2)
        assert.are.equal(tags, with_nonce)
        local js = get(srv, "/monitor/assets/uPlot.iife.min.js")
        assert.are.equal(200, js.status)
        assert.are.equal("text/javascript; charset=utf-8", js.headers["content-type"])
        assert.are.equal(404, get(srv, "/monitor/assets/nope.js").status)
    end)
end)

describe("alert rules #integration", function()
    teardown(function()
        S.stop_all()
    end)

    it("reload with the other policies on SIGHUP", function()
        local policy = S.tmpdir()
        S.copy_dir("lua/policy", policy)
        S.write_file(policy .. "/alerts.lua", "return { rules = {} }")
        local srv = start({ "--policy-dir", policy })
        S.sleep(1.5)
        assert.are.same({}, cjson.decode(get(srv, "/api/monitor/alerts").body).alerts)

        S.write_file(policy .. "/alerts.lua", [[return { rules = {
            { name = "always", metric = "rss_mb", above = 0, for_seconds = 0,
              severity = "info", description = "fires at once" } } }]])
        assert.is_true(srv:signal("HUP") == 0)
        assert.is_truthy(srv:error_log("alert always firing", 5, true), srv:error_log())
        local alerts = cjson.decode(get(srv, "/api/monitor/alerts").body).alerts
        assert.are.equal("always", alerts[1].name)
        assert.are.equal("info", alerts[1].severity)

        S.write_file(policy .. "/alerts.lua", [[return { rules = {
            { name = "broken", metric = "no_such_metric", above = 1 } } }]])
        assert.is_true(srv:signal("HUP") == 0)
        assert.is_truthy(srv:error_log("unknown metric no_such_metric", 5, true))
        assert.are.equal("always", cjson.decode(get(srv, "/api/monitor/alerts").body).alerts[1].name)

        S.write_file(policy .. "/alerts.lua", "return { rule = {} }") -- misspelt: not "no rules"
        assert.is_true(srv:signal("HUP") == 0)
        assert.is_truthy(srv:error_log("unknown key rule (rules, slow_request_ms, slow_routes)", 5, true))
        assert.are.equal("always", cjson.decode(get(srv, "/api/monitor/alerts").body).alerts[1].name)
    end)
end)

describe("alert rules refused at load #integration", function()
    teardown(function()
        S.stop_all()
    end)

    -- `luahost --check` with alerts.lua returning { rules = <rules> }: its
    -- exit code and stderr.
    local function check(rules)
        local policy = S.tmpdir()
        S.copy_dir("lua/policy", policy)
        S.write_file(policy .. "/alerts.lua", "return { rules = " .. rules .. " }")
        local code, _, err = S.run_luahost({ "--check", "--app", APP, "--policy-dir", policy })
        return code, err, policy .. "/alerts.lua: "
    end

    it("takes every documented key and severity", function()
        local code, err = check([[{
            { name = "a", metric = "p95_ms", above = 500, for_seconds = 30, severity = "info",
              description = "slow" },
            { name = "b", metric = "rss_mb", below = 1, severity = "critical" },
            { name = "c", metric = "inflight", above = 9, for_seconds = 0, severity = "warning" } }]])
        assert.are.equal(0, code, err)
    end)

    it("refuses unknown keys, a second rule of a name, NaN, a map and unknown severities", function()
        local keys = "(name, metric, above, below, for_seconds, severity, description)"
        local cases = {
            { '{ { name = "typo", metric = "inflight", above = 0, for_second = 3600 } }',
              "alert typo: unknown key for_second " .. keys },
            { '{ { name = "dup", metric = "rss_mb", above = 1 }, { name = "dup", metric = "rss_mb", above = 2 } }',
              "alert dup: a second rule of this name" },
            { '{ { name = "n", metric = "p95_ms", above = 0/0, for_seconds = 1 } }',
              "alert n: above must be a finite number" },
            { '{ { name = "i", metric = "p95_ms", below = -math.huge } }',
              "alert i: below must be a finite number" },
            { '{ { name = "f", metric = "p95_ms", above = 1, for_seconds = 0/0 } }',
              "alert f: for_seconds must be a finite number" },
            { '{ { name = "s", metric = "p95_ms", above = 5, severity = "catastrophic" } }',
              "alert s: severity catastrophic: want info, warning or critical" },
            { '{ x = { name = "x", metric = "p95_ms", above = 5 } }',
              "rules must be a list: { {name = ...}, {name = ...} }" },
        }
        for _, case in ipairs(cases) do
            local code, err, file = check(case[1])
            assert.are_not.equal(0, code, case[1])
            assert.is_truthy(err:find(file .. case[2], 1, true), case[1] .. ": " .. err)
        end
    end)
end)

describe("alert rules and a failed reload #integration", function()
    teardown(function()
        S.stop_all()
    end)

    it("keep the rules in force when the scripts fail to load", function()
        local app, policy = S.copy_app(APP), S.tmpdir()
        S.copy_dir("lua/policy", policy)
        S.write_file(policy .. "/alerts.lua", "return { rules = {} }")
        local srv = S.start({ app = app, args = { "--policy-dir", policy } })
        local routes = S.read_file(app .. "/routes.lua")

        S.write_file(policy .. "/alerts.lua", [[return { rules = {
            { name = "always", metric = "rss_mb", above = 0, for_seconds = 0 } } }]])
        S.write_file(app .. "/routes.lua", routes .. "\nthis is not lua\n")
        assert.is_true(srv:signal("HUP") == 0)
        assert.is_truthy(srv:error_log("reload failed", 5, true))
        S.sleep(2) -- two samples: a rule in force would have fired
        assert.is_falsy(srv:error_log():find("alert always firing", 1, true), srv:error_log())
        assert.are.same({}, cjson.decode(get(srv, "/api/monitor/alerts").body).alerts)

        S.write_file(app .. "/routes.lua", routes)
        assert.is_true(srv:signal("HUP") == 0)
        assert.is_truthy(srv:error_log("alert always firing", 5, true), srv:error_log())
    end)
end)

describe("metrics access and switch #integration", function()
    teardown(function()
        S.stop_all()
    end)

    it("refuses /metrics and the monitor to addresses outside metrics_allow", function()
        local srv = start({ "--metrics-allow", "10.0.0.0/8" })
        local res = get(srv, "/metrics")
        assert.are.equal(403, res.status)
        assert.are.equal("application/json", res.headers["content-type"])
        assert.are.equal(403, get(srv, "/monitor").status)
        assert.are.equal(403, get(srv, "/api/monitor/alerts").status)
        assert.are.equal(200, get(srv, "/monitor/assets/dashboard.js").status)
    end)

    it("counts nothing, streams nothing and fires nothing with metrics off, and says so", function()
        -- A Redis that never answers: with no prober, nothing may claim it is up.
        local srv = start({ "--metrics", "off", "--redis-url", "redis://127.0.0.1:" .. S.free_port() .. "/0" })
        get(srv, "/ok")
        local m = scrape(srv)
        assert.is_nil(m['luahost_http_requests_total{route="/ok",method="GET",status="2xx"}'])
        assert.is_nil(m.luahost_redis_up)
        for _, path in ipairs({ "/monitor", "/monitor/stream", "/api/monitor/alerts" }) do
            local res = get(srv, path)
            assert.are.equal(503, res.status, path)
            assert.are.equal("Monitoring is off (metrics = off)", cjson.decode(res.body).message)
        end
    end)
end)
