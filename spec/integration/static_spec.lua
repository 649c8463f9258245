-- Static files served by the C core over real HTTP, no browser: content
-- types, ETag and Last-Modified revalidation (304), Cache-Control by kind
-- and version, gzip variants by Accept-Encoding, byte ranges (206, 416),
-- preconditions (412, If-Range), HEAD, and paths that would leave the root (.., encoded, symlinks) refused.
--
-- The app is a copy of spec/integration/staticapp, with symlinks added.
local S = require "integration.support.server"
local cjson = require "cjson"

local SRC = "spec/integration/staticapp"

describe("static files #integration", function()
    local srv, dir

    setup(function()
        dir = S.copy_app(SRC)
        -- Symlinks: one inside the root (allowed), two leading out of it.
        assert(os.execute(("cd %s/static && ln -s hello.txt alias.txt && ln -s ../routes.lua up.lua"
            .. " && ln -s /etc/passwd passwd && printf SECRET=1 > .env && mkfifo pipe.txt"):format(S.shell_quote(dir))))
        srv = S.start({ app = dir })
    end)

    teardown(function()
        S.stop_all()
    end)

    local function get(path, headers)
        return assert(srv:request("GET", path, headers))
    end

    it("sends files with their content type and validators", function()
        local res = get("/static/hello.txt")
        assert.are.equal(200, res.status)
        assert.are.equal("hello, static world\n", res.body)
        assert.are.equal("text/plain; charset=utf-8", res.headers["content-type"])
        assert.are.equal("bytes", res.headers["accept-ranges"])
        assert.is_truthy(res.headers["etag"]:match('^"%x+%.%x+%-%x+"$'))
        assert.is_truthy(res.headers["last-modified"]:match("^%a%a%a, %d%d %a%a%a %d%d%d%d %d%d:%d%d:%d%d GMT$"))
        assert.is_truthy(res.headers["x-request-id"])
        assert.are.equal("text/css; charset=utf-8", get("/static/css/site.css").headers["content-type"])
        assert.are.equal("text/javascript; charset=utf-8",
            get("/static/app.js").headers["content-type"])
        assert.are.equal("text/html; charset=utf-8", get("/static/page.html").headers["content-type"])
        assert.are.equal(S.read_file(dir .. "/static/css/site.css"), get("/static/css/site.css").body)
    end)

    it("answers 304 to a client whose copy is current", function()
        local first = get("/static/hello.txt")
        local res = get("/static/hello.txt", { ["If-None-Match"] = first.headers["etag"] })
        assert.are.equal(304, res.status)
        assert.are.equal("", res.body)
        assert.are.equal(first.headers["etag"], res.headers["etag"])
        assert.are.equal(304, get("/static/hello.txt",
            { ["If-None-Match"] = 'W/"other", ' .. first.headers["etag"] }).status)
        assert.are.equal(200, get("/static/hello.txt", { ["If-None-Match"] = '"other"' }).status)
        assert.are.equal(304, get("/static/hello.txt",
            { ["If-Modified-Since"] = first.headers["last-modified"] }).status)
        assert.are.equal(200, get("/static/hello.txt",
            { ["If-Modified-Since"] = "Thu, 01 Jan 1970 00:00:00 GMT" }).status)
    end)

    it("reads a list header sent on several lines whole, and ignores a Range sent twice", function()
        local etag = get("/static/hello.txt").headers["etag"]
        local function raw(path, lines)
            local _, res = srv:raw(("GET %s HTTP/1.1\r\nHost: x\r\n%sConnection: close\r\n\r\n")
                :format(path, table.concat(lines, "\r\n") .. "\r\n"))
            return assert(res, path)
        end
        assert.are.equal(304, raw("/static/hello.txt",
            { 'If-None-Match: "other"', "If-None-Match: " .. etag }).status)
        assert.are.equal("gzip", raw("/static/app.js",
            { "Accept-Encoding: br", "Accept-Encoding: gzip" }).headers["content-encoding"])
        local twice = raw("/static/hello.txt", { "Range: bytes=0-1", "Range: bytes=2-3" })
        assert.are.equal(200, twice.status)
        assert.are.equal(S.read_file(dir .. "/static/hello.txt"), twice.body)
    end)

    it("lets versioned links be cached for a year, the rest revalidated", function()
        local link = get("/link").body
        assert.is_truthy(link:match("^/static/css/site%.css%?v=%x+%.%x+%-%x+$"), link)
        assert.are.equal("public, max-age=31536000, immutable", get(link).headers["cache-control"])
        assert.are.equal("public, max-age=0, must-revalidate",
            get("/static/css/site.css").headers["cache-control"])
        assert.are.equal("public, max-age=0, must-revalidate",
            get("/static/css/site.css?v=stale").headers["cache-control"])
        assert.are.equal("no-cache", get("/static/page.html").headers["cache-control"])
        local sw = get("/sw.js")
        assert.are.equal(200, sw.status)
        assert.are.equal("no-cache", sw.headers["cache-control"])
        assert.are.equal(S.read_file(dir .. "/static/sw.js"), sw.body)
    end)

    it("sends the precompressed variant to clients that accept gzip", function()
        local plain = S.read_file(dir .. "/static/app.js")
        local res = get("/static/app.js", { ["Accept-Encoding"] = "gzip, deflate, br" })
        assert.are.equal(200, res.status)
        assert.are.equal("gzip", res.headers["content-encoding"])
        assert.are.equal("Accept-Encoding", res.headers["vary"])
        assert.are.equal(S.read_file(dir .. "/static/app.js.gz"), res.body)
        assert.is_true(#res.body < #plain / 5)
        assert.is_truthy(res.headers["etag"]:find('-gz"', 1, true))

        local identity = get("/static/app.js")
        assert.is_nil(identity.headers["content-encoding"])
        assert.are.equal(plain, identity.body)
        assert.is_nil(get("/static/app.js", { ["Accept-Encoding"] = "gzip;q=0" })
            .headers["content-encoding"])
        -- gzip refused by name, whatever "*" says; accepted by name over "*;q=0".
        assert.is_nil(get("/static/app.js", { ["Accept-Encoding"] = "*, gzip;q=0" })
            .headers["content-encoding"])
        assert.are.equal("gzip", get("/static/app.js", { ["Accept-Encoding"] = "*;q=0, gzip" })
            .headers["content-encoding"])
        assert.is_nil(get("/static/hello.txt", { ["Accept-Encoding"] = "gzip" })
            .headers["content-encoding"]) -- no hello.txt.gz
    end)

    it("serves byte ranges", function()
        local css = S.read_file(dir .. "/static/css/site.css")
        local res = get("/static/css/site.css", { Range = "bytes=0-9" })
        assert.are.equal(206, res.status)
        assert.are.equal(css:sub(1, 10), res.body)
        assert.are.equal(("bytes 0-9/%d"):format(#css), res.headers["content-range"])
        res = get("/static/css/site.css", { Range = "bytes=-5" })
        assert.are.equal(css:sub(-5), res.body)
        res = get("/static/css/site.css", { Range = "bytes=100-" })
        assert.are.equal(css:sub(101), res.body)
        -- A range of the file itself, even for a client that accepts gzip.
        res = get("/static/app.js", { Range = "bytes=0-4", ["Accept-Encoding"] = "gzip" })
        assert.are.equal(206, res.status)
        assert.are.equal("'use ", res.body)
        res = get("/static/css/site.css", { Range = ("bytes=%d-"):format(#css + 10) })
        assert.are.equal(416, res.status)
        assert.are.equal(("bytes */%d"):format(#css), res.headers["content-range"])
        assert.are.equal("application/json", res.headers["content-type"])
        assert.are.same({ success = false, message = "Range not satisfiable" }, cjson.decode(res.body))
        assert.are.equal(200, get("/static/css/site.css", { Range = "bytes=0-1,5-6" }).status)
    end)

    it("answers 412 to a failed If-Match or If-Unmodified-Since, and drops a stale If-Range", function()
        local css = S.read_file(dir .. "/static/css/site.css")
        local first = get("/static/css/site.css")
        local etag, modified = first.headers["etag"], first.headers["last-modified"]
        for what, headers in pairs({
            ["If-Match another tag"] = { ["If-Match"] = '"other"' },
            ["If-Match a weak tag"] = { ["If-Match"] = "W/" .. etag },
            ["If-Unmodified-Since before the file"] = { ["If-Unmodified-Since"] = "Thu, 01 Jan 1970 00:00:00 GMT" },
        }) do
            local res = get("/static/css/site.css", headers)
            assert.are.equal(412, res.status, what)
            assert.are.same({ success = false, message = "Precondition failed" }, cjson.decode(res.body))
        end
        assert.are.equal(200, get("/static/css/site.css", { ["If-Match"] = etag }).status)
        assert.are.equal(200, get("/static/css/site.css", { ["If-Unmodified-Since"] = modified }).status)
        -- If-Range: the range while the client's copy is current, else the whole file.
        for _, validator in ipairs({ etag, modified }) do
            local res = get("/static/css/site.css", { Range = "bytes=0-9", ["If-Range"] = validator })
            assert.are.equal(206, res.status, validator)
            assert.are.equal(css:sub(1, 10), res.body)
        end
        for _, stale in ipairs({ '"old"', "Thu, 01 Jan 1970 00:00:00 GMT" }) do
            local res = get("/static/css/site.css", { Range = "bytes=0-9", ["If-Range"] = stale })
            assert.are.equal(200, res.status, stale)
            assert.are.equal(css, res.body)
        end
    end)

    it("answers HEAD with the headers alone", function()
        local raw, res = srv:raw("HEAD /static/hello.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            { method = "HEAD" })
        assert.are.equal(200, res.status, raw)
        assert.are.equal("20", res.headers["content-length"])
        assert.are.equal("", res.body)
    end)

    it("refuses paths that would leave the root, however they are spelled", function()
        local secret = S.read_file(dir .. "/routes.lua")
        for _, path in ipairs({
            "/static/../routes.lua", "/static/%2e%2e/routes.lua", "/static/css/..%2f..%2froutes.lua",
            "/static/css/%2E%2E/%2E%2E/routes.lua", "/static/..%5croutes.lua", "/static/./hello.txt",
            "/static//hello.txt", "/static/up.lua", "/static/passwd", "/static/%00hello.txt",
        }) do
            local raw, res = srv:raw(("GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                :format(path))
            assert.is_truthy(res, path .. ": " .. raw)
            assert.is_true(res.status == 400 or res.status == 404, path .. ": " .. res.status)
            assert.is_nil(res.body:find("return", 1, true), path)
            assert.is_nil(res.body:find("root:", 1, true), path)
            assert.is_truthy(#secret > 0)
        end
        -- Symlinks out of the root and hidden files answer as missing ones.
        for _, path in ipairs({ "/static/up.lua", "/static/passwd", "/static/.env" }) do
            local res = get(path)
            assert.are.equal(404, res.status, path)
            assert.is_nil(res.body:find("SECRET", 1, true), path)
        end
        assert.are.equal(200, get("/static/alias.txt").status) -- a symlink inside the root
        -- A FIFO is no file: 404 at once, and the server goes on serving
        -- (opening it used to wait for a writer, holding the thread).
        for _ = 1, 3 do
            assert.are.equal(404, get("/static/pipe.txt").status)
        end
        assert.are.equal(200, get("/static/hello.txt").status)
        assert.are.equal(404, get("/static/missing.txt").status)
        assert.are.equal(404, get("/static/css").status)
        assert.are.equal("application/json", get("/static/missing.txt").headers["content-type"])
    end)

    it("answers OPTIONS 204 and other methods 405, with Allow, as the app's routes do", function()
        for _, method in ipairs({ "POST", "PUT", "DELETE" }) do
            local res = assert(srv:request(method, "/static/hello.txt", {}, "x"))
            assert.are.equal(405, res.status, method)
            assert.are.equal("GET, HEAD, OPTIONS", res.headers["allow"], method)
            assert.are.equal("application/json", res.headers["content-type"])
        end
        for _, path in ipairs({ "/static/hello.txt", "/sw.js" }) do
            local res = assert(srv:request("OPTIONS", path))
            assert.are.equal(204, res.status, path)
            assert.are.equal("GET, HEAD, OPTIONS", res.headers["allow"], path)
            assert.are.equal("", res.body, path)
        end
        assert.are.equal(200, get("/static/hello.txt").status)
    end)
end)
