-- Rate limits, in Flask-Limiter's notation: "N per second|minute|hour|day",
-- "N/minute", "N per M minutes", several separated by ';'. Every limit slides
-- (the previous window's count weighs in as it ages) and is shared through
-- Redis by every luahost instance; when Redis is down each instance limits
-- on its own until it is back.
return {
    -- Per client fingerprint (HMAC of address, for IPv6 its /64, User-Agent,
    -- Accept-Language and X-Forwarded-For; key "rl:<fingerprint>"), on every
    -- route together.
    default = "2000 per day; 500 per hour",

    -- Per client address ("rl:ip:<address>", for IPv6 "rl:ip:<its /64>"),
    -- whatever headers the client sends: rotating User-Agent or
    -- Accept-Language, or addresses within one's /64, buys no fresh bucket.
    -- Several people behind one NAT share it, so it sits above `default`.
    per_ip = "10000 per day; 2000 per hour",

    -- Optional. Per IPv6 network ("rl:net:<network>", e.g.
    -- "rl:net:2001:db8:1::/48"): a subscriber given a /56 or a /48 holds 256
    -- or 65536 /64s, each with a per_ip bucket of its own; this counts them
    -- all in one. ipv6_prefix: the network's length in bits, 32 to 64
    -- (default 48); limit: as per_ip, above it, since a network may be a
    -- whole company. IPv4 clients have only per_ip. Leave it out for none.
    per_network = { ipv6_prefix = 48, limit = "40000 per day; 8000 per hour" },

    -- Per route, by the key used in routes.lua: false exempts the route,
    -- "per_ip" leaves it only the address ceilings, per_ip and per_network
    -- (no per-fingerprint limit, no bot counting), a limit string replaces
    -- `default` for it (counted for that route alone).
    routes = {
        ["GET /health"] = false,
        -- Public images: a gallery page shows twelve at once, which would make
        -- every visitor who turns a few pages look like a bot; but each cache
        -- miss is a database query, so one address still meets the ceiling.
        ["GET /svg/:id.svg"] = "per_ip",
        -- Monitoring: Prometheus scrapes and dashboards poll, so no
        -- per-fingerprint limit; but each request with a session cookie
        -- costs a database lookup before access is known (metrics_allow,
        -- administrators), so one address still meets the ceiling.
        ["GET /metrics"] = "per_ip",
        ["GET /monitor/stream"] = "per_ip",
        ["GET /monitor/assets/:name"] = false,
    },

    -- Client addresses (CIDRs) that are never limited, e.g. monitoring hosts.
    exempt = {},
}
