-- lua/policy/csp.lua: the Content-Security-Policy directive tables.
--
--   default      every HTML page and API answer
--   svg          served SVG files (stricter: an SVG runs no script at all)
--   svg_private  a private image's SVG: the same directives
--   report_uri   where browsers POST violation reports ("report-uri" directive)
--
-- Data only: an ordered array of { directive, { sources... } } pairs, compiled
-- once per load by require("luahost.headers").compile{ csp = ... }. Order is
-- kept in the header. The source "'nonce'" becomes 'nonce-<fresh nonce>' on
-- every response; the same nonce is given to the templates for their inline
-- <script nonce=...> and <style nonce=...> elements.
--
-- Unlike the reference design, luahost serves every script, style and font
-- itself: no CDN (jsdelivr, cdnjs, quilljs) and no Google Fonts host is
-- allowed, and styles need a nonce instead of 'unsafe-inline'.

-- Served SVG files.
local SVG = {
    -- Nothing at all by default: no script, no fetch, no frames.
    { "default-src", { "'none'" } },
    -- Generated SVGs style themselves: <style> elements and style="" attributes.
    { "style-src", { "'unsafe-inline'" } },
    -- Embedded bitmaps as data: URIs only.
    { "img-src", { "data:" } },
    -- Opened on its own, the file gets a unique origin and no scripts:
    -- a second wall behind the upload checker.
    { "sandbox", {} },
}

return {
    default = {
        -- Fallback for every fetch directive not listed here (media, manifest,
        -- worker, frame...): our own origin only. Covers the PWA's manifest and
        -- service worker.
        { "default-src", { "'self'" } },
        -- Scripts: our files, plus inline scripts carrying this response's nonce.
        { "script-src", { "'self'", "'nonce'" } },
        -- Stylesheets and <style nonce> elements; style="" attributes stay blocked.
        { "style-src", { "'self'", "'nonce'" } },
        -- Images: ours, and data: URIs (inline thumbnails, icons).
        { "img-src", { "'self'", "data:" } },
        -- Fonts: ours only.
        { "font-src", { "'self'" } },
        -- fetch, XHR, WebSocket and EventSource: our API only.
        { "connect-src", { "'self'" } },
        -- No <object>/<embed> plug-ins at all.
        { "object-src", { "'none'" } },
        -- Nobody may frame our pages (the CSP form of X-Frame-Options: DENY).
        { "frame-ancestors", { "'none'" } },
        -- An injected <base href> cannot redirect relative script URLs elsewhere.
        { "base-uri", { "'self'" } },
        -- Forms submit to us only.
        { "form-action", { "'self'" } },
        -- Browsers fetch every subresource over https://, relative URLs
        -- included, except on loopback (127.0.0.1, localhost). Production
        -- serves HTTPS (TLS in front); to try the pages over plain HTTP from
        -- another host, remove this line.
        { "upgrade-insecure-requests", {} },
    },


    svg = SVG,
    svg_private = SVG,

    -- Path of the endpoint receiving CSP violation reports (JSON POSTs);
    -- appended to a policy as "report-uri /csp-report". nil: no reports.
    report_uri = "/csp-report",
}
