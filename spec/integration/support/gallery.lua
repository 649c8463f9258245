-- The gallery (lua/app) on the test database, for the specs that need
-- accounts and uploads: starting it, `luahost user add`, signing in, SQL
-- behind the server's back.
local S = require "integration.support.server"
local cjson = require "cjson"

local G = {}

-- The test database of scripts/services.sh, unless LUAHOST_TEST_DB_URL says otherwise.
G.DB_URL = os.getenv("LUAHOST_TEST_DB_URL")
    or (os.getenv("LUAHOST_DB_URL") or "mysql://luahost:luahost-dev@127.0.0.1:13306/luahost")
        :gsub("/[^/]*$", "/luahost_test")

-- Runs sql with the mariadb client on the test database; returns its output.
function G.mariadb(sql)
    local user, pass, host, port, database = G.DB_URL:match("^mysql://([^:]+):([^@]*)@([^:/]+):?(%d*)/(.+)$")
    local cmd = ("mariadb --no-defaults -N -h%s -P%s -u%s -p%s %s -e %s"):format(host,
        port ~= "" and port or "3306", user, pass, database, S.shell_quote(sql))
    local p = assert(io.popen(cmd))
    local out = p:read("*a")
    p:close()
    return out
end

function G.json(res)
    return cjson.decode(res.body)
end

-- The gallery on the test database; extra_args are appended (--redis-url...).
function G.start(extra_args)
    local args = { "--db-url", G.DB_URL, "--env", "development" }
    for _, a in ipairs(extra_args or {}) do
        args[#args + 1] = a
    end
    return S.start({
        app = "lua/app",
        args = args,
        env = { FINGERPRINT_SECRET = "spec-secret-0123456789-abcdefghij-KLMNOP" },
        timeout = 20,
    })
end

-- A user name no earlier run has taken.
function G.unique_name(prefix)
    return prefix .. (os.time() % 100000 * 100 + math.random(99))
end

-- Runs `luahost user add name` with the password on stdin, with --admin
-- when admin is true, --no-admin when it is false. Not
-- through os.execute: system() ignores SIGINT while it waits, and the load
-- test's runner must see a Ctrl-C.
function G.add_user(name, password, admin)
    local stdin = S.tmpdir() .. "/password"
    S.write_file(stdin, password .. "\n")
    local argv = { S.bin, "user", "add", name, "--app", "lua/app", "--db-url", G.DB_URL,
        "--error-log", "/dev/null" }
    if admin ~= nil then
        argv[#argv + 1] = admin and "--admin" or "--no-admin"
    end
    local code = S.wait_pid(S.spawn(argv, { stdin = stdin }), 30)
    os.remove(stdin)
    return code == 0, code
end

function G.login(srv, name, password, headers)
    local h = { ["Content-Type"] = "application/json" }
    for k, v in pairs(headers or {}) do
        h[k] = v
    end
    return assert(srv:request("POST", "/api/login", h,
        cjson.encode({ username = name, password = password })))
end

function G.sid_of(res)
    local cookie = res.headers["set-cookie"]
    return cookie and cookie:match("sid=(%x+)"), cookie
end

-- Signs in and returns the headers of an authenticated, CSRF-checked request.
function G.session_headers(srv, name, password)
    local signin = G.login(srv, name, password)
    assert(signin.status == 200, "sign-in failed: " .. signin.body)
    return { Cookie = "sid=" .. G.sid_of(signin), ["X-CSRF-Token"] = G.json(signin).csrf_token }
end

-- POSTs an image as JSON with headers h.
function G.upload(srv, h, value)
    local headers = { ["Content-Type"] = "application/json" }
    for k, v in pairs(h or {}) do
        headers[k] = v
    end
    return assert(srv:request("POST", "/api/svg", headers, cjson.encode(value)))
end

return G
