-- integration.support.server: start build/luahost on a free port and talk
-- HTTP/1.1 to it over loopback.
--
--   local S = require "integration.support.server"
--   local srv = S.start{ args = { "--max-body-bytes", "1024" } }
--   local res = srv:request("GET", "/hello")      -- res.status, res.headers, res.body
--   local c = srv:client()                         -- keep-alive: c:request(...) several times
--   local raw, res = srv:raw("GARBAGE\r\n\r\n")    -- arbitrary bytes, raw answer
--   srv:signal("HUP"); srv:wait_exit(5) -> code
--   srv:error_log(), srv:access_log()              -- the files' text
--   srv:error_log("kaboom", 5, true)              -- bounded poll for a line (also wait_log)
--   srv:stop()                                     -- or S.stop_all() in after_each
--   S.run_luahost({ "--check" }) -> code, stdout, stderr
--   S.spawn(argv, { stdout = file }) -> pid; S.wait_pid(pid, timeout) -> code
--   S.count(srv:error_log(), "reloaded") -> how many times the text occurs
--
-- Options of S.start (all optional):
--   app         application directory (default spec/integration/app)
--   args        extra flags, a list of strings
--   env         environment variables for the server, name -> value
--   port        port to wait on (default: a free one, passed as --port)
--   port_flag   false: do not pass --port (it comes from a config file or env)
--   workers     --workers (default 2; false: do not pass it)
--   timeout     seconds to wait for the port (default 5)
--   ready       function(port) -> truthy once the server listens (default:
--               it accepts on 127.0.0.1)
-- The server's stdout (the access log) and stderr (the error log) go to files
-- in a temporary directory (srv.access_path, srv.error_path).
--
-- A redis-server of its own, on a free port, for specs that need Redis:
--   local r = S.redis()                 -- started and answering PING
--   r.port, r.url ("redis://127.0.0.1:<port>/0")
--   r:command("GET", "k") -> reply (string, number, list, true for +OK; nil
--       for a nil reply; nil, err for an error reply or a dead server)
--   r:keys("rl:*") -> sorted list of key names (SCAN)
--   r:stop() (SIGTERM, then SIGKILL), r:start() again on the same port,
--   r:pause() / r:resume() (SIGSTOP / SIGCONT: a Redis that does not answer)
-- S.stop_all() also stops every redis-server started this way.
local socket = require "socket"
local unistd = require "posix.unistd"
local wait = require "posix.sys.wait"
local psignal = require "posix.signal"
local stdlib = require "posix.stdlib"
local fcntl = require "posix.fcntl"
local dirent = require "posix.dirent"
local bit = require "bit"

local M = {}

M.bin = os.getenv("LUAHOST_BIN") or "./build/luahost"
M.app = "spec/integration/app"

local running = {} -- pid -> server, for stop_all

-- -- Small utilities --------------------------------------------------------

-- Whether this is a sanitizer build's run (LUAHOST_SANITIZED set): specs
-- that judge timings, memory or a browser's patience mark themselves pending
-- there, as those mean nothing under a sanitizer.
function M.sanitized()
    return os.getenv("LUAHOST_SANITIZED") ~= nil
end

function M.now()
    return socket.gettime()
end

function M.sleep(seconds)
    socket.sleep(seconds)
end

