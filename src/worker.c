/* src/worker.c: Lua VMs per HTTP thread, requests as coroutines, reload.
 *
 * DESIGN
 * ------
 * Each HTTP thread claims one struct lh_worker and is the only thread that
 * touches it and its VMs afterwards, so the request path takes no lock.
 *
 * Reload runs on the main thread: it loads a complete new VM per worker and,
 * only if all of them load, publishes each through the worker's atomic `next`
 * slot. The worker's thread adopts `next` when it starts its next request;
 * its old VM is freed as soon as no call runs on it. A VM published but never
 * adopted (two reloads between requests) is freed by the reload that replaces
 * it: the atomic exchange guarantees that exactly one side owns it.
 *
 * A call is a coroutine running the application's dispatch function. When a
 * binding calls lh_worker_await, the coroutine yields; the transport suspends
 * the connection and calls lh_call_wait, which submits the task. The task's
 * done() calls the transport's wake(), and the transport calls
 * lh_call_resume on the call's own thread. Finished coroutines are kept for
 * reuse (up to IDLE_COROUTINES per VM); a coroutine that failed is dropped.
 */
#include "luahost/worker.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <lauxlib.h>
#include <lua.h>
#include <luajit.h>
#include <lualib.h>

#include "lua_modules.h"
#include "luahost/headers.h"
#include "luahost/json.h"
#include "luahost/log.h"
#include "luahost/metrics.h"
#include "luahost/monitor.h"

#define IDLE_COROUTINES 256
#define HOST_KEY "luahost.host"
#define SERVER_ERROR_BODY "{\"success\":false,\"message\":\"Server error\"}"
/* A call keeps its JSON buffer for the next request up to this size. */
#define JSON_BUFFER_KEPT (64 * 1024)

struct vm {
    lua_State *L;
    int dispatch_ref;
    int json_encode_ref; /* lh_json_lua_encode_into, for res:json's values */
    const struct lh_header_set *default_headers; /* anchored in the registry */
    unsigned inflight; /* calls started and not released */
    unsigned nidle;
    lua_State *idle[IDLE_COROUTINES];
    int idle_refs[IDLE_COROUTINES];
    struct vm *next_retired;
};

struct lh_call {
    struct lh_worker *w;
    struct vm *vm;
    lua_State *co;
    int co_ref;
    int failed; /* the coroutine died: drop it */
    int route;  /* metrics route id, set by the dispatcher (lh_worker_set_route) */
    const struct lh_request *req;
    struct lh_async *pending;
    void (*wake)(void *arg);
    void *wake_arg;
    struct lh_call *next_free;
    struct lh_json_buf json; /* res:json's body, sent from here; kept across calls */
};

/* Its HTTP thread writes free_calls on every request. */
struct lh_worker {
    _Alignas(LH_CACHE_LINE) struct lh_workers *ws;
    struct vm *vm;
    _Atomic(struct vm *) next;
    struct vm *retired;
    struct lh_call *free_calls;
};

struct lh_workers {
    const struct lh_host *host;
    char *app;
    char *lua_path;
    char *policy_dir;
    struct lh_task_pool *tasks;
    struct lh_task_pool *cpu_tasks;
    double load_timeout;
    unsigned count;
    atomic_uint claimed;
    atomic_int stopping;
    struct lh_worker *workers;
};

static _Thread_local struct lh_call *current_call;

#define DEFAULT_LOAD_TIMEOUT 10.0

/* How long the load on this thread was given, for the hook's message. */
static _Thread_local double load_seconds;

/* Installed on a loading VM when its time is up. It raises at every
 * instruction, so that a script's pcall cannot swallow the error and go on
 * looping: the first instruction after the pcall raises again, until the
 * error reaches the load's own lua_pcall. */
static void load_hook(lua_State *L, lua_Debug *ar)
{
    lua_getinfo(L, "Sl", ar); /* where the script was when time ran out */
    lua_pushfstring(L, "%s:%d: still loading after %d s (load_timeout): an endless loop?",
                    ar->short_src, ar->currentline, (int)load_seconds);
    lua_error(L);
}

