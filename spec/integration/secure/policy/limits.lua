-- Test limits of spec/integration/security*_spec.lua: numbers a spec reaches
-- in a few requests. The specs copy this directory and edit this file for
-- variants (a higher per_ip for the bot check, reloads).
return {
    -- Per fingerprint, on every route without an override.
    default = "5 per minute",

    -- Per client address, on every limited route (overrides included).
    per_ip = "20 per minute",

    routes = {
        -- Replaces `default` for this route, counted for it alone.
        ["GET /strict"] = "2 per minute",
        -- So high that only per_ip or the bot check refuse it.
        ["GET /counted"] = "1000 per minute",
        -- Only per_ip: no per-fingerprint limit, no bot counting.
        ["GET /per-ip"] = "per_ip",
        -- Exempt: no limits, no bot counting.
        ["GET /health"] = false,
        ["GET /nonce"] = false,
        ["GET /svg"] = false,
        ["GET /svg-route"] = false,
        ["GET /boom"] = false,
    },

    exempt = {},
}
