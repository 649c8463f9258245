-- Numbers in paths and query strings: digits only, without leading zeros, so
-- that "512.0", "0x200", "5e2" or "0512" are no aliases of 512 (each alias
-- would be a page of its own to caches, and count views of its own).
local M = {}

-- A whole number from lo to hi; default when value is absent; nil when it
-- is not such a number.
function M.whole(value, default, lo, hi)
    if value == nil or value == "" then
        return default
    end
    local n = (value == "0" or value:find("^[1-9]%d*$")) and tonumber(value)
    if not n or n < lo or n > hi then
        return nil
    end
    return n
end

-- An image id (svg_image.id, an unsigned INT) from a path parameter.
function M.image(value)
    return M.whole(value, nil, 1, 4294967295)
end

return M