/* A thread that installs load_hook when a load's time is up. A clock read
 * every so many instructions would come late after slow C calls (a gsub of
 * a megabyte per loop pass); lua_sethook may be called from another thread,
 * as LuaJIT's own Ctrl-C handler does. */
struct load_watch {
    lua_State *L;
    double deadline;
    int done;
    pthread_mutex_t lock;
    pthread_cond_t cond;
};

static void *watch_load(void *arg)
{
    struct load_watch *w = arg;
    struct timespec until = lh_timespec_of(w->deadline);

    pthread_mutex_lock(&w->lock);
    while (!w->done && pthread_cond_timedwait(&w->cond, &w->lock, &until) != ETIMEDOUT)
        ;
    if (!w->done) /* under the lock: the load cannot end and clear the hook meanwhile */
        lua_sethook(w->L, load_hook, LUA_MASKCOUNT, 1);
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

/* Calls the function below its nargs arguments on L (error handler at 1)
 * with the load deadline in force. The JIT is off meanwhile: compiled code
 * does not run hooks, and a script's top level runs once anyway. It is on
 * afterwards, whatever the scripts did (a jit.off() at load is not kept).
 * Without a watcher thread (none could start), the load has no deadline. */
static int pcall_loading(const struct lh_workers *ws, lua_State *L, int nargs, int nresults)
{
    struct load_watch w = {.L = L, .deadline = lh_monotonic_seconds() + ws->load_timeout};
    pthread_condattr_t attr;
    pthread_t watcher;

    load_seconds = ws->load_timeout;
    pthread_mutex_init(&w.lock, NULL);
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&w.cond, &attr);
    pthread_condattr_destroy(&attr);
    int watching = pthread_create(&watcher, NULL, watch_load, &w) == 0;
    luaJIT_setmode(L, 0, LUAJIT_MODE_ENGINE | LUAJIT_MODE_OFF);
    int status = lua_pcall(L, nargs, nresults, 1);
    pthread_mutex_lock(&w.lock);
    w.done = 1;
    pthread_cond_signal(&w.cond);
    pthread_mutex_unlock(&w.lock);
    if (watching)
        pthread_join(watcher, NULL);
    lua_sethook(L, NULL, 0, 0);
    luaJIT_setmode(L, 0, LUAJIT_MODE_ENGINE | LUAJIT_MODE_ON);
    pthread_cond_destroy(&w.cond);
    pthread_mutex_destroy(&w.lock);
    return status;
}

/* -- VMs --------------------------------------------------------------------- */

static void vm_free(struct vm *vm)
{
    if (vm == NULL)
        return;
    lua_close(vm->L);
    free(vm);
}

/* Pushes onto L the text of the error value on top of co (left there): a
 * string, what its __tostring returns (called protected), or what kind of
 * value it is (error({...})). */
static const char *push_error_text(lua_State *L, lua_State *co, size_t *len)
{
    lua_pushvalue(co, -1);
    lua_xmove(co, L, 1);
    if (lua_isstring(L, -1))
        return lua_tolstring(L, -1, len);
    const char *kind = luaL_typename(L, -1);
    if (luaL_getmetafield(L, -1, "__tostring")) {
        lua_pushvalue(L, -2);
        if (lua_pcall(L, 1, 1, 0) == 0 && lua_type(L, -1) == LUA_TSTRING) {
            lua_replace(L, -2);
            return lua_tolstring(L, -1, len);
        }
        lua_pop(L, 1); /* its error, or what it returned */
    }
    lua_pushfstring(L, "(error object is a %s value)", kind);
    lua_replace(L, -2);
    return lua_tolstring(L, -1, len);
}

static int traceback(lua_State *L)
{
    luaL_traceback(L, L, push_error_text(L, L, NULL), 1);
    return 1;
}

/* Pushes require(name), or the error with its traceback (the traceback
 * handler is at index 1); the status of the call. */
static int require_module(lua_State *L, const char *name)
{
    lua_getglobal(L, "require");
    lua_pushstring(L, name);
    return lua_pcall(L, 1, 1, 1);
}

