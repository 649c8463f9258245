/* src/db_lua.c: require "luahost.db". Check, call, convert.
 *
 *   db.query(sql, ...) -> rows | nil, err
 *       rows: array of { column = value }; integers are numbers, SQL NULL is
 *       db.null. Parameters (?) are bound, never spliced into the SQL.
 *   db.query_one(sql, ...) -> row | nil | nil, err      (nil: no row)
 *   db.execute(sql, ...) -> affected, insert_id | nil, err
 *   db.execute_many(sql, { {params...}, ... }) -> affected | nil, err
 *       one connection and one transaction for the whole batch
 *   db.transaction(function(tx) ... end) -> results of the function | nil, err
 *       tx has query, query_one, execute and execute_many; commits when the
 *       function returns, rolls back when it raises (and raises again), so
 *       `assert(tx:execute(...))` rolls everything back on a failed statement.
 *   db.health() -> true | nil, err
 *   db.stats() -> { name, size, active, idle, open, served, waits, waiting, timeouts,
 *                   errors, long_running, slow }
 *   err is short: "timeout", "pool exhausted ...", "database unavailable ...",
 *   or the server's message; a third value names the kind: "timeout", "io",
 *   "sql". Without a configured database every call returns nil, "no database".
 *
 * Each call is a blocking operation run by the task pool (lh_worker_await):
 * inside a request the coroutine waits and the thread serves others.
 */
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "lua_modules.h"
#include "luahost/db.h"
#include "luahost/worker.h"

#define TX_MT "luahost.db.tx"
#define MAX_PARAMS 256

enum op_kind { OP_QUERY, OP_QUERY_ONE, OP_EXECUTE, OP_EXECUTE_MANY, OP_BEGIN, OP_FINISH, OP_PING };

struct tx {
    struct lh_db *db;
    struct lh_db_conn *conn; /* NULL once finished */
};

struct db_op {
    struct lh_async a; /* first: callbacks cast back */
    enum op_kind kind;
    struct lh_db *db;
    struct tx *tx;         /* pinned connection, or NULL */
    int tx_ref;            /* OP_BEGIN: registry ref of the tx userdata */
    int commit;            /* OP_FINISH: commit (1) or roll back (0) */
    char *sql;
    size_t sql_len;
    size_t nparams, nsets; /* execute_many: nsets rows of nparams */
    struct lh_db_value *params;
    char request_id[32];
    char route[96]; /* "GET /api/svg/7": names the holder in leak warnings */
    /* results */
    enum lh_status st;
    char err[256];
    struct lh_db_result *result;
    unsigned long long affected;
    struct lh_db_conn *acquired; /* OP_BEGIN */
};

/* db.null is the NULL light userdata, the same value as cjson.null, so that
 * rows encode to JSON with null where SQL has NULL. */

static const char *kind_name(enum lh_status st)
{
    return st == LH_ERR_TIMEOUT ? "timeout" : st == LH_ERR_IO ? "io" : "sql";
}

/* -- Blocking part (task pool threads) ----------------------------------------- */

static enum lh_status run_statements(struct db_op *op, struct lh_db_conn *c)
{
    if (op->kind != OP_EXECUTE_MANY)
        return lh_db_run(c, op->sql, op->sql_len, op->params, op->nparams, &op->result, op->err,
                         sizeof(op->err));
    for (size_t i = 0; i < op->nsets; i++) {
        struct lh_db_result *r = NULL;
        enum lh_status st = lh_db_run(c, op->sql, op->sql_len, op->params + i * op->nparams,
                                      op->nparams, &r, op->err, sizeof(op->err));
        if (st != LH_OK)
            return st;
        op->affected += lh_db_result_affected(r);
        lh_db_result_free(r);
    }
    return LH_OK;
}

static enum lh_status simple(struct lh_db_conn *c, const char *sql, char *err, size_t errlen)
{
    struct lh_db_result *r = NULL;
    enum lh_status st = lh_db_run(c, sql, strlen(sql), NULL, 0, &r, err, errlen);
    lh_db_result_free(r);
    return st;
}