-- Waits, if needed, so that the next `needed` seconds stay inside one fixed
-- window of `window` seconds (windows start at multiples of it, on the same
-- clock as the server's): limits then count exactly, without the previous
-- window weighing in.
function M.fresh_window(window, needed)
    local left = window - M.now() % window
    if left < needed then
        M.sleep(left + 0.05)
    end
end

local ua_seq = 0
-- A User-Agent no other request of the run has used: a fresh fingerprint.
function M.fresh_ua(what)
    ua_seq = ua_seq + 1
    return ("spec-%s/%d.%d"):format(what or "agent", ua_seq, math.floor(M.now() * 1000) % 100000)
end

function M.read_file(path)
    local f = io.open(path, "rb")
    if not f then
        return nil
    end
    local text = f:read("*a")
    f:close()
    return text
end

function M.write_file(path, text)
    local f = assert(io.open(path, "wb"))
    assert(f:write(text))
    f:close()
end

local function shell_quote(s)
    return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
M.shell_quote = shell_quote

local tmpdirs = {}

-- A fresh temporary directory, removed by M.cleanup() (called by stop_all).
function M.tmpdir()
    local dir = assert(stdlib.mkdtemp("/tmp/luahost-spec-XXXXXX"))
    tmpdirs[#tmpdirs + 1] = dir
    return dir
end

function M.copy_dir(src, dst)
    local rc = os.execute("cp -R " .. shell_quote(src) .. "/. " .. shell_quote(dst))
    assert(rc == 0 or rc == true, "cp -R " .. src .. " " .. dst .. " failed")
end

-- Copies an application directory into a new temporary directory.
function M.copy_app(src)
    local dir = M.tmpdir()
    M.copy_dir(src or M.app, dir)
    return dir
end

function M.cleanup()
    for i = #tmpdirs, 1, -1 do
        if os.getenv("LUAHOST_SPEC_KEEP") == nil then
            os.execute("rm -rf " .. shell_quote(tmpdirs[i]))
        end
        tmpdirs[i] = nil
    end
end

-- A TCP port nobody listens on right now (bind 127.0.0.1:0, read, close).
local handed_out = {}
function M.free_port()
    for _ = 1, 50 do
        local s = assert(socket.bind("127.0.0.1", 0))
        local _, port = s:getsockname()
        s:close()
        port = tonumber(port)
        if not handed_out[port] then -- distinct ports per server in one run
            handed_out[port] = true
            return port
        end
    end
    error("no free port")
end

-- Whether something accepts TCP connections on 127.0.0.1:port.
function M.accepts(port)
    local s = socket.tcp()
    s:settimeout(0.5)
    local ok = s:connect("127.0.0.1", port)
    s:close()
    return ok ~= nil
end

-- Resident memory of a process, in KiB (VmRSS of /proc/<pid>/status).
function M.rss_kb(pid)
    local status = M.read_file("/proc/" .. pid .. "/status") or ""
    return tonumber(status:match("VmRSS:%s*(%d+)%s*kB"))
end

-- How many file descriptors pid has open.
function M.fd_count(pid)
    local n = 0
    for _ in dirent.files("/proc/" .. pid .. "/fd") do
        n = n + 1
    end
    return n - 2 -- "." and ".."
end

-- -- Processes --------------------------------------------------------------

local function open_out(path)
    local flags = bit.bor(fcntl.O_WRONLY, fcntl.O_CREAT, fcntl.O_TRUNC)
    return assert(fcntl.open(path, flags, 420))
end

-- Forks and execs argv[1] with argv[2..]. opts: stdin, stdout, stderr (file
-- paths; default /dev/null; a terminal's too), env (name -> value, false unsets). Every LUAHOST_*
-- variable of this process except LUAHOST_BIN is removed first, so that the
-- caller's environment cannot change the server's configuration.
function M.spawn(argv, opts)
    opts = opts or {}
    io.stdout:flush()
    io.stderr:flush()
    local pid = assert(unistd.fork())
    if pid == 0 then
        local ok, err = pcall(function()
            unistd.dup2(assert(fcntl.open(opts.stdin or "/dev/null", fcntl.O_RDWR)), 0)
            unistd.dup2(open_out(opts.stdout or "/dev/null"), 1)
            unistd.dup2(open_out(opts.stderr or "/dev/null"), 2)
            for fd = 3, 1023 do -- sockets of the test process must not leak into servers
                unistd.close(fd)
            end
            for name in pairs(stdlib.getenv()) do
                if name:match("^LUAHOST_") and name ~= "LUAHOST_BIN" then
                    stdlib.setenv(name, nil)
                end
            end
            for name, value in pairs(opts.env or {}) do
                stdlib.setenv(name, value ~= false and tostring(value) or nil)
            end
            local args = {}
            for i = 2, #argv do
                args[#args + 1] = argv[i]
            end
            args[0] = argv[1]
            local _, why = unistd.execp(argv[1], args)
            error(why, 0)
        end)
        io.stderr:write("spawn: cannot run ", tostring(argv[1]), ": ", tostring(err), "\n")
        unistd._exit(127)
    end
    return pid
end

-- Polls pid for up to timeout seconds. Returns the exit code (or 128+signal
-- and "killed"), or nil, "timeout".
function M.wait_pid(pid, timeout)
    local deadline = M.now() + (timeout or 5)
    repeat
        local p, how, code = wait.wait(pid, wait.WNOHANG)
        if p == pid then
            if how == "exited" then
                return code, how
            end
            return 128 + (code or 0), how
        elseif p == nil then
            return nil, how -- not our child, or already reaped
        end
        socket.sleep(0.01)
    until M.now() > deadline
    return nil, "timeout"
end

-- Sends signal name ("TERM", "KILL", ...) to pid.
function M.kill(pid, name)
    return psignal.kill(pid, assert(psignal["SIG" .. (name or "TERM")]))
end

-- Runs a command to completion: code, stdout, stderr.
function M.run(argv, opts)
    opts = opts or {}
    local dir = M.tmpdir()
    local out, err = dir .. "/stdout", dir .. "/stderr"
    local pid = M.spawn(argv, { stdout = out, stderr = err, env = opts.env })
    local code, how = M.wait_pid(pid, opts.timeout or 10)
    if code == nil then
        psignal.kill(pid, psignal.SIGKILL)
        M.wait_pid(pid, 2)
        error(("%s did not exit within %ss (%s)"):format(argv[1], opts.timeout or 10, how))
    end
    return code, M.read_file(out) or "", M.read_file(err) or ""
end

-- Runs luahost with args to completion: code, stdout, stderr.
function M.run_luahost(args, opts)
    local argv = { M.bin }
    for _, a in ipairs(args) do
        argv[#argv + 1] = a
    end
    return M.run(argv, opts)
end

-- -- HTTP ---------------------------------------------------------------------

local header_mt = {
    __index = function(t, name)
        if type(name) == "string" then
            return rawget(t, name:lower())
        end
    end,
}

-- Reads one response from sock. Returns res or nil, err, partial raw text.
-- res: status, reason, version, headers (case-insensitive; repeated ones
-- joined with ", "), header_list ({name, value} in order), body, raw.
local function read_response(sock, method)
    local raw = {}
    local line, err, partial = sock:receive("*l")
    if not line then
        return nil, err, partial or ""
    end
    raw[#raw + 1] = line .. "\r\n"
    local version, status, reason = line:match("^(HTTP/%d%.%d) (%d%d%d) ?(.*)$")
    if not version then
        return nil, "bad status line: " .. line, line
    end
    local res = {
        status = tonumber(status),
        reason = reason,
        version = version,
        headers = setmetatable({}, header_mt),
        header_list = {},
    }
    while true do
        line, err, partial = sock:receive("*l")
        if not line then
            return nil, "headers: " .. tostring(err), table.concat(raw) .. (partial or "")
        end
        raw[#raw + 1] = line .. "\r\n"
        if line == "" then
            break
        end
        local name, value = line:match("^([^:]+):%s*(.-)%s*$")
        if not name then
            return nil, "bad header line: " .. line, table.concat(raw)
        end
        local key = name:lower()
        res.header_list[#res.header_list + 1] = { name, value }
        local old = rawget(res.headers, key)
        rawset(res.headers, key, old and (old .. ", " .. value) or value)
    end
    local body
    local te = (rawget(res.headers, "transfer-encoding") or ""):lower()
    local cl = rawget(res.headers, "content-length")
    if method == "HEAD" or res.status == 204 or res.status == 304 or
        (res.status >= 100 and res.status < 200) then
        body = ""
    elseif te:find("chunked", 1, true) then
        local parts = {}
        while true do
            line, err = sock:receive("*l")
            if not line then
                return nil, "chunk size: " .. tostring(err), table.concat(raw)
            end
            raw[#raw + 1] = line .. "\r\n"
            local size = tonumber(line:match("^%x+"), 16)
            if not size then
                return nil, "bad chunk size: " .. line, table.concat(raw)
            end
            if size == 0 then
                repeat -- trailers
                    line, err = sock:receive("*l")
                    raw[#raw + 1] = (line or "") .. "\r\n"
                until not line or line == ""
                break
            end
            local chunk
            chunk, err = sock:receive(size)
            if not chunk then
                return nil, "chunk: " .. tostring(err), table.concat(raw)
            end
            parts[#parts + 1] = chunk
            raw[#raw + 1] = chunk
            line = sock:receive("*l")
            raw[#raw + 1] = "\r\n"
        end
        body = table.concat(parts)
    elseif cl then
        local n = tonumber(cl)
        if n == nil then
            return nil, "bad Content-Length: " .. cl, table.concat(raw)
        end
        if n > 0 then
            body, err, partial = sock:receive(n)
            if not body then
                return nil, "body: " .. tostring(err), table.concat(raw) .. (partial or "")
            end
        else
            body = ""
        end
        raw[#raw + 1] = body
    else -- until the server closes
        local _
        body, _, partial = sock:receive("*a")
        body = body or partial or ""
        raw[#raw + 1] = body
    end
    res.body = body
    res.raw = table.concat(raw)
    return res
end
M.read_response = read_response

-- How many times plain (no pattern) occurs in text, e.g. a line in a log.
function M.count(text, plain)
    local n, at = 0, 1
    while true do
        local s, e = text:find(plain, at, true)
        if not s then
            return n
        end
        n, at = n + 1, e + 1
    end
end

-- Every value of header name, in order.
function M.header_values(res, name)
    local values = {}
    for _, h in ipairs(res.header_list) do
        if h[1]:lower() == name:lower() then
            values[#values + 1] = h[2]
        end
    end
    return values
end

-- The request's bytes. headers: name -> value or a list of {name, value};
-- Host is added unless given; Content-Length is added for a body unless a
-- Content-Length or Transfer-Encoding header is given.
function M.format_request(method, path, headers, body)
    local lines = { ("%s %s HTTP/1.1"):format(method, path) }
    local have = {}
    local list = {}
    if headers and headers[1] then
        list = headers
    else
        for name, value in pairs(headers or {}) do
            list[#list + 1] = { name, value }
        end
        table.sort(list, function(a, b)
            return a[1] < b[1]
        end)
    end
    for _, h in ipairs(list) do
        have[h[1]:lower()] = true
        lines[#lines + 1] = h[1] .. ": " .. tostring(h[2])
    end
    if not have["host"] then
        table.insert(lines, 2, "Host: 127.0.0.1")
    end
    if body and not have["content-length"] and not have["transfer-encoding"] then
        lines[#lines + 1] = "Content-Length: " .. #body
    end
    return table.concat(lines, "\r\n") .. "\r\n\r\n" .. (body or "")
end

-- from: the local address to connect from (default: the system's choice,
-- 127.0.0.1), for a client address of its own.
local function connect(port, timeout, from)
    local sock = assert(socket.tcp())
    sock:settimeout(timeout or 10)
    if from and not sock:bind(from, 0) then
        sock:close()
        return nil, "cannot bind " .. from
    end
    local ok, err = sock:connect("127.0.0.1", port)
    if not ok then
        sock:close()
        return nil, err
    end
    sock:setoption("tcp-nodelay", true)
    return sock
end
M.connect = connect

-- A keep-alive connection: several requests over one socket.
local Client = {}
Client.__index = Client

function M.client(port, timeout, from)
    local sock, err = connect(port, timeout, from)
    if not sock then
        return nil, err
    end
    return setmetatable({ sock = sock, port = port }, Client)
end

function Client:send(bytes)
    local ok, err = self.sock:send(bytes)
    if not ok then
        return nil, err
    end
    return true
end

-- Sends a request and reads its response: res, or nil and an error.
function Client:request(method, path, headers, body)
    local ok, err = self:send(M.format_request(method, path, headers, body))
    if not ok then
        return nil, "send: " .. tostring(err)
    end
    return read_response(self.sock, method)
end

function Client:read_response(method)
    return read_response(self.sock, method)
end

function Client:settimeout(t)
    self.sock:settimeout(t)
end

-- Whether the server has closed this connection (polls up to timeout).
function Client:closed_by_peer(timeout)
    self.sock:settimeout(timeout or 0.5)
    local data, err, partial = self.sock:receive(1)
    self.sock:settimeout(10)
    return data == nil and err == "closed", data or partial
end

function Client:close()
    if self.sock then
        self.sock:close()
        self.sock = nil
    end
end

-- -- Servers ------------------------------------------------------------------

local Server = {}
Server.__index = Server

local function realpath(p)
    return stdlib.realpath(p) or p
end

function M.start(opts)
    opts = opts or {}
    local dir = M.tmpdir()
    local srv = setmetatable({
        dir = dir,
        access_path = dir .. "/access.log",
        error_path = dir .. "/error.log",
        port = opts.port or M.free_port(),
        app = realpath(opts.app or M.app),
    }, Server)
    local argv = { M.bin, "--app", srv.app }
    if opts.port_flag ~= false then
        argv[#argv + 1] = "--port"
        argv[#argv + 1] = tostring(srv.port)
    end
    if opts.workers ~= false then
        argv[#argv + 1] = "--workers"
        argv[#argv + 1] = tostring(opts.workers or 2)
    end
    for _, a in ipairs(opts.args or {}) do
        argv[#argv + 1] = a
    end
    srv.argv = argv
    srv.pid = M.spawn(argv, { stdout = srv.access_path, stderr = srv.error_path, env = opts.env })
    running[srv.pid] = srv

    local deadline = M.now() + (opts.timeout or 5)
    while true do
        local code = srv:poll_exit()
        if code ~= nil then
            error(("luahost exited with %s before listening on %d\nargv: %s\nstderr:\n%s"):format(
                code, srv.port, table.concat(argv, " "), srv:error_log()), 2)
        end
        if (opts.ready or M.accepts)(srv.port) then
            break
        end
        if M.now() > deadline then
            srv:stop()
            error(("luahost did not listen on %d within %ss\nstderr:\n%s"):format(srv.port,
                opts.timeout or 5, srv:error_log()), 2)
        end
        socket.sleep(0.01)
    end
    return srv
end

-- Exit code if the process has exited (reaping it), else nil.
function Server:poll_exit()
    if self.exit_code ~= nil then
        return self.exit_code
    end
    local p, how, code = wait.wait(self.pid, wait.WNOHANG)
    if p == self.pid then
        self.exit_code = how == "exited" and code or 128 + (code or 0)
        self.exit_how = how
        running[self.pid] = nil
        return self.exit_code
    end
    return nil
end

-- Waits up to timeout seconds for the process to exit: its exit code (a
-- signal N shows as 128+N, how == "killed"), or nil, "timeout".
function Server:wait_exit(timeout)
    local deadline = M.now() + (timeout or 5)
    repeat
        local code = self:poll_exit()
        if code ~= nil then
            return code, self.exit_how
        end
        socket.sleep(0.01)
    until M.now() > deadline
    return nil, "timeout"
end

function Server:signal(name)
    local sig = assert(psignal["SIG" .. name], "unknown signal " .. tostring(name))
    assert(self.exit_code == nil, "the server has already exited")
    return psignal.kill(self.pid, sig)
end

function Server:running()
    return self:poll_exit() == nil
end

-- One request over a fresh connection; res, or nil and an error.
function Server:request(method, path, headers, body, timeout)
    local c, err = M.client(self.port, timeout)
    if not c then
        return nil, "connect: " .. tostring(err)
    end
    local res
    res, err = c:request(method, path, headers, body)
    c:close()
    return res, err
end

function Server:client(timeout)
    return M.client(self.port, timeout)
end

-- Sends arbitrary bytes on a fresh connection and reads one response.
-- Returns the raw text received and the parsed response (nil if it was not
-- a valid response). opts: method (for HEAD), timeout, read_all (read until
-- the server closes instead of parsing).
function Server:raw(bytes, opts)
    opts = opts or {}
    local sock = assert(connect(self.port, opts.timeout or 5))
    local ok, err = sock:send(bytes)
    if not ok and err ~= "closed" then
        sock:close()
        error("send: " .. tostring(err))
    end
    if opts.read_all then
        local data, _, partial = sock:receive("*a")
        sock:close()
        return data or partial or ""
    end
    local res, _, partial = read_response(sock, opts.method)
    sock:close()
    if res then
        return res.raw, res
    end
    return partial or "", nil
end

-- The access log's text; with a pattern, waits for it like wait_log.
function Server:access_log(pattern, timeout, plain)
    if pattern then
        return self:wait_log("access", pattern, timeout, plain)
    end
    return M.read_file(self.access_path) or ""
end

-- The error log's text; with a pattern, waits for it like wait_log.
function Server:error_log(pattern, timeout, plain)
    if pattern then
        return self:wait_log("error", pattern, timeout, plain)
    end
    return M.read_file(self.error_path) or ""
end

-- Polls the log ("access" or "error") until pattern (a Lua pattern, or plain
-- text with plain = true) appears, up to timeout seconds. Returns the first
-- matching line (or the match), or nil and the log.
function Server:wait_log(which, pattern, timeout, plain)
    local deadline = M.now() + (timeout or 5)
    local text
    repeat
        text = which == "access" and self:access_log() or self:error_log()
        for line in text:gmatch("[^\n]+") do
            if line:find(pattern, 1, plain) then
                return line
            end
        end
        if not plain and text:find(pattern) then
            return text:match(pattern)
        end
        socket.sleep(0.02)
    until M.now() > deadline
    return nil, text
end

-- Stops the server: SIGTERM, then SIGKILL after timeout seconds. Returns the
-- exit code.
function Server:stop(timeout)
    if self:poll_exit() == nil then
        psignal.kill(self.pid, psignal.SIGTERM)
        local code = self:wait_exit(timeout or 5)
        if code == nil then
            psignal.kill(self.pid, psignal.SIGKILL)
            self:wait_exit(5)
        end
    end
    running[self.pid] = nil
    return self.exit_code
end

-- Stops every server (and redis-server of M.redis) still running and removes
-- the temporary directories.
function M.stop_all()
    for _, srv in pairs(running) do
        srv:stop(2)
    end
    M.redis_stop_all()
    M.cleanup()
end

-- -- Redis --------------------------------------------------------------------

local Redis = {}
Redis.__index = Redis
local redises = {} -- every Redis object, for redis_stop_all

M.redis_bin = os.getenv("REDIS_SERVER") or "redis-server"

-- One RESP reply from sock: value, or nil and an error.
local function resp_read(sock)
    local line, err = sock:receive("*l")
    if not line then
        return nil, err
    end
    local kind, rest = line:sub(1, 1), line:sub(2)
    if kind == "+" then
        return rest == "OK" and true or rest
    elseif kind == "-" then
        return nil, rest
    elseif kind == ":" then
        return tonumber(rest)
    elseif kind == "$" then
        local n = tonumber(rest)
        if n < 0 then
            return nil
        end
        local data
        data, err = sock:receive(n + 2)
        if not data then
            return nil, err
        end
        return data:sub(1, n)
    elseif kind == "*" then
        local n = tonumber(rest)
        local list = {}
        for i = 1, math.max(n, 0) do
            local v
            v, err = resp_read(sock)
            if v == nil and err then
                return nil, err
            end
            list[i] = v
        end
        return list
    end
    return nil, "bad RESP line: " .. line
end

-- Starts redis-server on a free port (or opts.port) in its own directory,
-- without persistence, and waits until it answers PING.
function M.redis(opts)
    opts = opts or {}
    local r = setmetatable({ port = opts.port or M.free_port(), dir = M.tmpdir() }, Redis)
    r.url = ("redis://127.0.0.1:%d/0"):format(r.port)
    r.log_path = r.dir .. "/redis.log"
    redises[#redises + 1] = r
    r:start(opts.timeout)
    return r
end

function Redis:start(timeout)
    assert(self.pid == nil, "redis-server is already running")
    self.pid = M.spawn({ M.redis_bin, "--port", tostring(self.port), "--bind", "127.0.0.1",
        "--save", "", "--appendonly", "no", "--daemonize", "no", "--dir", self.dir },
        { stdout = self.log_path, stderr = self.log_path .. ".err" })
    self.paused = false
    local deadline = M.now() + (timeout or 5)
    while true do
        local code = M.wait_pid(self.pid, 0)
        if code ~= nil then
            self.pid = nil
            error(("redis-server exited with %s before answering on %d:\n%s"):format(code,
                self.port, M.read_file(self.log_path) or ""), 2)
        end
        if self:command("PING") == "PONG" then
            return self
        end
        if M.now() > deadline then
            self:stop()
            error(("redis-server did not answer on %d within %ss"):format(self.port,
                timeout or 5), 2)
        end
        socket.sleep(0.01)
    end
end

-- Sends one command; returns its reply (see the module's comment).
function Redis:command(...)
    local sock = socket.tcp()
    sock:settimeout(2)
    local ok, err = sock:connect("127.0.0.1", self.port)
    if not ok then
        sock:close()
        return nil, "connect: " .. tostring(err)
    end
    local args = { ... }
    local parts = { "*" .. #args .. "\r\n" }
    for _, a in ipairs(args) do
        a = tostring(a)
        parts[#parts + 1] = "$" .. #a .. "\r\n" .. a .. "\r\n"
    end
    ok, err = sock:send(table.concat(parts))
    if not ok then
        sock:close()
        return nil, "send: " .. tostring(err)
    end
    local value
    value, err = resp_read(sock)
    sock:close()
    return value, err
end

-- Every key matching pattern (SCAN), sorted.
function Redis:keys(pattern)
    local keys, cursor = {}, "0"
    repeat
        local reply = assert(self:command("SCAN", cursor, "MATCH", pattern, "COUNT", 1000))
        cursor = reply[1]
        for _, k in ipairs(reply[2]) do
            keys[#keys + 1] = k
        end
    until cursor == "0"
    table.sort(keys)
    return keys
end

function Redis:running()
    return self.pid ~= nil
end

function Redis:pause()
    assert(self.pid, "redis-server is not running")
    M.kill(self.pid, "STOP")
    self.paused = true
end

function Redis:resume()
    assert(self.pid, "redis-server is not running")
    M.kill(self.pid, "CONT")
    self.paused = false
end

-- Stops the server (SIGTERM, SIGKILL after timeout seconds) and reaps it.
function Redis:stop(timeout)
    if self.pid == nil then
        return
    end
    if self.paused then
        M.kill(self.pid, "CONT")
        self.paused = false
    end
    M.kill(self.pid, "TERM")
    if M.wait_pid(self.pid, timeout or 5) == nil then
        M.kill(self.pid, "KILL")
        M.wait_pid(self.pid, 5)
    end
    self.pid = nil
end

function M.redis_stop_all()
    for i = #redises, 1, -1 do
        redises[i]:stop(2)
        redises[i] = nil
    end
end

-- Sends a request on a new connection without reading the answer (it is
-- read later with c:read_response()). Returns the client.
function M.send_only(port, method, path, headers, body)
    local c = assert(M.client(port))
    assert(c:send(M.format_request(method, path, headers, body)))
    return c
end

return M