/* Loads the application into a new VM; NULL and the script error in err. */
/* first: this VM is the first worker's, which logs the load's warnings. */
static struct vm *vm_new(const struct lh_workers *ws, int first, char *err, size_t errlen)
{
    struct vm *vm = calloc(1, sizeof(*vm));

    if (vm != NULL)
        vm->L = luaL_newstate();
    if (vm == NULL || vm->L == NULL) {
        free(vm);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    lua_State *L = vm->L;
    luaL_openlibs(L);
    lh_lua_modules_preload(L);
    lua_pushlightuserdata(L, (void *)ws->host);
    lua_setfield(L, LUA_REGISTRYINDEX, HOST_KEY);

    lua_pushcfunction(L, traceback);
    if (require_module(L, "luahost.app") != 0)
        goto fail;
    lua_getfield(L, -1, "start");
    lua_pushstring(L, ws->app);
    lua_pushstring(L, ws->lua_path);
    lua_pushstring(L, ws->policy_dir);
    lua_pushboolean(L, first);
    if (pcall_loading(ws, L, 4, 2) != 0)
        goto fail;
    vm->default_headers = lh_headers_check_set(L, -1);
    luaL_ref(L, LUA_REGISTRYINDEX); /* keeps the set alive as long as the VM */
    vm->dispatch_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pushcfunction(L, lh_json_lua_encode_into);
    vm->json_encode_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_settop(L, 0);
    return vm;

fail : {
    /* The first line reads "file:line: message"; the rest is the traceback. */
    const char *msg = lua_tostring(L, -1); /* traceback() makes errors strings */
    const char *nl = msg ? strstr(msg, "\nstack traceback:") : NULL;
    int len = nl ? (int)(nl - msg) : (int)(msg ? strlen(msg) : 0);
    snprintf(err, errlen, "%.*s", len, msg ? msg : "(error object is not a string)");
    if (msg && nl)
        lh_log(LH_LOG_DEBUG, NULL, "%s", msg);
    vm_free(vm);
    return NULL;
}
}

/* Frees a retired VM once its last call is released. */
static void vm_retire(struct lh_worker *w, struct vm *vm)
{
    if (vm->inflight == 0) {
        vm_free(vm);
        return;
    }
    vm->next_retired = w->retired;
    w->retired = vm;
}

static void vm_release_retired(struct lh_worker *w, struct vm *vm)
{
    for (struct vm **p = &w->retired; *p; p = &(*p)->next_retired) {
        if (*p == vm) {
            *p = vm->next_retired;
            vm_free(vm);
            return;
        }
    }
}

/* -- Workers ----------------------------------------------------------------- */

/* Each state's load stages the alert rules (luahost.monitoring); they go
 * into force only when every state loaded, so a failed reload changes
 * nothing. */
static void settle_rules(const struct lh_workers *ws, int loaded)
{
    struct lh_monitor *mon = ws->host ? ws->host->monitor : NULL;
    if (loaded)
        lh_monitor_commit_rules(mon);
    else
        lh_monitor_discard_rules(mon);
}

struct lh_workers *lh_workers_new(const struct lh_workers_options *o, char *err, size_t errlen)
{
    struct lh_workers *ws = calloc(1, sizeof(*ws));

