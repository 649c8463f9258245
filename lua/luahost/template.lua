-- luahost.template: HTML templates compiled to Lua functions, escaping by
-- default.
--
--   template.load(dir[, names]) -> t
--       t.render(name, data) -> html     renders dir/<name>.html; each file is
--       compiled once and kept for the life of the Lua state (a reload makes
--       new states): the names listed at load time at once, so that a broken
--       template fails the start or the reload, others on their first
--       render. Raises "file:line: message" for a template that does not
--       compile or fails while rendering.
--   template.compile(source, chunkname) -> fn | nil, err
--       fn(data) -> html
--   template.escape(value) -> text       & < > " ' as entities; nil -> ""
--
-- Syntax:
--   {{ expr }}     the value of a Lua expression, HTML-escaped
--   {{{ expr }}}   the value unescaped: only for trusted HTML
--   {% stmt %}     Lua statements: {% for _, x in ipairs(list) do %} ... {% end %}
-- Expressions see data's fields as variables, then a few safe globals.
local concat, format, tostring, type = table.concat, string.format, tostring, type
local loadstring, setfenv, setmetatable = loadstring, setfenv, setmetatable

local M = {}

local ENTITIES = { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&quot;",
                   ["'"] = "&#39;" }

function M.escape(value)
    if value == nil then
        return ""
    end
    return (tostring(value):gsub("[&<>\"']", ENTITIES))
end

local function raw(value)
    if value == nil then
        return ""
    end
    return tostring(value)
end

-- What expressions may use besides the data: no io, os.execute, require...
local SAFE = {
    ipairs = ipairs, pairs = pairs, tostring = tostring, tonumber = tonumber, type = type,
    select = select, next = next, unpack = unpack, error = error,
    string = string, math = math, table = table, os = { date = os.date, time = os.time },
}

-- The three tags: {% code %}, {{{ raw value }}} and {{ escaped value }}.
local function appended(fn)
    return function(body)
        return "_o[#_o+1]=" .. fn .. "(" .. body .. ") "
    end
end
local TAGS = {
    ["{%"] = { open = "{%", close = "%}", code = function(body) return body .. " " end },
    ["{{{"] = { open = "{{{", close = "}}}", code = appended("_raw") },
    ["{{"] = { open = "{{", close = "}}", code = appended("_esc") },
}

-- The Lua source of a template: every piece appends to _o. %q keeps the
-- newlines of the text, so error lines match the template's.
local function translate(source)
    local out, pos = { "local _esc, _raw, _concat = ... local _o = {} " }, 1
    while true do
        local s, e, kind = source:find("{([{%%])", pos)
        if not s then
            break
        end
        if s > pos then
            out[#out + 1] = format("_o[#_o+1]=%q ", source:sub(pos, s - 1))
        end
        local tag = kind == "%" and TAGS["{%"]
            or source:sub(e + 1, e + 1) == "{" and TAGS["{{{"] or TAGS["{{"]
        local from = s + #tag.open
        local close = source:find(tag.close, from, true)
        if not close then
            return nil, "unclosed " .. tag.open
        end
        out[#out + 1] = tag.code(source:sub(from, close - 1))
        pos = close + #tag.close
    end
    out[#out + 1] = format("_o[#_o+1]=%q ", source:sub(pos))
    out[#out + 1] = "return _concat(_o)"
    return concat(out)
end

function M.compile(source, chunkname)
    local code, err = translate(source)
    if not code then
        return nil, chunkname .. ": " .. err
    end
    local chunk
    chunk, err = loadstring(code, "@" .. chunkname)
    if not chunk then
        return nil, err
    end
    return function(data)
        data = data or {}
        setfenv(chunk, setmetatable({}, {
            __index = function(_, name)
                local v = data[name]
                if v ~= nil then
                    return v
                end
                return SAFE[name]
            end,
        }))
        return chunk(M.escape, raw, concat)
    end
end

function M.load(dir, names)
    local compiled = {}
    local t = {}

    local function compiled_of(name, level)
        if type(name) ~= "string" or not name:match("^[%w_%-]+$") then
            error("template name must be letters, digits, _ or -", level)
        end
        local fn = compiled[name]
        if not fn then
            local file = dir .. "/" .. name .. ".html"
            local f, err = io.open(file, "rb")
            if not f then
                error(err, level)
            end
            local source = f:read("*a")
            f:close()
            fn, err = M.compile(source, file)
            if not fn then
                error(err, 0)
            end
            compiled[name] = fn
        end
        return fn
    end

    function t.render(name, data)
        return compiled_of(name, 3)(data)
    end

    for _, name in ipairs(names or {}) do
        compiled_of(name, 3)
    end
    return t
end

return M
