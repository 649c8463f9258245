/* src/password_lua.c: require "luahost.password". Check, call, convert.
 *
 *   password.hash(password[, iterations]) -> hash | nil, err
 *   password.verify(password, hash) -> true | false | nil, err
 *       Both take a few hundred milliseconds at the default cost: inside a
 *       request they run on a CPU thread, at a lower priority, while the
 *       worker serves others. When cpu_queue of them already wait for a
 *       thread, they fail at once with "busy: ..." (the caller answers 503).
 *   password.busy() -> boolean
 *       Whether a hash or verify started now would fail so: lets a caller
 *       answer before the attempt counts against its limits.
 *   password.sha256_hex(data) -> 64 hex characters
 */
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "lua_modules.h"
#include "luahost/password.h"
#include "luahost/worker.h"

struct kdf_op {
    struct lh_async a; /* first: callbacks cast back */
    int verify;
    unsigned iterations;
    char *password; /* copied; wiped when freed */
    size_t len;
    char hash[LH_PASSWORD_HASH_MAX];
    enum lh_status st;
};

static void kdf_run(struct lh_task *t)
{
    struct kdf_op *op = (struct kdf_op *)t;
    if (op->verify)
        op->st = lh_password_verify(op->password, op->len, op->hash);
    else
        op->st = lh_password_hash(op->password, op->len, op->iterations, op->hash);
}

static int kdf_push(struct lh_async *a, lua_State *L)
{
    struct kdf_op *op = (struct kdf_op *)a;

    if (a->task.cancelled) {
        lua_pushnil(L);
        if (a->task.refused)
            lua_pushliteral(L, "busy: too many password checks waiting");
        else
            lua_pushliteral(L, "server shutting down");
        return 2;
    }
    if (op->verify && (op->st == LH_OK || op->st == LH_ERR_NOT_FOUND)) {
        lua_pushboolean(L, op->st == LH_OK);
        return 1;
    }
    if (!op->verify && op->st == LH_OK) {
        lua_pushstring(L, op->hash);
        return 1;
    }
    lua_pushnil(L);
    lua_pushstring(L, op->st == LH_ERR_INVALID ? "malformed hash or bad cost" : "crypto failure");
    return 2;
}

static void kdf_free(struct lh_async *a)
{
    struct kdf_op *op = (struct kdf_op *)a;
    if (op->password) {
        memset(op->password, 0, op->len);
        free(op->password);
    }
    free(op);
}

static int start(lua_State *L, int verify)
{
    size_t len;
    const char *pw = luaL_checklstring(L, 1, &len);
    luaL_argcheck(L, len <= 4096, 1, "password longer than 4096 bytes");
    struct kdf_op *op = calloc(1, sizeof(*op));
    if (op == NULL)
        return luaL_error(L, "out of memory");
    op->verify = verify;
    if (verify) {
        size_t hlen;
        const char *hash = luaL_checklstring(L, 2, &hlen);
        if (hlen >= sizeof(op->hash)) {
            free(op);
            lua_pushnil(L);
            lua_pushliteral(L, "malformed hash or bad cost");
            return 2;
        }
        memcpy(op->hash, hash, hlen + 1);
    } else {
        op->iterations = (unsigned)luaL_optinteger(L, 2, LH_PASSWORD_ITERATIONS);
    }
    op->password = malloc(len + 1);
    if (op->password == NULL) {
        free(op);
        return luaL_error(L, "out of memory");
    }
    memcpy(op->password, pw, len + 1);
    op->len = len;
    op->a.task.run = kdf_run;
    op->a.cpu_bound = 1;
    op->a.push = kdf_push;
    op->a.free = kdf_free;
    return lh_worker_await(L, &op->a);
}

static int l_busy(lua_State *L)
{
    lua_pushboolean(L, lh_worker_cpu_full());
    return 1;
}

/* password.hash(password[, iterations]) -> hash | nil, err */
static int l_hash(lua_State *L)
{
    return start(L, 0);
}

/* password.verify(password, hash) -> true | false | nil, err */
static int l_verify(lua_State *L)
{
    return start(L, 1);
}

/* password.sha256_hex(data) -> hex */
static int l_sha256_hex(lua_State *L)
{
    size_t len;
    const char *data = luaL_checklstring(L, 1, &len);
    char out[65];
    lh_sha256_hex(data, len, out);
    lua_pushlstring(L, out, 64);
    return 1;
}

static const luaL_Reg functions[] = {{"hash", l_hash},
                                     {"verify", l_verify},
                                     {"busy", l_busy},
                                     {"sha256_hex", l_sha256_hex},
                                     {NULL, NULL}};

int luaopen_luahost_password(lua_State *L)
{
    luaL_newlib(L, functions);
    return 1;
}