    if (ws == NULL)
        goto nomem;
    ws->app = strdup(o->app);
    ws->lua_path = strdup(o->lua_path ? o->lua_path : "");
    ws->policy_dir = strdup(o->policy_dir ? o->policy_dir : "");
    ws->workers = lh_calloc_lines(o->count, sizeof(struct lh_worker));
    if (ws->app == NULL || ws->lua_path == NULL || ws->policy_dir == NULL || ws->workers == NULL)
        goto nomem;
    ws->tasks = o->tasks;
    ws->cpu_tasks = o->cpu_tasks ? o->cpu_tasks : o->tasks;
    ws->load_timeout = o->load_timeout > 0 ? o->load_timeout : DEFAULT_LOAD_TIMEOUT;
    ws->host = o->host;
    ws->count = o->count;
    for (unsigned i = 0; i < o->count; i++) {
        struct lh_worker *w = &ws->workers[i];
        w->ws = ws;
        atomic_init(&w->next, NULL);
        w->vm = vm_new(ws, i == 0, err, errlen);
        if (w->vm == NULL) {
            settle_rules(ws, 0);
            lh_workers_free(ws);
            return NULL;
        }
    }
    settle_rules(ws, 1);
    return ws;
nomem:
    lh_workers_free(ws);
    snprintf(err, errlen, "out of memory");
    return NULL;
}

static void free_calls(struct lh_worker *w)
{
    while (w->free_calls) {
        struct lh_call *c = w->free_calls;
        w->free_calls = c->next_free;
        lh_json_buf_free(&c->json);
        free(c);
    }
}

void lh_workers_free(struct lh_workers *ws)
{
    if (ws == NULL)
        return;
    for (unsigned i = 0; ws->workers && i < ws->count; i++) {
        struct lh_worker *w = &ws->workers[i];
        vm_free(w->vm);
        vm_free(atomic_exchange(&w->next, NULL));
        while (w->retired) {
            struct vm *vm = w->retired;
            w->retired = vm->next_retired;
            vm_free(vm);
        }
        free_calls(w);
    }
    free(ws->workers);
    free(ws->app);
    free(ws->lua_path);
    free(ws->policy_dir);
    free(ws);
}

enum lh_status lh_workers_reload(struct lh_workers *ws, char *err, size_t errlen)
{
    struct vm **fresh = calloc(ws->count, sizeof(*fresh));

    if (fresh == NULL) {
        snprintf(err, errlen, "out of memory");
        return LH_ERR_NOMEM;
    }
    for (unsigned i = 0; i < ws->count; i++) {
        fresh[i] = vm_new(ws, i == 0, err, errlen);
        if (fresh[i] == NULL) {
            for (unsigned j = 0; j < i; j++)
                vm_free(fresh[j]);
            free(fresh);
            settle_rules(ws, 0);
            return LH_ERR_LUA;
        }
    }
    for (unsigned i = 0; i < ws->count; i++)
        vm_free(atomic_exchange(&ws->workers[i].next, fresh[i]));
    free(fresh);
    settle_rules(ws, 1);
    return LH_OK;
}

struct lh_worker *lh_workers_claim(struct lh_workers *ws)
{
    unsigned i = atomic_fetch_add(&ws->claimed, 1);
    return i < ws->count ? &ws->workers[i] : NULL;
}

void lh_workers_stopping(struct lh_workers *ws)
{
    atomic_store(&ws->stopping, 1);
}

/* -- Calls ------------------------------------------------------------------- */

static void server_error(struct lh_reply *reply, const struct lh_header_set *security)
{
    reply->security = security;
    reply->nonce = NULL;
    reply->route = 0;
    reply->stream = LH_STREAM_NONE;
    reply->has_rate = 0;
    reply->status = 500;
    reply->body = SERVER_ERROR_BODY;
    reply->body_len = sizeof(SERVER_ERROR_BODY) - 1;
    reply->nheaders = 1;
    reply->names[0] = "Content-Type";
    reply->values[0] = "application/json";
}

static struct lh_call *call_acquire(struct lh_worker *w)
{
    struct vm *fresh = atomic_load_explicit(&w->next, memory_order_relaxed);

    if (fresh != NULL) {
        fresh = atomic_exchange(&w->next, NULL);
        if (fresh != NULL) {
            vm_retire(w, w->vm);
            w->vm = fresh;
        }
    }
    struct lh_json_buf json;
    struct lh_call *c = w->free_calls;
    if (c != NULL) {
        w->free_calls = c->next_free;
        json = c->json;
    } else if ((c = malloc(sizeof(*c))) != NULL) {
        lh_json_buf_init(&json, LH_JSON_ENCODE_MAX);
    } else {
        return NULL;
    }