static void op_run(struct lh_task *t)
{
    struct db_op *op = (struct db_op *)t;
    struct lh_db_conn *c = op->tx ? op->tx->conn : NULL;
    int own = c == NULL && op->kind != OP_FINISH;

    if (op->kind == OP_PING) {
        op->st = lh_db_ping(op->db, op->err, sizeof(op->err));
        return;
    }
    if (own) {
        op->st = lh_db_acquire(op->db, op->request_id, op->route, &c, op->err, sizeof(op->err));
        if (op->st != LH_OK)
            return;
    }
    switch (op->kind) {
    case OP_BEGIN:
        op->st = simple(c, "START TRANSACTION", op->err, sizeof(op->err));
        if (op->st == LH_OK) {
            op->acquired = c;
            return; /* the transaction keeps it */
        }
        break;
    case OP_FINISH:
        op->st = simple(op->tx->conn, op->commit ? "COMMIT" : "ROLLBACK", op->err,
                        sizeof(op->err));
        lh_db_release(op->db, op->tx->conn); /* rolls back whatever is left */
        op->tx->conn = NULL;
        return;
    case OP_EXECUTE_MANY:
        if (own) {
            op->st = simple(c, "START TRANSACTION", op->err, sizeof(op->err));
            if (op->st == LH_OK)
                op->st = run_statements(op, c);
            if (op->st == LH_OK)
                op->st = simple(c, "COMMIT", op->err, sizeof(op->err));
            break; /* release rolls back after a failure */
        }
        op->st = run_statements(op, c);
        break;
    default:
        op->st = run_statements(op, c);
        break;
    }
    if (own)
        lh_db_release(op->db, c);
}

/* -- Results (worker thread) ------------------------------------------------- */

static void push_value(lua_State *L, const struct lh_db_value *v)
{
    switch (v->type) {
    case LH_DB_NULL:
        lua_pushlightuserdata(L, NULL);
        break;
    case LH_DB_INT:
        lua_pushnumber(L, (lua_Number)v->i);
        break;
    case LH_DB_DOUBLE:
        lua_pushnumber(L, v->d);
        break;
    case LH_DB_TEXT:
        lua_pushlstring(L, v->s, v->len);
        break;
    }
}

static void push_row(lua_State *L, const struct lh_db_result *r, size_t row)
{
    size_t ncols = lh_db_result_columns(r);
    lua_createtable(L, 0, (int)ncols);
    for (size_t col = 0; col < ncols; col++) {
        push_value(L, lh_db_result_value(r, row, col));
        lua_setfield(L, -2, lh_db_result_name(r, col));
    }
}

static int push_error(lua_State *L, struct db_op *op)
{
    lua_pushnil(L);
    lua_pushstring(L, op->a.task.cancelled ? "server shutting down" : op->err);
    lua_pushstring(L, op->a.task.cancelled ? "io" : kind_name(op->st));
    return 3;
}

static int op_push(struct lh_async *a, lua_State *L)
{
    struct db_op *op = (struct db_op *)a;
    const struct lh_db_result *r = op->result;

    if (op->kind == OP_BEGIN) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, op->tx_ref); /* the tx userdata */
        luaL_unref(L, LUA_REGISTRYINDEX, op->tx_ref);
        if (a->task.cancelled || op->st != LH_OK) {
            lua_pop(L, 1);
            return push_error(L, op);
        }
        op->tx->conn = op->acquired;
        return 1;
    }
    if (a->task.cancelled || op->st != LH_OK)
        return push_error(L, op);
    switch (op->kind) {
    case OP_QUERY: {
        size_t rows = r ? lh_db_result_rows(r) : 0;
        lua_createtable(L, (int)rows, 0);
        for (size_t i = 0; i < rows; i++) {
            push_row(L, r, i);
            lua_rawseti(L, -2, (int)i + 1);
        }
        return 1;
    }
    case OP_QUERY_ONE:
        if (r == NULL || lh_db_result_rows(r) == 0)
            lua_pushnil(L);
        else
            push_row(L, r, 0);
        return 1;
    case OP_EXECUTE:
        lua_pushnumber(L, (lua_Number)(r ? lh_db_result_affected(r) : 0));
        lua_pushnumber(L, (lua_Number)(r ? lh_db_result_insert_id(r) : 0));
        return 2;
    case OP_EXECUTE_MANY:
        lua_pushnumber(L, (lua_Number)op->affected);
        return 1;
    case OP_BEGIN:
    case OP_FINISH:
    case OP_PING:
        lua_pushboolean(L, 1);
        return 1;
    }
    return 0;
}

