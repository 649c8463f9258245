-- luahost.template: escaping by default, raw output, statements, errors
-- with the template's line.
local template = require "luahost.template"

local function render(source, data)
    return assert(template.compile(source, "t.html"))(data)
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
        assert.is_nil(template.compile("{{ x", "u.html"))
    end)

    it("offers no dangerous globals", function()
        assert.are.equal("", render("{{ io }}{{ require }}{{ os.execute }}", {}))
    end)
end)