    struct vm *vm = w->vm;
    memset(c, 0, sizeof(*c));
    c->json = json;
    c->w = w;
    c->vm = vm;
    if (vm->nidle > 0) {
        vm->nidle--;
        c->co = vm->idle[vm->nidle];
        c->co_ref = vm->idle_refs[vm->nidle];
    } else {
        c->co = lua_newthread(vm->L);
        c->co_ref = luaL_ref(vm->L, LUA_REGISTRYINDEX);
        if (c->co_ref == LUA_REFNIL || c->co_ref == LUA_NOREF) {
            c->next_free = w->free_calls;
            w->free_calls = c;
            return NULL;
        }
    }
    vm->inflight++;
    return c;
}

void lh_call_release(struct lh_call *c)
{
    struct lh_worker *w = c->w;
    struct vm *vm = c->vm;

    if (c->pending) {
        c->pending->free(c->pending);
        c->pending = NULL;
    }
    if (!c->failed && lua_status(c->co) == 0 && vm->nidle < IDLE_COROUTINES) {
        lua_settop(c->co, 0);
        vm->idle[vm->nidle] = c->co;
        vm->idle_refs[vm->nidle] = c->co_ref;
        vm->nidle++;
    } else {
        luaL_unref(vm->L, LUA_REGISTRYINDEX, c->co_ref);
    }
    vm->inflight--;
    if (vm != w->vm && vm->inflight == 0)
        vm_release_retired(w, vm);
    lh_json_buf_shrink(&c->json, JSON_BUFFER_KEPT);
    c->next_free = w->free_calls;
    w->free_calls = c;
}

static int valid_header_name(const char *s, size_t len)
{
    static const char extra[] = "!#$%&'*+-.^_`|~";
    if (len == 0)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
              (ch != '\0' && strchr(extra, ch))))
            return 0;
    }
    return 1;
}

static int valid_header_value(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (s[i] == '\r' || s[i] == '\n' || s[i] == '\0')
            return 0;
    return 1;
}

/* Adds the value on top of co's stack to header name. A number is turned into
 * a string and stored back into the table at t under key (the top is popped
 * by the caller, so the table must keep the string alive until release). */
static const char *add_header(struct lh_reply *reply, const char *name, lua_State *co, int t,
                              int key)
{
    size_t vlen;
    const char *value;
    int type = lua_type(co, -1);

    if (type != LUA_TSTRING && type != LUA_TNUMBER)
        return "header values must be strings or numbers";
    value = lua_tolstring(co, -1, &vlen); /* a number becomes a string in place */
    if (type == LUA_TNUMBER) {
        lua_pushvalue(co, key);
        lua_pushvalue(co, -2);
        lua_rawset(co, t); /* replacing an existing field is safe during lua_next */
    }
    if (!valid_header_value(value, vlen))
        return "header value holds CR, LF or NUL";
    if (reply->nheaders == LH_REPLY_MAX_HEADERS)
        return "too many headers";
    reply->names[reply->nheaders] = name;
    reply->values[reply->nheaders] = value;
    reply->nheaders++;
    return NULL;
}

/* Reads res.ratelimit, the table at index t, into reply. */
static const char *read_rate(lua_State *co, int t, struct lh_reply *reply)
{
    static const char *const fields[] = {"limit", "remaining", "reset", "window"};
    long *out[] = {&reply->rate.limit, &reply->rate.remaining, &reply->rate.reset,
                   &reply->rate.window};

    reply->has_rate = 0;
    if (lua_isnoneornil(co, t))
        return NULL;
    if (!lua_istable(co, t))
        return "res.ratelimit must be a table";
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        lua_getfield(co, t, fields[i]);
        int ok = lua_type(co, -1) == LUA_TNUMBER;
        *out[i] = (long)lua_tointeger(co, -1);
        lua_pop(co, 1);
        if (!ok)
            return "res.ratelimit needs numbers limit, remaining, reset and window";
    }
    reply->has_rate = 1;
    return NULL;
}

/* Encodes res:json's value (at 8) into json, when the handler set no body
 * (at 2) of its own: 1 if it did, 0 if there is no value, -1 on failure with
 * the message in *why. Called from C, not from a trace, so that the C encoder
 * costs LuaJIT no trace exit; the text goes out from json as it is, without
 * becoming a Lua string. */
