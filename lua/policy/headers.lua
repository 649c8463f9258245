-- lua/policy/headers.lua: the security headers sent with every response.
--
--   default   every response
--   svg       served SVG files: the same headers, plus caching
--   svg_private   a private image's SVG (its owner's): kept by no cache
--
-- Data, and one helper that extends the common list. Each policy is
-- { headers = { {name, value}, ... }, hsts = value }: headers go out in this order on every response; hsts (Strict-Transport-Security)
-- goes out last and only on HTTPS (directly, or behind a trusted proxy saying
-- X-Forwarded-Proto: https). The Content-Security-Policy comes from
-- lua/policy/csp.lua. A value may hold {nonce}, replaced by the response's nonce.
--
-- Follows OWASP's HTTP Headers Cheat Sheet and Secure Headers Project rather
-- than the reference design where they differ (X-XSS-Protection, HSTS preload).

-- HSTS: one year (seconds), subdomains included. No "preload": joining the
-- browsers' preload list is a deliberate, hard-to-undo step for an operator.
local HSTS = "max-age=31536000; includeSubDomains"

-- Sent with every response, in this order.
local COMMON = {
    -- Browsers must trust our Content-Type, never guess (MIME sniffing).
    { "X-Content-Type-Options", "nosniff" },
    -- No framing by anyone (clickjacking); for browsers without CSP
    -- frame-ancestors.
    { "X-Frame-Options", "DENY" },
    -- Full URL to our own origin, only the origin to others, nothing
    -- when going from HTTPS to HTTP.
    { "Referrer-Policy", "strict-origin-when-cross-origin" },
    -- Powerful browser features we never use, disabled for us and for
    -- anything we might embed.
    { "Permissions-Policy", "accelerometer=(), camera=(), geolocation=(), gyroscope=(), "
        .. "magnetometer=(), microphone=(), payment=(), usb=()" },
    -- Our windows share no browsing context group with cross-origin
    -- openers or popups (Spectre, window.opener tampering).
    { "Cross-Origin-Opener-Policy", "same-origin" },
    -- Every subresource must be same-origin or opt in (CORP/CORS):
    -- with COOP, this makes the page cross-origin isolated.
    { "Cross-Origin-Embedder-Policy", "require-corp" },
    -- Other origins may not load our responses as subresources.
    { "Cross-Origin-Resource-Policy", "same-origin" },
    -- "0" turns the legacy XSS auditor off. The reference's
    -- "1; mode=block" is obsolete: Chrome and Edge removed the auditor,
    -- Firefox never had one, and where it remains, its filtering could be
    -- abused to disable a page's legitimate scripts or to leak
    -- information across sites. The CSP protects against XSS instead.
    { "X-XSS-Protection", "0" },
}

-- COMMON followed by more headers.
local function with(...)
    local list = {}
    for i, header in ipairs(COMMON) do
        list[i] = header
    end
    for _, header in ipairs({ ... }) do
        list[#list + 1] = header
    end
    return list
end

return {
    default = { headers = COMMON, hsts = HSTS },

    svg = {
        -- Any cache may keep a public SVG 5 minutes (300 seconds), then
        -- revalidates it with its ETag (a 304 without the body): a deleted
        -- image is gone from every cache within those 5 minutes.
        headers = with({ "Cache-Control", "public, max-age=300" }),
        hsts = HSTS,
    },

    svg_private = { headers = with({ "Cache-Control", "private, no-store" }), hsts = HSTS },
}
