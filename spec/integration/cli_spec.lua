-- The command line: --help, --version, --check, bad flags and values,
-- broken scripts and config files, and the precedence of the configuration
-- sources (defaults < config file < environment < flags).
local S = require "integration.support.server"
local stat = require "posix.sys.stat"

local function broken_app(line_text, at_line)
    local app = S.tmpdir()
    local lines = { "return {", '    ["GET /hello"] = function(_, res)' }
    while #lines < at_line - 1 do
        lines[#lines + 1] = "        -- padding"
    end
    lines[#lines + 1] = line_text
    lines[#lines + 1] = "    end,"
    lines[#lines + 1] = "}"
    S.write_file(app .. "/routes.lua", table.concat(lines, "\n") .. "\n")
    return app
end

describe("cli #integration", function()
    after_each(function()
        S.stop_all()
    end)

    it("--help exits 0 and lists the main flags", function()
        local code, out = S.run_luahost({ "--help" })
        assert.are.equal(0, code)
        for _, flag in ipairs({ "--app", "--host", "--port", "--workers", "--config", "--check",
            "--max-body-bytes", "--max-header-bytes", "--shutdown-timeout" }) do
            assert.is_truthy(out:find(flag, 1, true), flag .. " missing from --help:\n" .. out)
        end
        -- One default per option: none where the text names it.
        for line in out:gmatch("[^\n]+") do
            local _, n = line:gsub("default:", "")
            assert.is_true(n <= 1, line)
        end
        assert.is_truthy(out:find("default: the app's sibling 'policy'\n", 1, true), out)
    end)

    it("--version prints 'luahost <version>'", function()
        local code, out = S.run_luahost({ "--version" })
        assert.are.equal(0, code)
        assert.is_truthy(out:match("^luahost %d+%.%d+%.%d+\n$"), out)
    end)

    it("an unknown flag exits non-zero with a message naming it", function()
        local code, out, err = S.run_luahost({ "--no-such-flag" })
        assert.are_not.equal(0, code)
        assert.is_truthy(err:find("--no-such-flag", 1, true), "stderr: " .. err)
        assert.are.equal("", out)
        code, _, err = S.run_luahost({ "stray-argument" })
        assert.are_not.equal(0, code)
        assert.is_truthy(err:find("stray-argument", 1, true), "stderr: " .. err)
        code, _, err = S.run_luahost({ "--app", S.app, "--port" })
        assert.are.equal(2, code)
        assert.is_truthy(err:find("no value after option '--port'", 1, true), "stderr: " .. err)
    end)

    it("says a subcommand given after options comes first", function()
        for _, args in ipairs({
            { "--app", S.app, "user", "add", "someone", "--admin" },
            { "--app", S.app, "migrate" },
        }) do
            local code, _, err = S.run_luahost(args)
            assert.are.equal(2, code, err)
            assert.is_truthy(err:find("' is a subcommand: it comes first, the options after it", 1, true),
                "stderr: " .. err)
        end
    end)

    it("stops at once on SIGTERM while it still retries the database at start", function()
        local log = S.tmpdir() .. "/error.log"
        local pid = S.spawn({ S.bin, "--app", S.app, "--port", tostring(S.free_port()),
            "--db-url", "mysql://u:p@127.0.0.1:1/x", "--db-connect-attempts", "30",
            "--db-connect-delay", "2", "--error-log", log })
        S.sleep(0.5)
        local t0 = S.now()
        assert.are.equal(0, require("posix.signal").kill(pid, require("posix.signal").SIGTERM))
        local code = S.wait_pid(pid, 10)
        assert.are.equal(1, code, S.read_file(log))
        assert.is_true(S.now() - t0 < 2, ("exit took %.1f s"):format(S.now() - t0))
        assert.is_truthy(S.read_file(log):find("SIGTERM during start-up: exiting", 1, true), S.read_file(log))
    end)

    it("--check exits 0 on the good app", function()
        local code, out, err = S.run_luahost({ "--check", "--app", S.app })
        assert.are.equal(0, code, out .. err)
    end)

    it("--check says when there are no policies, rather than that they are fine", function()
        local app = S.tmpdir() .. "/app" -- without ../policy beside it
        assert(os.execute("mkdir " .. app) == 0)
        S.copy_dir("lua/app", app)
        local code, out, err = S.run_luahost({ "--check", "--app", app })
        assert.are.equal(0, code, out .. err)
        assert.is_truthy(out:find("warning: no policy directory: no rate limits and no security headers",
            1, true), out)
        assert.is_nil(out:find("policies of", 1, true), out)
    end)

    it("--check refuses what the start would refuse, naming it, and creates no file", function()
        local dir = S.tmpdir()
        S.write_file(dir .. "/file", "")
        local policy = S.tmpdir()
        S.copy_dir("lua/policy", policy)
        local alerts = S.read_file(policy .. "/alerts.lua")
        local bad_metric, n = alerts:gsub('metric = "p95_ms"', 'metric = "p95ms"', 1)
        assert.are.equal(1, n)
        S.write_file(policy .. "/alerts.lua", bad_metric)
        local cases = {
            -- Each names where the value came from.
            { { "--trusted-proxies", "garbage" },
              "flag --trusted-proxies: option 'trusted_proxies': bad entry 'garbage'" },
            { { "--metrics-allow", "10.0.0.0/99" }, "flag --metrics-allow: option 'metrics_allow'" },
            { { "--host", "999.1.1.1" }, "flag --host: option 'host': cannot resolve '999.1.1.1'" },
            { { "--static-dir", dir .. "/none" },
              "flag --static-dir: option 'static_dir': static folder " .. dir .. "/none" },
            { { "--access-log", dir .. "/none/a.log" },
              "flag --access-log: option 'access_log': cannot write " .. dir .. "/none/a.log" },
            { { "--error-log", dir .. "/none/e.log" }, "flag --error-log: option 'error_log': cannot write" },
            { { "--access-log", dir }, "flag --access-log: option 'access_log': cannot write " .. dir
                .. ": Is a directory" },
            { { "--access-log", dir .. "/file/a.log" },
              "flag --access-log: option 'access_log': cannot write " .. dir .. "/file/a.log: Not a directory" },
            { { "--error-log", "/proc/luahost-no-such.log" }, "flag --error-log: option 'error_log': cannot write" },
            { { "--error-log", "" }, "option 'error_log': must not be empty" },
            { { "--policy-dir", dir .. "/none" },
              "flag --policy-dir: option 'policy_dir': " .. dir .. "/none is not a folder" },
            { { "--policy-dir", policy }, "unknown metric p95ms" },
        }
        for _, case in ipairs(cases) do
            local args = { "--check", "--app", S.app }
            for _, a in ipairs(case[1]) do
                args[#args + 1] = a
            end
            local code, _, err = S.run_luahost(args)
            assert.are_not.equal(0, code, table.concat(case[1], " "))
            assert.is_truthy(err:find(case[2], 1, true), table.concat(case[1], " ") .. ": " .. err)
        end
        local code = S.run_luahost({ "--check", "--app", S.app, "--access-log", dir .. "/a.log" })
        assert.are.equal(0, code)
        assert.is_nil(S.read_file(dir .. "/a.log"), "--check created the access log")
    end)

    it("--check exits non-zero on a syntax error and prints routes.lua:<line>:", function()
        local app = broken_app("        local x = = 1", 4)
        local code, out, err = S.run_luahost({ "--check", "--app", app })
        assert.are_not.equal(0, code)
        assert.is_truthy((out .. err):find("routes.lua:4:", 1, true), "output: " .. out .. err)
    end)

    it("--check reports an error raised while loading routes.lua with file:line", function()
        local app = S.tmpdir()
        S.write_file(app .. "/routes.lua", 'local ok = true\n\nerror("no database configured")\nreturn {}\n')
        local code, out, err = S.run_luahost({ "--check", "--app", app })
        assert.are_not.equal(0, code)
        assert.is_truthy((out .. err):find("routes.lua:3: no database configured", 1, true), out .. err)
    end)

    it("--check prints a long load error whole, and a raised table's __tostring", function()
        local app = S.tmpdir()
        local long = ("z"):rep(1500)
        S.write_file(app .. "/routes.lua", 'error("start ' .. long .. ' END")\nreturn {}\n')
        local code, out, err = S.run_luahost({ "--check", "--app", app })
        assert.are_not.equal(0, code)
        assert.is_truthy((out .. err):find(long .. " END", 1, true), out .. err)

        S.write_file(app .. "/routes.lua", 'error(setmetatable({}, { __tostring = function() '
            .. 'return "no database configured" end }))\nreturn {}\n')
        code, out, err = S.run_luahost({ "--check", "--app", app })
        assert.are_not.equal(0, code)
        assert.is_truthy((out .. err):find("no database configured", 1, true), out .. err)
    end)

    it("--check compiles every template, one the app names nowhere too, and reports file:line", function()
        local app = S.tmpdir()
        local templates = app .. "/templates"
        assert(stat.mkdir(templates))
        S.write_file(app .. "/routes.lua", ("local views = require('luahost.template').load(%q, { 'page' })\n"
            .. "return { ['GET /page'] = function(_, res) res:html(views.render('page', {})) end }\n")
            :format(templates))
        S.write_file(templates .. "/page.html", "<p>page</p>\n")
        S.write_file(templates .. "/unused.html", "<ul>\n{% for _, x in ipairs(xs) do %}\n<li>{{ x }</li>\n"
            .. "{% end %}\n</ul>\n")
        local code, out, err = S.run_luahost({ "--check", "--app", app })
        assert.are.equal(1, code, out .. err)
        assert.are.equal("luahost: " .. templates .. "/unused.html:3: unclosed {{\n", err)

        S.write_file(templates .. "/unused.html", "<ul>\n{% for _, x in ipairs(xs) do %}\n<li>{{ x }}</li>\n"
            .. "{% end %}\n</ul>\n")
        code, out, err = S.run_luahost({ "--check", "--app", app })
        assert.are.equal(0, code, out .. err)
    end)

    it("--check gives up on a script still loading after --load-timeout, naming where it was", function()
        local app = S.tmpdir()
        -- The second loop's pcall catches the error once: it must not go on.
        -- The third runs few Lua instructions, each a slow C call.
        for _, loop in ipairs({ "while true do\n    n = n + 1\nend\n",
            "while true do\n    pcall(function() for i = 1, 1e9 do n = n + i end end)\nend\n",
            "while true do\n    n = ('a'):rep(1e6):gsub('a', 'b')\nend\n" }) do
            S.write_file(app .. "/routes.lua", "local n = 0\n" .. loop .. "return {}\n")
            local t0 = S.now()
            local code, _, err = S.run_luahost({ "--check", "--app", app, "--load-timeout", "1" })
            assert.are_not.equal(0, code)
            assert.is_true(S.now() - t0 < 5)
            assert.is_truthy(err:find("^luahost: " .. app:gsub("%p", "%%%0") .. "/routes.lua:[23]: still loading "
                .. "after 1 s %(load_timeout%): an endless loop%?\n$"), err)
        end
    end)

    it("refuses to start with a broken app, file:line on stderr", function()
        local app = broken_app("        res:json({ success = true }", 5)
        local port = S.free_port()
        local code, _, err = S.run_luahost({ "--app", app, "--port", tostring(port), "--workers", "1" })
        assert.are_not.equal(0, code)
        assert.is_truthy(err:find("routes.lua:%d+:"), "stderr: " .. err)
        assert.is_truthy(err:find(app .. "/routes.lua:", 1, true), "stderr: " .. err)
        assert.is_false(S.accepts(port))
    end)

    it("serves with one worker without a warning about a thread pool of one", function()
        local srv = S.start({ workers = 1 })
        assert.are.equal(200, assert(srv:request("GET", "/hello")).status)
        assert.is_nil(srv:error_log():find("[Tt]hread pool"), srv:error_log())
    end)

    it("rejects bad option values, naming the option", function()
        local code, _, err = S.run_luahost({ "--port", "0", "--check" })
        assert.are_not.equal(0, code)
        assert.is_truthy(err:find("port", 1, true), "stderr: " .. err)

        code, _, err = S.run_luahost({ "--max-body-bytes", "abc", "--check" })
        assert.are_not.equal(0, code)
        assert.is_truthy(err:find("max[-_]body[-_]bytes"), "stderr: " .. err)
        assert.is_truthy(err:find("abc", 1, true), "stderr: " .. err)

        code, _, err = S.run_luahost({ "--port", "70000", "--check" })
        assert.are_not.equal(0, code)
        assert.is_truthy(err:find("port", 1, true), "stderr: " .. err)

        code, _, err = S.run_luahost({ "--max-connections", "1", "--workers", "2", "--check" })
        assert.are_not.equal(0, code)
        assert.is_truthy(err:find("option 'max_connections': 1 is fewer than the 2 workers", 1, true),
            "stderr: " .. err)

        code, _, err = S.run_luahost({ "--check" }, { env = { LUAHOST_WORKERS = "many" } })
        assert.are_not.equal(0, code)
        assert.is_truthy(err:find("LUAHOST_WORKERS", 1, true), "stderr: " .. err)

        -- A misspelt variable is no option: said, not silently ignored.
        code, _, err = S.run_luahost({ "--check", "--app", S.app }, { env = { LUAHOST_WORKER = "4" } })
        assert.are.equal(0, code, err)
        assert.is_truthy(err:find("warning: LUAHOST_WORKER names no option; did you mean LUAHOST_WORKERS?",
            1, true), "stderr: " .. err)

        -- Started for real, not only checked.
        code, _, err = S.run_luahost({ "--port", "0", "--app", S.app })
        assert.are_not.equal(0, code)
        assert.is_truthy(err:find("port", 1, true), "stderr: " .. err)
    end)

    describe("configuration precedence", function()
        local A, B, C, config

        before_each(function()
            A, B, C = S.free_port(), S.free_port(), S.free_port()
            config = S.tmpdir() .. "/luahost.conf.lua"
            S.write_file(config, ("return {\n    port = %d,\n    workers = 1,\n    app = %q,\n}\n"):format(A,
                S.app))
        end)

        local function only_listening_on(srv, port)
            assert.are.equal(port, srv.port)
            assert.are.equal(200, assert(srv:request("GET", "/hello")).status)
            for _, other in ipairs({ A, B, C }) do
                if other ~= port then
                    assert.is_false(S.accepts(other), "something listens on " .. other)
                end
            end
            -- The start-up line follows the listen, so a request may be answered before it is written.
            local line, log = srv:error_log("127.0.0.1:" .. port, 5, true)
            assert.is_truthy(line, log)
        end

        it("flag over environment over config file", function()
            local srv = S.start({ port = C, workers = false, args = { "--config", config },
                env = { LUAHOST_PORT = B } })
            only_listening_on(srv, C)
        end)

        it("environment over config file", function()
            local srv = S.start({ port = B, port_flag = false, workers = false,
                args = { "--config", config }, env = { LUAHOST_PORT = B } })
            only_listening_on(srv, B)
        end)

        it("config file over defaults", function()
            local srv = S.start({ port = A, port_flag = false, workers = false,
                args = { "--config", config } })
            only_listening_on(srv, A)
        end)

        it("LUAHOST_CONFIG names the config file too", function()
            local srv = S.start({ port = A, port_flag = false, workers = false,
                env = { LUAHOST_CONFIG = config } })
            only_listening_on(srv, A)
        end)

        it("a flag given before --config still wins over the file", function()
            local srv = S.start({ port = C, port_flag = false, workers = false,
                args = { "--port", tostring(C), "--config", config }, env = { LUAHOST_PORT = B } })
            only_listening_on(srv, C)
        end)

        it("a config file with a syntax error fails with its path and line", function()
            S.write_file(config, "return {\n    port = 8080,\n    workers = = 2,\n}\n")
            local code, _, err = S.run_luahost({ "--config", config, "--check" })
            assert.are_not.equal(0, code)
            assert.is_truthy(err:find(config .. ":3:", 1, true), "stderr: " .. err)
            code, _, err = S.run_luahost({ "--config", config })
            assert.are_not.equal(0, code)
            assert.is_truthy(err:find(config .. ":3:", 1, true), "stderr: " .. err)
        end)

        it("a config file calling os.exit fails with its path and line, not its exit status", function()
            S.write_file(config, "return {\n    port = 8080,\n    workers = os.exit(0),\n}\n")
            local code, _, err = S.run_luahost({ "--config", config, "--check" })
            assert.are_not.equal(0, code)
            assert.is_truthy(err:find(config .. ":3: os.exit in a config file", 1, true), "stderr: " .. err)
        end)

        it("a bad value overridden by a higher source is not checked; one in force is, by source", function()
            S.write_file(config, ("return { port = %d, workers = 1, app = %q, log_level = 'loud' }\n")
                :format(A, S.app))
            local srv = S.start({ port = C, workers = false,
                args = { "--config", config, "--log-level", "info" },
                env = { LUAHOST_PORT = "eighty" } })
            only_listening_on(srv, C)

            local code, _, err = S.run_luahost({ "--check", "--config", config, "--port", tostring(C) },
                { env = { LUAHOST_ENV = "staging" } })
            assert.are_not.equal(0, code)
            assert.is_truthy(err:find("LUAHOST_ENV", 1, true) and err:find("'staging' is not development or production",
                1, true), "stderr: " .. err)
            code, _, err = S.run_luahost({ "--check", "--config", config })
            assert.are_not.equal(0, code)
            assert.is_truthy(err:find(config, 1, true) and err:find("'loud' is not debug, info, warn or error",
                1, true), "stderr: " .. err)
            code, _, err = S.run_luahost({ "--check", "--metrics", "yes" })
            assert.are_not.equal(0, code)
            assert.is_truthy(err:find("flag --metrics", 1, true), "stderr: " .. err)
        end)

        it("a config file may give an on/off option as a boolean, and no other", function()
            S.write_file(config, 'return { metrics = false }\n')
            local code, out, err = S.run_luahost({ "--config", config, "--check", "--app", S.app })
            assert.are.equal(0, code, out .. err)
            S.write_file(config, 'return { workers = true }\n')
            code, _, err = S.run_luahost({ "--config", config, "--check", "--app", S.app })
            assert.are_not.equal(0, code)
            assert.is_truthy(err:find("option 'workers': want a string or a number, got boolean", 1, true), err)
        end)

        it("a config file with a bad value fails naming the file and the option", function()
            S.write_file(config, 'return { max_body_bytes = "lots" }\n')
            local code, _, err = S.run_luahost({ "--config", config, "--check" })
            assert.are_not.equal(0, code)
            assert.is_truthy(err:find(config, 1, true), "stderr: " .. err)
            assert.is_truthy(err:find("max_body_bytes", 1, true), "stderr: " .. err)
        end)
    end)
end)
