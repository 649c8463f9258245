-- luahost.template: HTML templates compiled to Lua functions, escaping by
-- default.
--
--   template.load(dir[, names]) -> t
--       Compiles every template of dir: each file <name>.html, except hidden
--       ones (editors' lock files); other files and subfolders are not read.
--       Call it while the app loads (at the top of a module, as
--       lua/app/pages.lua does), so that a broken template fails the start,
--       the reload or luahost --check. Raises "file:line: message" for a
--       template that does not compile, "dir: why" for a folder it cannot
--       list, and "dir/<name>.html: no such template" for a name of names
--       (templates that must exist; none by default) that is missing.
--       t.render(name, data) -> html     renders dir/<name>.html as compiled
--       at load (a reload makes new states, which compile the files anew).
--       Raises "file:line: message" for a template that fails while
--       rendering, "dir/<name>.html: no such template" for an unknown name.
--   template.compile(source, chunkname) -> fn | nil, err
--       fn(data) -> html
--   template.escape(value) -> text       & < > " ' as entities; nil -> ""
--
-- Syntax:
--   {{ expr }}     the value of a Lua expression, HTML-escaped
--   {{{ expr }}}   the value unescaped: only for trusted HTML
--   {% stmt %}     Lua statements: {% for _, x in ipairs(list) do %} ... {% end %}
-- Expressions see data's fields as variables, then a few safe globals.
local worker = require "luahost.worker"

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
            local _, newlines = source:sub(1, s - 1):gsub("\n", "")
            return nil, "unclosed " .. tag.open, newlines + 1
        end
        out[#out + 1] = tag.code(source:sub(from, close - 1))
        pos = close + #tag.close
    end
    out[#out + 1] = format("_o[#_o+1]=%q ", source:sub(pos))
    out[#out + 1] = "return _concat(_o)"
    return concat(out)
end

function M.compile(source, chunkname)
    local code, err, line = translate(source)
    if not code then
        return nil, chunkname .. ":" .. line .. ": " .. err
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

local function compile_file(file)
    local f, err = io.open(file, "rb")
    if not f then
        error(err, 0)
    end
    local source
    source, err = f:read("*a")
    f:close()
    if not source then
        error(file .. ": " .. err, 0)
    end
    local fn
    fn, err = M.compile(source, file)
    if not fn then
        error(err, 0)
    end
    return fn
end

function M.load(dir, names)
    if type(dir) ~= "string" then
        error("bad argument #1 to 'load' (string expected, got " .. type(dir) .. ")", 2)
    end
    local files, err = worker.list_dir(dir) -- sorted: the same template reported first on every load
    if not files then
        error(err, 2)
    end
    local compiled = {}
    for _, file in ipairs(files) do
        local name = file:match("^([^.].*)%.html$")
        if name then
            compiled[name] = compile_file(dir .. "/" .. file)
        end
    end

    -- Raised at the caller of load or render.
    local function missing(name)
        error(format("%s/%s.html: no such template", dir, tostring(name)), 3)
    end
    for _, name in ipairs(names or {}) do
        if not compiled[name] then
            missing(name)
        end
    end

    local t = {}
    function t.render(name, data)
        local fn = compiled[name]
        if not fn then
            missing(name)
        end
        return fn(data)
    end
    return t
end

return M