static void op_free(struct lh_async *a)
{
    struct db_op *op = (struct db_op *)a;
    if (op->kind == OP_BEGIN && op->acquired && op->tx->conn == NULL)
        lh_db_release(op->db, op->acquired); /* cancelled before Lua took it */
    lh_db_result_free(op->result);
    free(op->sql);
    free(op->params);
    free(op);
}

/* -- Calls ------------------------------------------------------------------- */

static struct lh_db *host_db(lua_State *L)
{
    const struct lh_host *host = lh_worker_host(L);
    return host ? host->db : NULL;
}

/* Reads the value at idx as a parameter; text points into the Lua string,
 * which the caller keeps alive by copying (see copy_params). */
static void read_param(lua_State *L, int idx, struct lh_db_value *v, int position)
{
    memset(v, 0, sizeof(*v));
    switch (lua_type(L, idx)) {
    case LUA_TNIL:
        v->type = LH_DB_NULL;
        break;
    case LUA_TBOOLEAN:
        v->type = LH_DB_INT;
        v->i = lua_toboolean(L, idx);
        break;
    case LUA_TNUMBER: {
        lua_Number n = lua_tonumber(L, idx);
        if (n == (lua_Number)(long long)n && n > -9.2e18 && n < 9.2e18) {
            v->type = LH_DB_INT;
            v->i = (long long)n;
        } else {
            v->type = LH_DB_DOUBLE;
            v->d = n;
        }
        break;
    }
    case LUA_TSTRING:
        v->type = LH_DB_TEXT;
        v->s = lua_tolstring(L, idx, &v->len);
        break;
    case LUA_TLIGHTUSERDATA:
        if (lua_touserdata(L, idx) == NULL) {
            v->type = LH_DB_NULL;
            break;
        }
        /* fall through */
    default:
        luaL_error(L, "parameter %d: want nil, a boolean, a number, a string or db.null, got %s",
                   position, luaL_typename(L, idx));
    }
}

/* Gives the op its own copies of the parameters' text (the task runs after
 * the Lua values may be gone). */
static int copy_params(struct db_op *op)
{
    size_t n = op->nparams * (op->nsets ? op->nsets : 1), bytes = 0;
    for (size_t i = 0; i < n; i++)
        if (op->params[i].type == LH_DB_TEXT)
            bytes += op->params[i].len + 1;
    struct lh_db_value *copy = malloc(n * sizeof(*copy) + bytes);
    if (copy == NULL)
        return -1;
    char *text = (char *)(copy + n);
    for (size_t i = 0; i < n; i++) {
        copy[i] = op->params[i];
        if (copy[i].type == LH_DB_TEXT) {
            memcpy(text, op->params[i].s, op->params[i].len);
            text[op->params[i].len] = '\0';
            copy[i].s = text;
            text += op->params[i].len + 1;
        }
    }
    free(op->params);
    op->params = copy;
    return 0;
}

static int start(lua_State *L, struct db_op *op)
{
    const struct lh_request *req = lh_worker_current_request();
    if (req) {
        snprintf(op->request_id, sizeof(op->request_id), "%s", req->id);
        snprintf(op->route, sizeof(op->route), "%s %.*s", req->method, (int)req->path_len,
                 req->path);
    }
    if (copy_params(op) != 0) {
        op_free(&op->a);
        return luaL_error(L, "out of memory");
    }
    op->a.task.run = op_run;
    op->a.push = op_push;
    op->a.free = op_free;
    return lh_worker_await(L, &op->a);
}

/* A new op for sql at index sql_idx; NULL (and nil, err pushed) without a db. */
static struct db_op *new_op(lua_State *L, enum op_kind kind, struct lh_db *db, int sql_idx)
{
    size_t len;
    const char *sql = luaL_checklstring(L, sql_idx, &len);
    struct db_op *op = calloc(1, sizeof(*op));
    if (op != NULL)
        op->sql = malloc(len + 1);
    if (op == NULL || op->sql == NULL) {
        free(op);
        luaL_error(L, "out of memory");
        return NULL;
    }
    memcpy(op->sql, sql, len + 1);
    op->sql_len = len;
    op->kind = kind;
    op->db = db;
    return op;
}

