-- luahost.cache: the two-level cache. L1 is the process's LRU in C
-- (luahost.cache_core, shared by every worker thread), L2 is Redis; values
-- are JSON text in both. Redis failures are counted and logged, never raised:
-- the cache then works from L1 and the computation.
--
--   cache.get(key) -> value, true | nil, false
--       value may be nil with true: a cached negative result.
--   cache.set(key, value, ttl, l1_ttl) -> true | nil, err
--       ttl seconds in L2, l1_ttl (default min(60, ttl)) in L1.
--   cache.delete(key), cache.invalidate_pattern(pattern) -> true
--       Also in every other instance's L1, through a Redis channel. Patterns
--       are Redis globs. L2 keeps an index of its keys (a sorted set by
--       expiry), so a pattern costs what the cache holds, not what Redis
--       holds (the rate limiter's keys, one per client, would make a SCAN
--       of the whole keyspace take seconds).
--   cache.get_or_compute(key, ttl, fn, opts) -> value | nil, err, kind
--       fn() -> value | nil, err, kind. Concurrent misses of this process wait for
--       one computation; across instances a Redis lock elects one computer,
--       and the others wait for its value (at most opts.lock_wait seconds)
--       before computing themselves. An error (raised or returned, with its
--       kind, e.g. luahost.db's "io") reaches the caller and every caller
--       that waited for it, and is not cached; the lock is released either way.
--       opts (all optional):
--         l1_ttl        as in cache.set
--         negative_ttl  cache a nil result this long (default: not cached)
--         stale         seconds an expired L1 value may still be served
--                       while exactly one caller refreshes it
--         raw           return json.raw(text) instead of a decoded value,
--                       for res:json to send without re-encoding
--         lock_ttl      seconds the cross-instance lock lives (10)
--         lock_wait     seconds to wait for another instance (5)
--   cache.stats() -> table       per level hits, misses, rates and more
local core = require "luahost.cache_core"
local headers = require "luahost.headers"
local json = require "luahost.json"
local log = require "luahost.log"
local redis = require "luahost.redis"
local worker = require "luahost.worker"

local error, min, pcall, tostring, type, unpack = error, math.min, pcall, tostring, type, unpack
local running = coroutine.running
local time = os.time
local decode, encode, null, raw = json.decode, json.encode, json.null, json.raw

local L2_PREFIX = "cache:"
local L2_INDEX = "cache-index" -- L2's keys (without the prefix), scored by expiry
-- Counts deletions and invalidations, so that a value read or computed
-- before one is not stored in L2 after it (on any instance).
local L2_GENERATION = "cache-generation"
local LOCK_PREFIX = "cache-lock:"
local MAX_L1_TTL = 60
local LOCK_TTL = 10
local LOCK_WAIT = 5
local LOCK_POLL = 0.02
local NO_OPTS = {}
local INVALIDATED = "invalidated meanwhile" -- core.set's refusal after a deletion

-- KEYS[1] the value's key, KEYS[2] the index, KEYS[3] the generation;
-- ARGV: text, seconds, the key as indexed, its expiry (Unix seconds), the
-- generation the text was read or computed in ("": any). One round trip.
local SET_INDEXED = "if ARGV[5] ~= '' and (redis.call('GET', KEYS[3]) or '0') ~= ARGV[5] then "
    .. "return 0 end "
    .. "redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2]) "
    .. "redis.call('ZADD', KEYS[2], ARGV[4], ARGV[3]) return 1"
-- KEYS[1]: the value, its remaining milliseconds and the generation
-- (KEYS[2]), in one round trip.
local GET_WITH_TTL = "return {redis.call('GET', KEYS[1]), redis.call('PTTL', KEYS[1]), "
    .. "redis.call('GET', KEYS[2]) or '0'}"
-- KEYS[1], ARGV[1]: deletes the lock only for the owner of the token.
local UNLOCK = "if redis.call('GET', KEYS[1]) == ARGV[1] then "
    .. "return redis.call('DEL', KEYS[1]) else return 0 end"

local M = {}

local function check_key(key)
    if type(key) ~= "string" or key == "" then
        error("cache key must be a non-empty string", 3)
    end
end

local function check_ttl(ttl, what)
    if type(ttl) ~= "number" or not (ttl > 0) then
        error(what .. " must be a positive number of seconds", 3)
    end
end

-- One L2 command. Outages are logged by the Redis pool, once each; other
-- errors (a wrong type, a script error) here.
local function l2(...)
    if not redis.configured() then
        return nil, "redis is not configured"
    end
    local reply, err = redis.command(...)
    if err then
        core.count("l2_errors")
        if err ~= "redis unavailable" then
            log.warn("cache: redis " .. (...) .. ": " .. err)
        end
    end
    return reply, err
end

local function l1_ttl_of(ttl, l1_ttl)
    return l1_ttl or min(MAX_L1_TTL, ttl)
end

local function from_text(text)
    local value, err = decode(text)
    if err then
        return nil, "cache: stored value is not JSON: " .. err
    end
    if value == null then
        return nil
    end
    return value
end

local function output(text, opts)
    if opts.raw then
        return raw(text)
    end
    return from_text(text)
end

-- Stores text in both levels. With generation (core.generation() read
-- before the text was fetched or computed), stores nothing in L1 if a
-- deletion came meanwhile in this process, and with l2_generation (as
-- l2_fetch returned it) nothing in L2 if one came on any instance: the text
-- may predate the change it announced.
local function store(key, text, ttl, l1_ttl, stale, generation, l2_generation)
    local ok, err = core.set(key, text, l1_ttl_of(ttl, l1_ttl), stale or 0, generation)
    if not ok and (err == INVALIDATED or not redis.configured()) then
        return nil, err
    end
    -- Else too big for L1 (over a shard's share of cache_bytes): L2 holds it.
    local seconds = math.ceil(ttl)
    l2("EVAL", SET_INDEXED, 3, L2_PREFIX .. key, L2_INDEX, L2_GENERATION, text, seconds, key,
        os.time() + seconds, l2_generation or "")
    return true
end

local function publish(kind, what)
    return l2("PUBLISH", core.channel, core.message(kind, what))
end

-- Before anything is removed from L2: a value read or computed earlier and
-- stored after the removal would outlive it.
local function next_l2_generation()
    return l2("INCR", L2_GENERATION)
end

local SCAN_PAGE = 500 -- index entries ZSCAN looks at per call, about
local BATCH = 60 -- keys per UNLINK or ZREM: redis.command takes up to 63 arguments

-- The indexed keys matching pattern, read page by page with ZSCAN, which
-- filters in Redis with the same globs as core.match: a large index is
-- neither sent whole nor read in one command that holds Redis up. A key
-- may come twice; nil when Redis does not answer.
local function indexed_matching(pattern)
    l2("ZREMRANGEBYSCORE", L2_INDEX, "-inf", os.time() - 1) -- expired: gone from L2 already
    local keys, cursor = {}, "0"
    repeat
        local page = l2("ZSCAN", L2_INDEX, cursor, "MATCH", pattern, "COUNT", SCAN_PAGE)
        if type(page) ~= "table" then
            return nil
        end
        cursor = page[1]
        for i = 1, #page[2], 2 do -- member, score, ...
            keys[#keys + 1] = page[2][i]
        end
    until cursor == "0"
    return keys
end

-- Removes key (kind "k") or the keys matching a pattern (kind "p") from L2
-- and tells the other instances; false at the first step that does not
-- reach Redis (the whole removal is sent again later).
local function remove_from_l2(kind, what)
    if select(2, next_l2_generation()) then
        return false
    end
    local keys = { what }
    if kind == "p" then
        keys = indexed_matching(what)
        if keys == nil then
            return false
        end
    end
    local values = {}
    for i, key in ipairs(keys) do
        values[i] = L2_PREFIX .. key
    end
    for i = 1, #keys, BATCH do
        local last = min(i + BATCH - 1, #keys)
        if select(2, l2("UNLINK", unpack(values, i, last)))
            or select(2, l2("ZREM", L2_INDEX, unpack(keys, i, last))) then
            return false
        end
    end
    return select(2, publish(kind, what)) == nil
end

-- Removals that did not reach Redis (down, or slower than redis_timeout),
-- oldest first, in the worker that made them: retried by its next cache
-- call, so that a deleted value does not come back from L2 once Redis
-- answers again. Until one gets through, L1 holds a mark of it, which keeps
-- every worker of this process from reading its keys from L2.
local unsent = {}
local UNSENT_KEY = "\0unsent:"          -- an L1 mark per key
local UNSENT_PATTERNS = "\0unsent-patterns" -- the patterns, a JSON list
local UNSENT_TTL = 3600

local function unsent_patterns()
    local text = core.contains(UNSENT_PATTERNS) and core.get(UNSENT_PATTERNS)
    return text and decode(text) or {}
end

local function mark(kind, what, on)
    if kind == "k" then
        if on then
            core.set(UNSENT_KEY .. what, "1", UNSENT_TTL)
        else
            core.delete(UNSENT_KEY .. what)
        end
        return
    end
    local kept = {}
    for _, p in ipairs(unsent_patterns()) do
        if p ~= what then
            kept[#kept + 1] = p
        end
    end
    if on then
        kept[#kept + 1] = what
    end
    if kept[1] == nil then
        core.delete(UNSENT_PATTERNS)
    else
        core.set(UNSENT_PATTERNS, encode(kept), UNSENT_TTL)
    end
end

local function unsent_covers(key)
    if core.contains(UNSENT_KEY .. key) then
        return true
    end
    for _, p in ipairs(unsent_patterns()) do
        if core.match(p, key) then
            return true
        end
    end
    return false
end

local function drop_from_l1(kind, what)
    if kind == "k" then
        core.delete(what)
    else
        core.invalidate_pattern(what)
    end
end

local function retry_unsent()
    while unsent[1] ~= nil do
        local u = unsent[1]
        if not remove_from_l2(u.kind, u.what) then
            return
        end
        drop_from_l1(u.kind, u.what) -- another worker may have read L2 before the mark
        mark(u.kind, u.what, false)
        table.remove(unsent, 1)
        log.info(("cache: removal of %s %s reached redis"):format(u.kind == "k" and "key" or "pattern",
            log.quote(u.what)))
    end
end

-- From calls that need no Redis (L1 hits), at most once a second while a
-- removal waits: an instance serving from its L1 alone would otherwise keep
-- the other instances' copies until they expire.
local retry_after = 0
local function retry_if_due()
    local now = time()
    if now >= retry_after then
        retry_after = now + 1
        retry_unsent()
    end
end

local function remove(kind, what)
    drop_from_l1(kind, what)
    if not redis.configured() then
        return
    end
    retry_unsent()
    if unsent[1] ~= nil or not remove_from_l2(kind, what) then
        unsent[#unsent + 1] = { kind = kind, what = what }
        mark(kind, what, true)
        return
    end
    -- Again: another worker of this process may have read the old value
    -- from L2 between the first drop and the removal from L2, with a
    -- generation that let it store the value in L1. (This instance ignores
    -- its own invalidation message.)
    drop_from_l1(kind, what)
end

-- The L2 text of key, promoted to L1 for at most what L2 has left (unless
-- a deletion came since generation); on a miss, nil and L2's generation.
local function l2_fetch(key, l1_ttl, generation)
    if not redis.configured() then
        return nil
    end
    if unsent[1] ~= nil then
        retry_unsent()
    end
    if unsent_covers(key) then
        return nil -- removed in this process, not yet in L2
    end
    local reply = l2("EVAL", GET_WITH_TTL, 2, L2_PREFIX .. key, L2_GENERATION)
    if type(reply) ~= "table" or type(reply[1]) ~= "string" then
        if reply then
            core.count("l2_misses")
        end
        return nil, type(reply) == "table" and reply[3] or nil
    end
    core.count("l2_hits")
    local left = (reply[2] or 0) / 1000
    if left > 0 then
        core.set(key, reply[1], min(l1_ttl or MAX_L1_TTL, left), 0, generation)
    end
    return reply[1]
end

function M.get(key)
    check_key(key)
    if unsent[1] ~= nil then
        retry_if_due()
    end
    local text = core.get(key, false) or l2_fetch(key, nil, core.generation())
    if text == nil then
        return nil, false
    end
    return from_text(text), true
end

function M.set(key, value, ttl, l1_ttl)
    check_key(key)
    check_ttl(ttl, "ttl")
    if l1_ttl ~= nil then
        check_ttl(l1_ttl, "l1_ttl")
    end
    return store(key, encode(value), ttl, l1_ttl)
end

function M.delete(key)
    check_key(key)
    remove("k", key)
    return true
end

function M.invalidate_pattern(pattern)
    check_key(pattern)
    remove("p", pattern)
    return true
end

-- -- Computing ------------------------------------------------------------------

-- true: this caller holds the lock; false: another instance does; nil: no
-- Redis, every instance is on its own.
local function lock(key, token, opts)
    local reply, err = l2("SET", LOCK_PREFIX .. key, token, "NX", "PX",
        math.floor((opts.lock_ttl or LOCK_TTL) * 1000))
    if err then
        return nil
    end
    return reply == "OK"
end

local function unlock(key, token)
    l2("EVAL", UNLOCK, 1, LOCK_PREFIX .. key, token)
end

-- Waits for the instance holding the lock to store the value. Returns the
-- text; or nil, true, L2's generation when the lock came free without a
-- value (the holder's computation failed, or what it computed predated a
-- deletion and was not stored), in which case this caller now holds the
-- lock; or nil after the wait's limit.
local function wait_for_other(key, token, opts, generation)
    core.count("lock_waits")
    local waited, limit = 0, opts.lock_wait or min(LOCK_WAIT, opts.lock_ttl or LOCK_TTL)
    while waited < limit do
        worker.sleep(LOCK_POLL)
        waited = waited + LOCK_POLL
        local text, l2_generation = l2_fetch(key, opts.l1_ttl, generation)
        if text then
            return text
        end
        if lock(key, token, opts) then
            return nil, true, l2_generation
        end
    end
    log.warn(("cache: no value for %s from the instance holding its lock after %gs; "
        .. "computing it here"):format(key, limit))
end

-- The computation. Returns the text to store and its ttl (nil: do not
-- store), or nil, nil, err, kind.
local function compute(ttl, fn, opts)
    core.count("computations")
    local value, err, kind = fn()
    if value == nil then
        if err ~= nil then
            return nil, nil, tostring(err), kind
        end
        return "null", opts.negative_ttl
    end
    return encode(value), ttl
end

-- L2, else the lock and the computation. Returns text | nil, err, kind.
local function fill(key, ttl, fn, opts)
    local generation = core.generation()
    local text, l2_generation = l2_fetch(key, opts.l1_ttl, generation)
    if text then
        return text
    end
    local token = headers.nonce()
    local locked = lock(key, token, opts)
    if locked == false then
        local taken_over, newer
        text, taken_over, newer = wait_for_other(key, token, opts, generation)
        if text then
            return text
        end
        if taken_over then -- what is computed from here on is read after every deletion so far
            locked, generation, l2_generation = true, core.generation(), newer
        end
    end
    local ok, store_ttl, err, kind
    ok, text, store_ttl, err, kind = pcall(compute, ttl, fn, opts)
    if ok and store_ttl then
        -- Stored before the lock is released, so that its waiters find it.
        store(key, text, store_ttl, opts.l1_ttl and min(opts.l1_ttl, store_ttl), opts.stale,
            generation, l2_generation)
    end
    if locked then
        unlock(key, token)
    end
    if not ok then
        error(text, 0)
    end
    if text == nil then
        return nil, err, kind
    end
    return text
end

-- key -> the coroutine computing it in this worker: its computation asking
-- for the key again would wait for itself.
local computing = {}

local function lead(leader, key, ttl, fn, opts)
    local outer = computing[key]
    computing[key] = running()
    local ok, text, err, kind = pcall(fill, key, ttl, fn, opts)
    computing[key] = outer
    if not ok then
        leader:finish(tostring(text))
        error(text, 0)
    end
    leader:finish(err, text, kind)
    if text == nil then
        return nil, err, kind
    end
    return output(text, opts)
end

-- get_or_compute's options: what each must be. A bad one raises before any
-- lock is taken; each options table is checked once (they are usually
-- constants of a module).
local OPTIONS = {
    l1_ttl = "positive", negative_ttl = "positive", stale = "non-negative", raw = "boolean",
    lock_ttl = "positive", lock_wait = "positive",
}
local OPTION_NAMES = "l1_ttl, negative_ttl, stale, raw, lock_ttl, lock_wait"
local checked_opts = setmetatable({}, { __mode = "k" })

local function check_opts(opts)
    if type(opts) ~= "table" then
        error("cache.get_or_compute: opts must be a table", 3)
    end
    for name, value in pairs(opts) do
        local want = OPTIONS[name]
        local fits = want == "boolean" and type(value) == "boolean"
            or type(value) == "number" and (want == "positive" and value > 0
                or want == "non-negative" and value >= 0)
        if want == nil then
            error(("cache.get_or_compute: unknown option %s (%s)"):format(tostring(name), OPTION_NAMES), 3)
        elseif not fits then
            error(("cache.get_or_compute: option %s must be %s, got %s"):format(name,
                want == "boolean" and "true or false" or "a " .. want .. " number of seconds",
                tostring(value)), 3)
        end
    end
    checked_opts[opts] = true
end

function M.get_or_compute(key, ttl, fn, opts)
    check_key(key)
    check_ttl(ttl, "ttl")
    if type(fn) ~= "function" then
        error("cache.get_or_compute wants a function", 2)
    end
    opts = opts or NO_OPTS
    if not checked_opts[opts] then
        check_opts(opts)
    end
    if unsent[1] ~= nil then
        retry_if_due()
    end
    local text, state = core.get(key, opts.stale ~= nil)
    if state == "fresh" then
        return output(text, opts)
    end
    if computing[key] ~= nil and computing[key] == running() then
        error(("cache.get_or_compute: the computation of %q asks for %q again, and would wait "
            .. "for itself"):format(key, key), 2)
    end
    local leader, err, shared, kind = core.flight(key, state == nil)
    if leader then
        return lead(leader, key, ttl, fn, opts)
    end
    if state == "stale" then -- someone refreshes it: serve the old value meanwhile
        core.count("stale_served")
        return output(text, opts)
    end
    if shared == nil then
        return nil, err, kind
    end
    return output(shared, opts)
end

local function rate(hits, misses)
    local total = hits + misses
    return total > 0 and hits / total or 0
end

function M.stats()
    local s = core.stats()
    return {
        l1 = {
            hits = s.l1_hits, misses = s.l1_misses, stale_hits = s.l1_stale_hits,
            hit_rate = rate(s.l1_hits, s.l1_misses),
            entries = s.l1_entries, bytes = s.l1_bytes,
            max_entries = s.l1_max_entries, max_bytes = s.l1_max_bytes,
            evictions = s.l1_evictions, expirations = s.l1_expirations,
        },
        l2 = {
            hits = s.l2_hits, misses = s.l2_misses, errors = s.l2_errors,
            hit_rate = rate(s.l2_hits, s.l2_misses),
            available = redis.available(),
        },
        computations = s.computations,
        flight_waits = s.flight_waits,
        lock_waits = s.lock_waits,
        stale_served = s.stale_served,
        invalidations_received = s.invalidations_received,
    }
end

return M