static int encode_json_body(lua_State *co, int encode_ref, struct lh_json_buf *json,
                            const char **why)
{
    if (!lua_isnil(co, 2) || lua_isnoneornil(co, 8))
        return 0;
    lua_rawgeti(co, LUA_REGISTRYINDEX, encode_ref);
    lua_pushlightuserdata(co, json);
    lua_pushvalue(co, 8);
    if (lua_pcall(co, 2, 0, 0) != 0) {
        const char *msg = lua_tostring(co, -1);
        /* Stays on the stack, for the log, until the call is released. */
        *why = lua_pushfstring(co, "res:json: %s", msg ? msg : "encoding failed");
        return -1;
    }
    return 1;
}

/* Names that differ only in case are one header, and a table cannot say
 * which was set last: Location and location would both be sent, and a
 * browser refuses such a redirect. A bad reply, then, naming both; except
 * Set-Cookie, which repeats, and res:json/html/text's "Content-Type" beside
 * one other spelling, which is dropped: the application's is sent. The
 * message, or NULL. */
static const char *one_spelling_each(lua_State *co, struct lh_reply *reply)
{
    for (size_t i = 1; i < reply->nheaders; i++)
        for (size_t j = 0; j < i; j++) {
            const char *a = reply->names[i], *b = reply->names[j];
            if (tolower((unsigned char)a[0]) != tolower((unsigned char)b[0]) ||
                strcasecmp(a, b) != 0 || strcmp(a, b) == 0 || strcasecmp(a, "Set-Cookie") == 0)
                continue;
            if (strcmp(a, "Content-Type") != 0 && strcmp(b, "Content-Type") != 0)
                return lua_pushfstring(co, "header %s set twice, as %s and %s (names ignore case)",
                                       a, b, a);
            size_t drop = strcmp(a, "Content-Type") == 0 ? i : j;
            reply->nheaders--;
            memmove(&reply->names[drop], &reply->names[drop + 1],
                    (reply->nheaders - drop) * sizeof(reply->names[0]));
            memmove(&reply->values[drop], &reply->values[drop + 1],
                    (reply->nheaders - drop) * sizeof(reply->values[0]));
            return one_spelling_each(co, reply); /* the pairs after drop moved */
        }
    return NULL;
}

/* Reads dispatch's results (status, body, headers, security header set,
 * nonce, stream, rate limit, JSON value) from the coroutine stack. */
static const char *read_reply(lua_State *co, int encode_ref, struct lh_json_buf *json,
                              struct lh_reply *reply)
{
    lua_Number status = lua_tonumber(co, 1);
    size_t name_len;
    const char *why = read_rate(co, 7, reply);

    if (why)
        return why;
    int encoded = encode_json_body(co, encode_ref, json, &why);
    if (encoded < 0)
        return why;
    /* Both stay referenced by the stack until the call is released. */
    reply->security = lh_headers_check_set(co, 4);
    reply->nonce = lua_type(co, 5) == LUA_TSTRING ? lua_tostring(co, 5) : NULL;
    if (lua_isnoneornil(co, 6))
        reply->stream = LH_STREAM_NONE;
    else if (lua_type(co, 6) == LUA_TSTRING && strcmp(lua_tostring(co, 6), "monitor") == 0)
        reply->stream = LH_STREAM_MONITOR;
    else
        return "res.stream must be nil or \"monitor\"";

