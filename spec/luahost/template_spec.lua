-- luahost.template: escaping by default, raw output, statements, errors
-- with the template's line; template.load compiles a whole folder at once.
local template = require "luahost.template"

local function render(source, data)
    return assert(template.compile(source, "t.html"))(data)
end

local function make_dir()
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p '" .. dir .. "'"))
    return dir
end

local function write(path, text)
    local f = assert(io.open(path, "w"))
    f:write(text)
    f:close()
end

-- The error template.load(dir, names) raises, as a string.
local function load_error(dir, names)
    local ok, err = pcall(template.load, dir, names)
    assert.is_false(ok, "template.load should have raised")
    return tostring(err)
end

describe("luahost.template", function()
    it("escapes expressions by default", function()
        assert.are.equal("<p>&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;</p>",
            render("<p>{{ s }} &amp; {{ q }}</p>", { s = '<script>alert("x")</script>', q = "'" }))
        assert.are.equal("[]", render("[{{ missing }}]", {}))
    end)

    it("inserts trusted HTML unescaped with triple braces", function()
        assert.are.equal("<b>x</b>", render("{{{ html }}}", { html = "<b>x</b>" }))
    end)

    it("runs statements: loops and conditions", function()
        local out = render("{% for i, x in ipairs(list) do %}{{ i }}={{ x }};{% end %}"
            .. "{% if flag then %}yes{% else %}no{% end %}", { list = { "a", "<" }, flag = false })
        assert.are.equal("1=a;2=&lt;;no", out)
    end)

    it("keeps text, newlines and quotes intact", function()
        local src = 'line "1"\n\\n {x}\n{{ n + 1 }}\n'
        assert.are.equal('line "1"\n\\n {x}\n3\n', render(src, { n = 2 }))
    end)

    it("reports compile and runtime errors with the template's line", function()
        local fn, err = template.compile("a\nb\n{{ 1 + }}\n", "page.html")
        assert.is_nil(fn)
        assert.matches("page.html:3:", err)
        local ok, why = pcall(render, "a\n\n{{ nothing.field }}", {})
        assert.is_false(ok)
        assert.matches("t.html:3:", why)
        fn, err = template.compile("a\n<p>{{ x", "u.html")
        assert.is_nil(fn)
        assert.are.equal("u.html:2: unclosed {{", err)
    end)

    it("offers no dangerous globals", function()
        assert.are.equal("", render("{{ io }}{{ require }}{{ os.execute }}", {}))
    end)

    describe("load", function()
        local dir

        before_each(function()
            dir = make_dir()
        end)

        after_each(function()
            os.execute("rm -rf '" .. dir .. "'")
        end)

        it("compiles every .html file of the folder, listed or not, naming a broken one's line", function()
            write(dir .. "/page.html", "<p>{{ who }}</p>")
            write(dir .. "/unlisted.html", "<h1>\n{% if x then %}\n{{ 1 + }}\n{% end %}\n")
            local err = load_error(dir, { "page" })
            assert.are.equal(dir .. "/unlisted.html:3: unexpected symbol near ')'", err)

            -- Not templates: other extensions, hidden files (an editor's lock,
            -- a dangling link) and subfolders.
            write(dir .. "/unlisted.html", "<h1>{{ title }}</h1>")
            write(dir .. "/notes.txt", "{{ 1 + }}")
            write(dir .. "/page.html.bak", "{{ 1 + }}")
            assert(os.execute("ln -s '" .. dir .. "/gone' '" .. dir .. "/.#page.html'"))
            assert(os.execute("mkdir '" .. dir .. "/parts'"))
            write(dir .. "/parts/broken.html", "{{ 1 + }}")
            local t = template.load(dir)
            assert.are.equal("<p>&lt;b&gt;</p>", t.render("page", { who = "<b>" }))
            assert.are.equal("<h1>Hi</h1>", t.render("unlisted", { title = "Hi" }))

            -- Rendering uses what load compiled: an edit takes a new load.
            os.remove(dir .. "/page.html")
            assert.are.equal("<p>x</p>", t.render("page", { who = "x" }))
        end)

        it("raises for an unknown name, a missing listed name, a missing folder or no folder", function()
            write(dir .. "/page.html", "<p></p>")
            local t = template.load(dir)
            -- Raised where render is called, naming the file it looked for.
            local ok, err = pcall(function() t.render("notes", {}) end)
            assert.is_false(ok)
            assert.matches("template_spec.lua:%d+: " .. dir:gsub("%p", "%%%0") .. "/notes.html: no such template$",
                err)
            ok, err = pcall(t.render, "parts/page", {})
            assert.is_false(ok)
            assert.matches("/parts/page.html: no such template", err, 1, true)

            assert.matches("/missing.html: no such template", load_error(dir, { "page", "missing" }), 1, true)
            assert.matches(dir .. "/nowhere: No such file or directory", load_error(dir .. "/nowhere"), 1, true)
            assert.matches("bad argument #1 to 'load' (string expected, got nil)", load_error(nil), 1, true)
        end)
    end)
end)