/* Statement with the parameters from index first to the top. */
static int statement(lua_State *L, enum op_kind kind, struct lh_db *db, struct tx *tx, int sql_idx)
{
    int top = lua_gettop(L);
    int n = top - sql_idx;

    luaL_checkstring(L, sql_idx);
    luaL_argcheck(L, n <= MAX_PARAMS, sql_idx + 1, "too many parameters");
    struct lh_db_value params[MAX_PARAMS];
    for (int i = 0; i < n; i++)
        read_param(L, sql_idx + 1 + i, &params[i], i + 1);
    struct db_op *op = new_op(L, kind, db, sql_idx);
    op->tx = tx;
    op->nparams = (size_t)n;
    op->params = malloc(((size_t)n ? (size_t)n : 1) * sizeof(params[0]));
    if (op->params == NULL) {
        op_free(&op->a);
        return luaL_error(L, "out of memory");
    }
    memcpy(op->params, params, (size_t)n * sizeof(params[0]));
    return start(L, op);
}

static int no_database(lua_State *L)
{
    lua_pushnil(L);
    lua_pushliteral(L, "no database");
    lua_pushliteral(L, "io");
    return 3;
}

static int many(lua_State *L, struct lh_db *db, struct tx *tx, int sql_idx)
{
    int sets = sql_idx + 1;
    luaL_checkstring(L, sql_idx);
    luaL_checktype(L, sets, LUA_TTABLE);
    size_t nsets = lua_objlen(L, sets);
    luaL_argcheck(L, nsets > 0, sets, "want at least one parameter list");
    lua_rawgeti(L, sets, 1);
    luaL_argcheck(L, lua_istable(L, -1), sets, "want a list of parameter lists");
    size_t nparams = lua_objlen(L, -1);
    lua_pop(L, 1);
    luaL_argcheck(L, nparams <= MAX_PARAMS, sets, "too many parameters");

    struct db_op *op = new_op(L, OP_EXECUTE_MANY, db, sql_idx);
    op->tx = tx;
    op->nparams = nparams;
    op->nsets = nsets;
    op->params = calloc(nsets * (nparams ? nparams : 1), sizeof(struct lh_db_value));
    if (op->params == NULL) {
        op_free(&op->a);
        return luaL_error(L, "out of memory");
    }
    for (size_t s = 0; s < nsets; s++) {
        lua_rawgeti(L, sets, (int)s + 1);
        if (!lua_istable(L, -1) || lua_objlen(L, -1) != nparams) {
            op_free(&op->a);
            return luaL_error(L, "parameter list %d: want a list of %d values", (int)s + 1,
                              (int)nparams);
        }
        for (size_t i = 0; i < nparams; i++) {
            lua_rawgeti(L, -1, (int)i + 1);
            /* the string stays referenced by the table until copy_params */
            read_param(L, lua_gettop(L), &op->params[s * nparams + i], (int)i + 1);
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
    }
    return start(L, op);
}

#define DB_OR_NIL(L, db)                                                                       \
    struct lh_db *db = host_db(L);                                                              \
    if (db == NULL)                                                                             \
        return no_database(L);

/* db.query(sql, ...) -> rows | nil, err */
static int l_query(lua_State *L)
{
    DB_OR_NIL(L, db);
    return statement(L, OP_QUERY, db, NULL, 1);
}

/* db.query_one(sql, ...) -> row | nil | nil, err */
static int l_query_one(lua_State *L)
{
    DB_OR_NIL(L, db);
    return statement(L, OP_QUERY_ONE, db, NULL, 1);
}

/* db.execute(sql, ...) -> affected, insert_id | nil, err */
static int l_execute(lua_State *L)
{
    DB_OR_NIL(L, db);
    return statement(L, OP_EXECUTE, db, NULL, 1);
}

/* db.execute_many(sql, sets) -> affected | nil, err */
static int l_execute_many(lua_State *L)
{
    DB_OR_NIL(L, db);
    return many(L, db, NULL, 1);
}

/* db.health() -> true | nil, err */
static int l_health(lua_State *L)
{
    DB_OR_NIL(L, db);
    struct db_op *op = calloc(1, sizeof(*op));
    if (op == NULL)
        return luaL_error(L, "out of memory");
    op->kind = OP_PING;
    op->db = db;
    return start(L, op);
}

/* db.stats() -> table | nil, err */
static int l_stats(lua_State *L)
{
    DB_OR_NIL(L, db);
    struct lh_db_stats s;
    lh_db_stats(db, &s);
    lua_createtable(L, 0, 12);
    lua_pushstring(L, s.name);
    lua_setfield(L, -2, "name");
#define FIELD(f)                                                                                \
    lua_pushnumber(L, (lua_Number)s.f);                                                         \
    lua_setfield(L, -2, #f)
    FIELD(size);
    FIELD(active);
    FIELD(idle);
    FIELD(open);
    FIELD(served);
    FIELD(waits);
    FIELD(waiting);
    FIELD(timeouts);
    FIELD(errors);
    FIELD(long_running);
    FIELD(slow);
#undef FIELD
    return 1;
}

/* -- Transactions: db.begin() is used by db.transaction (lua/luahost/transaction.lua) -- */

static struct tx *check_tx(lua_State *L)
{
    struct tx *tx = luaL_checkudata(L, 1, TX_MT);
    luaL_argcheck(L, tx->conn != NULL, 1, "transaction is finished");
    return tx;
}

/* db.begin() -> tx | nil, err */
static int l_begin(lua_State *L)
{
    DB_OR_NIL(L, db);
    struct db_op *op = calloc(1, sizeof(*op));
    if (op == NULL)
        return luaL_error(L, "out of memory");
    struct tx *tx = lua_newuserdata(L, sizeof(*tx));
    tx->db = db;
    tx->conn = NULL;
    luaL_getmetatable(L, TX_MT);
    lua_setmetatable(L, -2);
    op->tx_ref = luaL_ref(L, LUA_REGISTRYINDEX); /* pushed back as the result */
    op->kind = OP_BEGIN;
    op->db = db;
    op->tx = tx;
    return start(L, op);
}

static int tx_finish(lua_State *L, int commit)
{
    struct tx *tx = check_tx(L);
    struct db_op *op = calloc(1, sizeof(*op));
    if (op == NULL)
        return luaL_error(L, "out of memory");
    op->kind = OP_FINISH;
    op->db = tx->db;
    op->tx = tx;
    op->commit = commit;
    return start(L, op);
}

static int l_tx_commit(lua_State *L)
{
    return tx_finish(L, 1);
}

static int l_tx_rollback(lua_State *L)
{
    return tx_finish(L, 0);
}

static int l_tx_query(lua_State *L)
{
    struct tx *tx = check_tx(L);
    return statement(L, OP_QUERY, tx->db, tx, 2);
}

static int l_tx_query_one(lua_State *L)
{
    struct tx *tx = check_tx(L);
    return statement(L, OP_QUERY_ONE, tx->db, tx, 2);
}

static int l_tx_execute(lua_State *L)
{
    struct tx *tx = check_tx(L);
    return statement(L, OP_EXECUTE, tx->db, tx, 2);
}

static int l_tx_execute_many(lua_State *L)
{
    struct tx *tx = check_tx(L);
    return many(L, tx->db, tx, 2);
}

/* A transaction dropped without commit or rollback: give the connection back
 * (lh_db_release rolls back). Blocking, but only on this error path. */
static int l_tx_gc(lua_State *L)
{
    struct tx *tx = luaL_checkudata(L, 1, TX_MT);
    if (tx->conn) {
        lh_db_release(tx->db, tx->conn);
        tx->conn = NULL;
    }
    return 0;
}

static const luaL_Reg tx_methods[] = {
    {"query", l_tx_query},     {"query_one", l_tx_query_one}, {"execute", l_tx_execute},
    {"execute_many", l_tx_execute_many}, {"commit", l_tx_commit}, {"rollback", l_tx_rollback},
    {"__gc", l_tx_gc},         {NULL, NULL}};

static const luaL_Reg functions[] = {
    {"query", l_query},   {"query_one", l_query_one}, {"execute", l_execute},
    {"execute_many", l_execute_many}, {"health", l_health}, {"stats", l_stats},
    {"begin", l_begin},   {NULL, NULL}};

int luaopen_luahost_db(lua_State *L)
{
    lh_lua_class(L, TX_MT, tx_methods);
    luaL_newlib(L, functions);
    lua_pushlightuserdata(L, NULL);
    lua_setfield(L, -2, "null");
    /* db.transaction, written in Lua so that its pcall can yield. */
    lua_getglobal(L, "require");
    lua_pushliteral(L, "luahost.transaction");
    lua_call(L, 1, 1);
    lua_pushvalue(L, -2);
    lua_call(L, 1, 0);
    return 1;
}