    /* 1xx are interim answers: never the final one a handler gives. */
    if (lua_type(co, 1) != LUA_TNUMBER || status < 200 || status > 599 ||
        status != (lua_Number)(unsigned)status)
        return "res.status must be a whole number from 200 to 599";
    reply->status = (unsigned)status;
    if (encoded) {
        reply->body = json->data;
        reply->body_len = json->len;
    } else if (lua_type(co, 2) == LUA_TSTRING) {
        reply->body = lua_tolstring(co, 2, &reply->body_len);
    } else if (lua_isnil(co, 2) || lua_isnone(co, 2)) {
        reply->body = "";
        reply->body_len = 0;
    } else {
        return "res.body must be a string";
    }
    reply->nheaders = 0;
    if (!lua_istable(co, 3))
        return lua_isnoneornil(co, 3) ? NULL : "res.headers must be a table";
    lua_settop(co, 5);
    lua_pushnil(co);
    while (lua_next(co, 3) != 0) { /* key at 6, value at 7 */
        why = NULL;
        const char *name = lua_type(co, 6) == LUA_TSTRING ? lua_tolstring(co, 6, &name_len) : NULL;
        if (name == NULL || !valid_header_name(name, name_len)) {
            why = "header names must be tokens";
        } else if (lua_istable(co, 7)) { /* several values: Set-Cookie */
            for (int i = 1; why == NULL; i++) {
                lua_pushinteger(co, i); /* 8: the index, 9: the value */
                lua_pushinteger(co, i);
                lua_rawget(co, 7);
                if (lua_isnil(co, 9)) {
                    lua_settop(co, 7);
                    break;
                }
                why = add_header(reply, name, co, 7, 8);
                lua_settop(co, 7);
            }
        } else {
            why = add_header(reply, name, co, 3, 6);
        }
        if (why) { /* named, so that the handler's author finds it */
            char *shown = name ? lh_log_escaped(name, name_len) : NULL;
            why = lua_pushfstring(co, "header %s: %s", shown ? shown : "(not a string)", why);
            free(shown);
            return why;
        }
        lua_settop(co, 6);
    }
    return one_spelling_each(co, reply);
}

/* A handler that raised or answered badly: a 500, counted. */
static enum lh_call_state failed(struct lh_call *c, struct lh_reply *reply)
{
    const struct lh_host *host = c->w->ws->host;
    c->failed = 1;
    if (host && host->metrics)
        lh_metric_add(lh_metrics_core(host->metrics, LH_CORE_LUA_ERRORS), 1);
    server_error(reply, c->vm->default_headers);
    reply->route = c->route;
    return LH_CALL_DONE;
}

/* Resumes the call's coroutine with nargs values and interprets the outcome. */
/* A failed call's error-log line: "<METHOD> <path>: <what><detail>", the
 * path escaped. */
static void log_failure(const struct lh_call *c, const char *what, const char *detail)
{
    char *path = lh_log_escaped(c->req->path, c->req->path_len);
    lh_log(LH_LOG_ERROR, c->req->id, "%s %s: %s%s", c->req->method, path ? path : "-", what,
           detail);
    free(path);
}


static enum lh_call_state run(struct lh_call *c, int nargs, struct lh_reply *reply)
{
    const char *why;

    current_call = c;
    int rc = lua_resume(c->co, nargs);
    current_call = NULL;

    if (rc == LUA_YIELD) {
        if (c->pending != NULL)
            return LH_CALL_PENDING;
        why = "the handler yielded outside a luahost call";
    } else if (rc == 0) {
        why = read_reply(c->co, c->vm->json_encode_ref, &c->json, reply);
        reply->route = c->route;
        if (why == NULL)
            return LH_CALL_DONE;
    } else {
        size_t len;
        const char *msg = push_error_text(c->vm->L, c->co, &len);
        /* The path and the message may hold a client's text: escaped, so
         * that it cannot end the line and forge the next. */
        char *text = lh_log_escaped(msg, len);
        lua_pop(c->vm->L, 1);
        luaL_traceback(c->vm->L, c->co, text ? text : "(out of memory)", 0);
        free(text);
        log_failure(c, "", lua_tostring(c->vm->L, -1));
        lua_pop(c->vm->L, 1);
        return failed(c, reply);
    }
    log_failure(c, "bad reply: ", why);
    return failed(c, reply);
}

enum lh_call_state lh_worker_start(struct lh_worker *w, const struct lh_request *req,
                                   struct lh_call **callp, struct lh_reply *reply)
{
    struct lh_call *c = call_acquire(w);

