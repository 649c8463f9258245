-- luahost.svg: svg.check(text) -> true | nil, why
local svg = require "luahost.svg"

local NS = 'xmlns="http://www.w3.org/2000/svg"'
local XL = 'xmlns:xlink="http://www.w3.org/1999/xlink"'

describe("luahost.svg", function()
    it("returns true for a plain image", function()
        assert.is_true(svg.check('<svg ' .. NS .. ' viewBox="0 0 10 10"><circle cx="5" cy="5" r="4"/></svg>'))
    end)

    it("accepts the seed images", function()
        assert.is_true(svg.check('<svg ' .. NS .. ' viewBox="0 0 100 100" width="100" height="100">'
            .. '<rect width="100" height="100" fill="hsl(37,30%,92%)"/>'
            .. '<circle cx="50" cy="50" r="12" fill="hsl(106,70%,45%)"/></svg>'))
    end)

    it("accepts gradients, url(#id) fills, local use and a declaration", function()
        assert.is_true(svg.check('<?xml version="1.0" encoding="utf-8"?>\n<!-- logo -->\n'
            .. '<svg ' .. NS .. '><defs><linearGradient id="g"><stop offset="0"/></linearGradient>'
            .. '<path id="p" d="M0 0h4"/></defs><use href="#p" fill="url(#g)"/>'
            .. '<text style="fill:url(#g)">Hi &amp; bye</text></svg>'))
    end)

    it("returns nil and the reason for scripts and event handlers", function()
        local ok, why = svg.check("<svg><script>alert(1)</script></svg>")
        assert.is_nil(ok)
        assert.are.equal("script element", why)
        assert.are.same({ nil, "event handler attribute onload" }, { svg.check("<svg onload=alert(1)>") })
        assert.are.same({ nil, "event handler attribute onload" }, { svg.check("<svg/OnLoad=alert(1)>") })
    end)

    it("sees through character references and whitespace in URLs", function()
        assert.are.same({ nil, "javascript: URL in href" },
            { svg.check('<svg><use href=" jav&#x09;ascript:alert(1)"/></svg>') })
        assert.are.same({ nil, "javascript: URL in xlink:href" },
            { svg.check('<svg ' .. XL .. '><use xlink:href="&#106;avascript:alert(1)"/></svg>') })
    end)

    it("refuses external references, DOCTYPE, CDATA and foreign elements", function()
        assert.are.same({ nil, "external reference in href" },
            { svg.check('<svg><use href="http://evil/x.svg#a"/></svg>') })
        assert.are.same({ nil, "DOCTYPE or entity" },
            { svg.check('<!DOCTYPE svg [<!ENTITY x "y">]><svg>&x;</svg>') })
        assert.are.same({ nil, "CDATA section" }, { svg.check("<svg><![CDATA[x]]></svg>") })
        assert.are.same({ nil, "element iframe not allowed" }, { svg.check("<svg><iframe></iframe></svg>") })
        assert.are.same({ nil, "style with url(" },
            { svg.check("<svg><style>@import url(http://evil)</style></svg>") })
    end)

    it("refuses what is not an SVG document", function()
        assert.are.same({ nil, "not an SVG document" }, { svg.check("") })
        assert.are.same({ nil, "not an SVG document" }, { svg.check("<html></html>") })
        assert.are.same({ nil, "malformed markup at byte 5" }, { svg.check("<svg>&amp</svg>") })
        assert.are.same({ nil, "invalid UTF-8 at byte 5" }, { svg.check("<svg>\255</svg>") })
    end)

    it("accepts dvisvgm's fonts, CDATA style, DOCTYPE and fragment links", function()
        assert.is_true(svg.check("<?xml version='1.0' encoding='UTF-8'?>\n"
            .. '<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" '
            .. '"http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd">\n'
            .. '<svg ' .. NS .. ' ' .. XL .. "><style type='text/css'>\n"
            .. '<![CDATA[text.f0 {font-family:cmr10;font-size:9.96px}]]>\n</style>'
            .. "<defs><font id='cmr10' horiz-adv-x='0'><font-face font-family='cmr10' "
            .. "units-per-em='1000' ascent='750' descent='250'/><missing-glyph/>"
            .. "<glyph unicode='a' horiz-adv-x='500' d='M0 0L1 1Z'/></font></defs>"
            .. "<a xlink:href='#p'><text class='f0' x='1' y='2'>a</text></a></svg>"))
    end)

    it("accepts Inkscape's metadata namespaces", function()
        assert.is_true(svg.check('<svg ' .. NS
            .. ' xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"'
            .. ' xmlns:dc="http://purl.org/dc/elements/1.1/"'
            .. ' xmlns:inkscape="http://www.inkscape.org/namespaces/inkscape">'
            .. '<metadata><rdf:RDF><dc:title>x</dc:title></rdf:RDF></metadata>'
            .. '<g inkscape:label="Layer 1" inkscape:groupmode="layer"/></svg>'))
    end)

    it("refuses what a browser would not show, and other namespaces", function()
        assert.are.same({ nil, "root element must be svg in the SVG namespace" },
            { svg.check("<svg><rect/></svg>") })
        assert.are.same({ nil, "undeclared namespace prefix xlink" },
            { svg.check('<svg ' .. NS .. '><use xlink:href="#p"/></svg>') })
        assert.are.same({ nil, "attribute xmlns:html not allowed" },
            { svg.check('<svg ' .. NS .. ' xmlns:html="http://www.w3.org/1999/xhtml">'
                .. '<html:script>alert(1)</html:script></svg>') })
        assert.are.same({ nil, "style with @import" },
            { svg.check('<svg ' .. NS .. '><style>@im<![CDATA[port "x.css";]]></style></svg>') })
        assert.are.same({ nil, "external reference in href" },
            { svg.check('<svg ' .. NS .. '><a href="page.html"/></svg>') })
    end)

    it("refuses more than 256 KiB", function()
        local big = "<svg>" .. string.rep(" ", 256 * 1024) .. "</svg>"
        assert.are.same({ nil, "larger than 256 KiB" }, { svg.check(big) })
    end)

    it("raises when the argument is not a string", function()
        assert.has_error(function() svg.check() end)
        assert.has_error(function() svg.check({}) end)
    end)
end)
