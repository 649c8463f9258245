-- The gallery's web pages, a progressive web app (lua/app/pages.lua,
-- templates/, static/). Without a browser: every page is HTML under the app's
-- own CSP, links the manifest, and nonces each script and style with that
-- CSP's nonce; templates escape what users wrote; the static files behind the
-- pages are served and current. In a real browser (tests/browser/pwa.mjs:
-- playwright-core driving Debian's chromium): no errors or CSP violations, the
-- service worker, installability, sign-in and upload through the forms,
-- offline use, private images and the Delete button. Screenshots go to
-- build/artifacts/.
local S = require "integration.support.server"
local G = require "integration.support.gallery"
local cjson = require "cjson"

local ARTIFACTS = "build/artifacts"
local STATIC = "lua/app/static/"

-- The nonce of a response's CSP, and the policy with the nonce blanked out.
local function csp_of(res)
    local csp = assert(res.headers["content-security-policy"], "no CSP header")
    local nonce = assert(csp:match("'nonce%-([%w_%-]+)'"), "no nonce in " .. csp)
    return nonce, (csp:gsub("'nonce%-[%w_%-]+'", "'nonce-N'"))
end

-- The start tags named name (case-insensitive) in html.
local function tags(html, name)
    local found = {}
    for tag, tag_name in html:gmatch("(<(%a+)[^>]*>)") do
        if tag_name:lower() == name then
            found[#found + 1] = tag
        end
    end
    return found
end

local function unzip(path)
    local pipe = assert(io.popen("gzip -dc " .. S.shell_quote(path)))
    local text = pipe:read("*a")
    pipe:close()
    return text
end

describe("gallery web app #integration", function()
    local srv, session, other, admin, api_csp
    local uploaded = {} -- ids of this run's images, deleted at the end
    local user = G.unique_name("painter")
    local other_user = G.unique_name("viewer")
    local secret = "correct horse battery"

    setup(function()
        local admin_user = G.unique_name("curator")
        assert.is_true(G.add_user(user, secret, false))
        assert.is_true(G.add_user(other_user, secret, false))
        assert.is_true(G.add_user(admin_user, secret, true))
        srv = G.start()
        session = G.session_headers(srv, user, secret)
        other = G.session_headers(srv, other_user, secret)
        admin = G.session_headers(srv, admin_user, secret)
        local _
        _, api_csp = csp_of(assert(srv:request("GET", "/api/svg/list?per_page=1")))
    end)

    teardown(function()
        for _, id in ipairs(uploaded) do
            srv:request("DELETE", "/api/svg/" .. id, session)
        end
        S.stop_all()
    end)

    -- A page answered 200 as HTML under the app's default CSP, with the
    -- manifest, and every script and style nonced with this response's nonce.
    local function assert_page(path, headers)
        local res = assert(srv:request("GET", path, headers))
        assert.are.equal(200, res.status, path .. ": " .. res.body)
        assert.are.equal("text/html; charset=utf-8", res.headers["content-type"])
        local nonce, csp = csp_of(res)
        assert.are.equal(api_csp, csp, path .. " must not change the app's CSP")
        assert.are.equal(1, #S.header_values(res, "Content-Security-Policy"))
        assert.matches("^<!doctype html>", res.body)
        assert.is_truthy(res.body:find('<link rel="manifest" href="/static/manifest.webmanifest">', 1, true))
        local scripts = tags(res.body, "script")
        assert.is_true(#scripts >= 2, path .. ": the app script and the inline registration")
        for _, list in ipairs({ scripts, tags(res.body, "style") }) do
            for _, tag in ipairs(list) do
                assert.is_truthy(tag:find(' nonce="' .. nonce .. '"', 1, true), path .. ": " .. tag)
            end
        end
        assert.is_nil(res.body:find(" style=", 1, true), path .. ": style attributes are blocked")
        assert.is_nil(res.body:find("<%a[^>]- on%a+="), path .. ": inline handlers are blocked")
        return res
    end

    it("serves each page as HTML with the manifest and nonced scripts", function()
        local first = G.json(assert(srv:request("GET", "/api/svg/list?per_page=1"))).items[1]
        assert_page("/")
        assert_page("/?page=3")
        assert_page("/offline")
        assert_page("/signin")
        assert_page("/upload", session)
        local image = assert_page("/image/" .. first.id)
        assert.is_truthy(image.body:find('<img src="/svg/' .. first.id .. '.svg"', 1, true))
        -- Signed in, the navigation names the user and offers the upload.
        local home = assert_page("/", session)
        assert.is_truthy(home.body:find(">" .. user .. "<", 1, true))
        assert.is_truthy(home.body:find('href="/upload"', 1, true))
    end)

    it("sends visitors to the sign-in page, and signed-in users past it", function()
        local res = assert(srv:request("GET", "/upload"))
        assert.are.equal(302, res.status)
        assert.are.equal("/signin?next=/upload", res.headers["location"])
        res = assert(srv:request("GET", "/signin", session))
        assert.are.equal(302, res.status)
        assert.are.equal("/", res.headers["location"])
    end)

    it("answers unknown images with an HTML 404", function()
        for _, path in ipairs({ "/image/999999999", "/image/0", "/image/abc", "/image/1.5",
            "/image/0x1", "/image/1e0", "/image/%201" }) do
            local res = assert(srv:request("GET", path))
            assert.are.equal(404, res.status, path)
            assert.are.equal("text/html; charset=utf-8", res.headers["content-type"])
        end
    end)

    it("escapes what users wrote", function()
        local res = G.upload(srv, session, {
            filename = "<b>bold</b>.svg",
            description = [[<script>alert("x")</script> & 'quotes']],
            svg = '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 10 10">'
                .. '<rect width="10" height="10" fill="#2f3e9e"/></svg>',
        })
        assert.are.equal(201, res.status, res.body)
        uploaded[#uploaded + 1] = G.json(res).id
        local page = assert_page("/image/" .. G.json(res).id)
        assert.is_truthy(page.body:find("<h1>&lt;b&gt;bold&lt;/b&gt;.svg</h1>", 1, true), page.body)
        assert.is_truthy(page.body:find(
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;quotes&#39;", 1, true), page.body)
        assert.is_nil(page.body:find("<script>alert", 1, true))
        assert.is_nil(page.body:find("<b>bold", 1, true))
        -- Saved under its own name, which already ends in .svg.
        assert.is_truthy(page.body:find('download="&lt;b&gt;bold&lt;/b&gt;.svg"', 1, true), page.body)
    end)

    it("saves a download under a name ending in .svg, whatever the upload was called", function()
        local res = G.upload(srv, session, {
            filename = "gallery.html",
            svg = '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 10 10"><rect width="10" height="10"/></svg>',
        })
        assert.are.equal(201, res.status, res.body)
        uploaded[#uploaded + 1] = G.json(res).id
        local page = assert_page("/image/" .. G.json(res).id)
        assert.is_truthy(page.body:find('download="gallery.html.svg"', 1, true), page.body)
    end)

    it("offers a Delete button on an image's page to its owner and administrators only", function()
        local svg = '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 10 10"><rect width="10" height="10"/></svg>'
        for _, is_public in ipairs({ true, false }) do
            local res = G.upload(srv, session, { filename = "deletable.svg", svg = svg, is_public = is_public })
            assert.are.equal(201, res.status, res.body)
            local id = G.json(res).id
            uploaded[#uploaded + 1] = id
            local button = '<button type="button" id="delete-image" class="danger" data-id="' .. id .. '">'
            for _, headers in ipairs({ session, admin }) do
                local page = assert_page("/image/" .. id, headers)
                assert.is_truthy(page.body:find(button, 1, true), page.body)
                assert.are.equal(is_public and "private, no-cache" or "private, no-store",
                    page.headers["cache-control"])
            end
            if is_public then
                for _, headers in ipairs({ other, {} }) do
                    local page = assert_page("/image/" .. id, headers)
                    assert.is_nil(page.body:find("delete-image", 1, true), page.body)
                end
            else -- nobody else sees it at all
                for _, headers in ipairs({ other, {} }) do
                    assert.are.equal(404, assert(srv:request("GET", "/image/" .. id, headers)).status)
                end
            end
        end
    end)

    it("links static files that are served, versioned and up to date", function()
        local page = assert_page("/")
        local links = 0
        for url in page.body:gmatch('"(/static/[^"]+%?v=[^"]+)"') do
            links = links + 1
            local res = assert(srv:request("GET", url))
            assert.are.equal(200, res.status, url)
            assert.are.equal("public, max-age=31536000, immutable", res.headers["cache-control"])
        end
        assert.is_true(links >= 3, "the stylesheet, the script and the icon")
        -- The precompressed copies must say what the files say.
        for _, name in ipairs({ "app.js", "app.css" }) do
            assert.are.equal(S.read_file(STATIC .. name), unzip(STATIC .. name .. ".gz"),
                name .. ".gz is stale: gzip -9 -k -f " .. name)
        end
        local sw = assert(srv:request("GET", "/sw.js"))
        assert.are.equal(200, sw.status)
        assert.matches("^text/javascript", sw.headers["content-type"])
        assert.are.equal("no-cache", sw.headers["cache-control"])
    end)

    it("has a manifest whose icons exist at their stated sizes", function()
        local res = assert(srv:request("GET", "/static/manifest.webmanifest"))
        assert.are.equal(200, res.status)
        local manifest = cjson.decode(res.body)
        assert.are.equal("/", manifest.start_url)
        assert.are.equal("/", manifest.scope)
        assert.are.equal("standalone", manifest.display)
        local purposes = {}
        for _, icon in ipairs(manifest.icons) do
            local png = assert(srv:request("GET", icon.src))
            assert.are.equal(200, png.status, icon.src)
            assert.are.equal("image/png", png.headers["content-type"])
            -- The IHDR chunk: width and height, big-endian, at bytes 17..24.
            local w1, w2, w3, w4, h1, h2, h3, h4 = png.body:byte(17, 24)
            local size = ("%dx%d"):format(((w1 * 256 + w2) * 256 + w3) * 256 + w4,
                ((h1 * 256 + h2) * 256 + h3) * 256 + h4)
            assert.are.equal(icon.sizes, size, icon.src)
            purposes[icon.purpose] = true
        end
        assert.is_true(purposes.any and purposes.maskable)
    end)

    it("works as an installable, offline-capable app in Chromium", function()
        if S.sanitized() then
            pending("the browser tests run in the plain build")
            return
        end
        os.execute("mkdir -p " .. ARTIFACTS)
        local code, out, err = S.run({ "env",
            "BASE_URL=http://127.0.0.1:" .. srv.port,
            "USERNAME=" .. user,
            "PASSWORD=" .. secret,
            "OTHER_USERNAME=" .. other_user,
            "OTHER_PASSWORD=" .. secret,
            "ARTIFACTS_DIR=" .. ARTIFACTS,
            "node", "tests/browser/pwa.mjs",
        }, { timeout = 95 })
        for id in out:gmatch('"page":"/image/(%d+)"') do -- deleted by the test, unless it failed
            uploaded[#uploaded + 1] = id
        end
        assert.are.equal(0, code, out .. err)
        assert.is_truthy(out:find('"ok":true', 1, true), out)
        for _, shot in ipairs({ "1-gallery", "2-controlled", "3-upload-form", "4-uploaded",
            "5-offline-gallery", "6-offline-page", "7-private", "8-signed-out" }) do
            assert.is_truthy(S.read_file(ARTIFACTS .. "/pwa-" .. shot .. ".png"), shot)
        end
    end)
end)