    *callp = c;
    if (c == NULL) {
        lh_log(LH_LOG_ERROR, req->id, "out of memory starting a request");
        server_error(reply, w->vm->default_headers);
        return LH_CALL_DONE;
    }
    c->req = req;
    c->route = 0;
    lua_State *co = c->co;
    lua_rawgeti(co, LUA_REGISTRYINDEX, c->vm->dispatch_ref);
    lua_pushstring(co, req->method);
    lua_pushlstring(co, req->path, req->path_len);
    lua_pushstring(co, req->id);
    lua_pushstring(co, req->client);
    lua_pushboolean(co, req->https);
    return run(c, 5, reply);
}

static void task_done(struct lh_task *t)
{
    struct lh_async *a = (struct lh_async *)t;
    struct lh_call *c = a->_call;
    c->wake(c->wake_arg);
}

void lh_call_wait(struct lh_call *c, void (*wake)(void *arg), void *arg)
{
    struct lh_async *a = c->pending;

    c->wake = wake;
    c->wake_arg = arg;
    a->_call = c;
    a->task.done = task_done;
    if (a->start) {
        a->start(a);
        return;
    }
    if (atomic_load(&c->w->ws->stopping)) {
        a->task.cancelled = 1;
        wake(arg);
        return;
    }
    if (a->task.run == NULL)
        lh_task_after(c->w->ws->tasks, &a->task, a->delay);
    else
        lh_task_submit(a->cpu_bound ? c->w->ws->cpu_tasks : c->w->ws->tasks, &a->task);
}

enum lh_call_state lh_call_resume(struct lh_call *c, struct lh_reply *reply)
{
    struct lh_async *a = c->pending;
    int n;

    c->pending = NULL;
    current_call = c; /* push() may look at the request */
    n = a->push(a, c->co);
    current_call = NULL;
    a->free(a);
    return run(c, n, reply);
}

/* -- For bindings ------------------------------------------------------------ */

struct waiter {
    pthread_mutex_t lock;
    pthread_cond_t done;
    int finished;
};

static void inline_done(struct lh_task *t)
{
    struct waiter *w = ((struct lh_async *)t)->_waiter;
    pthread_mutex_lock(&w->lock);
    w->finished = 1;
    pthread_cond_signal(&w->done);
    pthread_mutex_unlock(&w->lock);
}

/* Runs a outside a request coroutine, blocking the calling thread. */
static void run_inline(struct lh_async *a)
{
    a->task.pool = NULL;
    a->task.cancelled = 0;
    if (a->start == NULL) {
        if (a->task.run != NULL)
            a->task.run(&a->task);
        else
            lh_task_sleep(NULL, a->delay);
        return;
    }
    struct waiter w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
    a->_waiter = &w;
    a->task.done = inline_done;
    a->start(a);
    pthread_mutex_lock(&w.lock);
    while (!w.finished)
        pthread_cond_wait(&w.done, &w.lock);
    pthread_mutex_unlock(&w.lock);
}

int lh_worker_await(lua_State *L, struct lh_async *a)
{
    struct lh_call *c = current_call;

    if (c != NULL && c->co == L && c->pending == NULL) {
        c->pending = a;
        return lua_yield(L, 0);
    }
    /* Not in a request's own coroutine: block this thread instead. */
    run_inline(a);
    int n = a->push(a, L);
    a->free(a);
    return n;
}

int lh_worker_cpu_full(void)
{
    const struct lh_call *c = current_call;
    return c != NULL && c->w->ws->cpu_tasks != NULL && lh_task_pool_full(c->w->ws->cpu_tasks);
}

const struct lh_header_set *lh_worker_default_headers(const struct lh_worker *w)
{
    return w->vm->default_headers;
}

const struct lh_host *lh_worker_host(lua_State *L)
{
    lua_getfield(L, LUA_REGISTRYINDEX, HOST_KEY);
    const struct lh_host *host = lua_touserdata(L, -1);
    lua_pop(L, 1);
    return host;
}

int lh_call_route(const struct lh_call *c)
{
    return c->route;
}

void lh_worker_set_route(int route)
{
    if (current_call != NULL)
        current_call->route = route;
}

const struct lh_request *lh_worker_current_request(void)
{
    return current_call ? current_call->req : NULL;
}
