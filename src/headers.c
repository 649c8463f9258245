/* src/headers.c: CSP nonces, CSP building and compiled security-header sets.
 *
 * DESIGN
 * ------
 * Nonces: each thread keeps a 4 KiB pool of CSPRNG bytes in thread-local
 * storage (no heap, nothing to free at thread exit), refilled by one
 * RAND_bytes call when fewer than 16 bytes remain. A single RAND_bytes(16)
 * costs about a microsecond; a 4 KiB refill serves 256 nonces. Bytes handed
 * out are wiped and the position only moves forward, so no byte serves twice.
 * A forked child drops the pool it inherited (pthread_atfork), otherwise
 * parent and child would hand out the same nonces.
 *
 * Header sets: each value is split at add time into its literal text with
 * every {nonce} removed plus the offsets where the nonce goes. Emitting a
 * value without a nonce passes the stored string as is; one with a nonce
 * copies the pieces and the nonce into a stack buffer whose size the add-time
 * length check guarantees. A set is read-only once built: no locks. */
#include "luahost/headers.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#define NONCE_BYTES 16
#define POOL_SIZE 4096
#define PLACEHOLDER "{nonce}"
#define PLACEHOLDER_LEN (sizeof(PLACEHOLDER) - 1)
#define HSTS_NAME "Strict-Transport-Security"
#define CSP_NAME_MAX 64

/* -- Messages ---------------------------------------------------------------- */

static enum lh_status fail(char *err, size_t errlen, enum lh_status st, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Writes the message into err (if there is room) and returns st. */
static enum lh_status fail(char *err, size_t errlen, enum lh_status st, const char *fmt, ...)
{
    va_list ap;

    if (err != NULL && errlen > 0) {
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return st;
}

/* A printable excerpt of s for a message: at most 40 characters, anything
 * outside printable ASCII shown as '?', "..." when cut. */
static const char *excerpt(const char *s, char buf[48])
{
    size_t i;

    for (i = 0; s[i] != '\0' && i < 40; i++)
        buf[i] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
    if (s[i] != '\0') {
        memcpy(buf + i, "...", 3);
        i += 3;
    }
    buf[i] = '\0';
    return buf;
}

/* -- Nonces ------------------------------------------------------------------ */

static _Thread_local unsigned char pool[POOL_SIZE];
static _Thread_local size_t pool_pos = POOL_SIZE; /* empty until the first refill */
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

/* Runs in the child of fork(), on the only thread there (the one that forked). */
static void drop_pool(void)
{
    OPENSSL_cleanse(pool, sizeof(pool));
    pool_pos = POOL_SIZE;
}

static void register_atfork(void)
{
    /* If this fails the child keeps the pool: OpenSSL itself is fork-safe, but
     * our buffered bytes would repeat. Nothing better to do than go on. */
    (void)pthread_atfork(NULL, NULL, drop_pool);
}

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

size_t lh_base64url_encode(const void *in, size_t len, char *out)
{
    const unsigned char *p = in;
    size_t o = 0, i = 0;

    for (; i + 3 <= len; i += 3) {
        unsigned long v = (unsigned long)p[i] << 16 | (unsigned long)p[i + 1] << 8 | p[i + 2];
        out[o++] = b64url[v >> 18 & 63];
        out[o++] = b64url[v >> 12 & 63];
        out[o++] = b64url[v >> 6 & 63];
        out[o++] = b64url[v & 63];
    }
    if (len - i == 1) {
        unsigned long v = (unsigned long)p[i] << 16;
        out[o++] = b64url[v >> 18 & 63];
        out[o++] = b64url[v >> 12 & 63];
    } else if (len - i == 2) {
        unsigned long v = (unsigned long)p[i] << 16 | (unsigned long)p[i + 1] << 8;
        out[o++] = b64url[v >> 18 & 63];
        out[o++] = b64url[v >> 12 & 63];
        out[o++] = b64url[v >> 6 & 63];
    }
    out[o] = '\0';
    return o;
}

enum lh_status lh_nonce_generate(char out[LH_NONCE_LEN + 1])
{
    if (POOL_SIZE - pool_pos < NONCE_BYTES) {
        pthread_once(&atfork_once, register_atfork);
        if (RAND_bytes(pool, POOL_SIZE) != 1) {
            out[0] = '\0';
            return LH_ERR_IO;
        }
        pool_pos = 0;
    }
    lh_base64url_encode(pool + pool_pos, NONCE_BYTES, out);
    OPENSSL_cleanse(pool + pool_pos, NONCE_BYTES);
    pool_pos += NONCE_BYTES;
    return LH_OK;
}

static int is_b64url(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
}

int lh_nonce_valid(const char *s)
{
    if (s == NULL)
        return 0;
    for (size_t i = 0; i < LH_NONCE_LEN; i++)
        if (!is_b64url((unsigned char)s[i])) /* also stops at a NUL */
            return 0;
    return s[LH_NONCE_LEN] == '\0';
}

/* -- Content-Security-Policy ------------------------------------------------- */

/* Keywords that only mean something quoted: unquoted, a browser reads them as
 * host names, silently allowing nothing (or a host called "self"). */
static const char *const csp_keywords[] = {
    "self",           "none",          "unsafe-inline",    "unsafe-eval", "unsafe-hashes",
    "strict-dynamic", "report-sample", "wasm-unsafe-eval", "nonce",       NULL,
};

static int csp_name_ok(const char *name)
{
    size_t i;

    if (!(name[0] >= 'a' && name[0] <= 'z'))
        return 0;
    for (i = 0; name[i] != '\0'; i++)
        if (!((name[i] >= 'a' && name[i] <= 'z') || name[i] == '-') || i >= CSP_NAME_MAX)
            return 0;
    return 1;
}

/* Checks one source of directive dir; LH_OK or LH_ERR_INVALID with a message. */
static enum lh_status csp_source_ok(const char *dir, const char *src, size_t nsources, char *err,
                                    size_t errlen)
{
    char ex[48];
    size_t len, i;

    if (src == NULL || src[0] == '\0')
        return fail(err, errlen, LH_ERR_INVALID, "%s: empty source", dir);
    len = strlen(src);
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)src[i];
        if (c == ';' || c == ',')
            return fail(err, errlen, LH_ERR_INVALID, "%s: '%c' in source \"%s\"", dir, c,
                        excerpt(src, ex));
        if (c == ' ' || c == '\t')
            return fail(err, errlen, LH_ERR_INVALID,
                        "%s: whitespace in source \"%s\" (one source per string)", dir,
                        excerpt(src, ex));
        if (c < 0x20 || c == 0x7f)
            return fail(err, errlen, LH_ERR_INVALID, "%s: control character in source \"%s\"", dir,
                        excerpt(src, ex));
        if (c >= 0x80)
            return fail(err, errlen, LH_ERR_INVALID, "%s: non-ASCII byte in source \"%s\"", dir,
                        excerpt(src, ex));
    }
    if (memchr(src, '\'', len) != NULL) {
        if (len < 3 || src[0] != '\'' || src[len - 1] != '\'' ||
            memchr(src + 1, '\'', len - 2) != NULL)
            return fail(err, errlen, LH_ERR_INVALID, "%s: misplaced quote in source \"%s\"", dir,
                        excerpt(src, ex));
        if (strcasecmp(src, "'none'") == 0 && nsources > 1)
            return fail(err, errlen, LH_ERR_INVALID, "%s: 'none' must be the only source", dir);
        return LH_OK;
    }
    for (i = 0; csp_keywords[i] != NULL; i++)
        if (strcasecmp(src, csp_keywords[i]) == 0)
            return fail(err, errlen, LH_ERR_INVALID, "%s: source \"%s\" must be quoted: \"'%s'\"",
                        dir, src, src);
    return LH_OK;
}

/* Appends len bytes of s at *pos in out (size bytes); 0 when they do not fit
 * with a final NUL. */
static int put(char *out, size_t size, size_t *pos, const char *s, size_t len)
{
    if (size - *pos <= len)
        return 0;
    memcpy(out + *pos, s, len);
    *pos += len;
    return 1;
}

enum lh_status lh_csp_build(const struct lh_csp_directive *d, size_t n, char *out, size_t size,
                            char *err, size_t errlen)
{
    static const char nonce_src[] = "'nonce-" PLACEHOLDER "'";
    char ex[48];
    size_t pos = 0;

    if (out == NULL || size == 0)
        return fail(err, errlen, LH_ERR_NOMEM, "policy too long");
    out[0] = '\0';
    if (n == 0 || d == NULL)
        return fail(err, errlen, LH_ERR_INVALID, "no directives");
    if (n > LH_CSP_MAX_DIRECTIVES)
        return fail(err, errlen, LH_ERR_INVALID, "too many directives (max %d)",
                    LH_CSP_MAX_DIRECTIVES);

    /* Validate everything first, so that a long bad policy reports its error
     * rather than its length. */
    for (size_t i = 0; i < n; i++) {
        if (d[i].name == NULL)
            return fail(err, errlen, LH_ERR_INVALID, "directive %zu: missing name", i + 1);
        if (!csp_name_ok(d[i].name))
            return fail(err, errlen, LH_ERR_INVALID, "bad directive name \"%s\"",
                        excerpt(d[i].name, ex));
        for (size_t j = 0; j < i; j++)
            if (strcmp(d[i].name, d[j].name) == 0) /* browsers ignore the second one */
                return fail(err, errlen, LH_ERR_INVALID, "%s: repeated directive", d[i].name);
        if (d[i].nsources > 0 && d[i].sources == NULL)
            return fail(err, errlen, LH_ERR_INVALID, "%s: missing sources", d[i].name);
        for (size_t j = 0; j < d[i].nsources; j++) {
            enum lh_status st =
                csp_source_ok(d[i].name, d[i].sources[j], d[i].nsources, err, errlen);
            if (st != LH_OK)
                return st;
        }
    }

    for (size_t i = 0; i < n; i++) {
        if (i > 0 && !put(out, size, &pos, "; ", 2))
            goto too_long;
        if (!put(out, size, &pos, d[i].name, strlen(d[i].name)))
            goto too_long;
        for (size_t j = 0; j < d[i].nsources; j++) {
            const char *src = d[i].sources[j];
            size_t len = strlen(src);
            if (strcmp(src, "'nonce'") == 0) {
                src = nonce_src;
                len = sizeof(nonce_src) - 1;
            }
            if (!put(out, size, &pos, " ", 1) || !put(out, size, &pos, src, len))
                goto too_long;
        }
    }
    out[pos] = '\0';
    return LH_OK;

too_long:
    out[0] = '\0';
    return fail(err, errlen, LH_ERR_NOMEM, "policy too long");
}

/* -- Header sets ------------------------------------------------------------- */

struct entry {
    void *mem;  /* one allocation holding cuts, name and lit; NULL: unused */
    char *name; /* NUL-terminated */
    char *lit;  /* the value with every {nonce} removed, NUL-terminated */
    size_t lit_len;
    size_t *cuts; /* ascending offsets into lit where the nonce goes */
    size_t ncuts;
};

struct lh_header_set {
    struct entry *v;
    size_t n, cap;
    struct entry hsts; /* hsts.mem == NULL: no HSTS */
};

static int is_tchar(unsigned char c)
{
    /* RFC 9110 section 5.6.2 */
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static enum lh_status check_name(const char *name, char *err, size_t errlen)
{
    char ex[48];
    size_t i;

    if (name == NULL || name[0] == '\0')
        return fail(err, errlen, LH_ERR_INVALID, "empty header name");
    for (i = 0; name[i] != '\0'; i++) {
        if (i >= LH_HEADER_NAME_MAX)
            return fail(err, errlen, LH_ERR_INVALID, "header name \"%s\" too long (max %d)",
                        excerpt(name, ex), LH_HEADER_NAME_MAX);
        if (!is_tchar((unsigned char)name[i]))
            return fail(err, errlen, LH_ERR_INVALID, "bad header name \"%s\"", excerpt(name, ex));
    }
    return LH_OK;
}

/* Checks value (for header name) and fills e, which the caller frees with
 * entry_free. The set is not touched. */
static enum lh_status entry_make(struct entry *e, const char *name, const char *value, char *err,
                                 size_t errlen)
{
    size_t vlen, name_len, ncuts = 0, emitted;
    const char *p;
    char *q;

    memset(e, 0, sizeof(*e));
    if (value == NULL || value[0] == '\0')
        return fail(err, errlen, LH_ERR_INVALID, "%s: empty value", name);
    vlen = strlen(value);
    for (size_t i = 0; i < vlen; i++) {
        unsigned char c = (unsigned char)value[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f) /* CR and LF would split the response */
            return fail(err, errlen, LH_ERR_INVALID, "%s: control character in value", name);
    }
    if (value[0] == ' ' || value[0] == '\t' || value[vlen - 1] == ' ' || value[vlen - 1] == '\t')
        return fail(err, errlen, LH_ERR_INVALID, "%s: leading or trailing whitespace in value",
                    name);
    for (p = strstr(value, PLACEHOLDER); p != NULL; p = strstr(p + PLACEHOLDER_LEN, PLACEHOLDER))
        ncuts++;
    emitted = vlen - ncuts * PLACEHOLDER_LEN + ncuts * LH_NONCE_LEN;
    if (emitted > LH_HEADER_VALUE_MAX)
        return fail(err, errlen, LH_ERR_INVALID, "%s: value too long (%zu bytes, max %d)", name,
                    emitted, LH_HEADER_VALUE_MAX);

    name_len = strlen(name);
    e->mem = malloc(ncuts * sizeof(size_t) + name_len + 1 + vlen + 1);
    if (e->mem == NULL)
        return fail(err, errlen, LH_ERR_NOMEM, "out of memory");
    e->cuts = e->mem;
    e->ncuts = ncuts;
    e->name = (char *)(e->cuts + ncuts);
    memcpy(e->name, name, name_len + 1);
    e->lit = e->name + name_len + 1;

    /* Copy the literal pieces, recording where each placeholder was. */
    q = e->lit;
    ncuts = 0;
    for (p = value;;) {
        const char *ph = strstr(p, PLACEHOLDER);
        size_t len = ph != NULL ? (size_t)(ph - p) : strlen(p);
        memcpy(q, p, len);
        q += len;
        if (ph == NULL)
            break;
        e->cuts[ncuts++] = (size_t)(q - e->lit);
        p = ph + PLACEHOLDER_LEN;
    }
    *q = '\0';
    e->lit_len = (size_t)(q - e->lit);
    return LH_OK;
}

static void entry_free(struct entry *e)
{
    free(e->mem);
    memset(e, 0, sizeof(*e));
}

struct lh_header_set *lh_header_set_new(void)
{
    return calloc(1, sizeof(struct lh_header_set));
}

void lh_header_set_free(struct lh_header_set *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->n; i++)
        entry_free(&s->v[i]);
    entry_free(&s->hsts);
    free(s->v);
    free(s);
}

/* Headers that frame the message or describe one answer: from a policy, sent
 * with every answer, they would contradict the server's own (a Content-Length
 * beside its chunked Transfer-Encoding) or the handler's. */
static int framing_or_server(const char *name)
{
    static const char *const names[] = {"Content-Length", "Transfer-Encoding", "Connection",
                                        "Keep-Alive",     "Upgrade",           "Trailer",
                                        "Date",           "X-Request-Id",      "Content-Type",
                                        "Content-Encoding", "Location",        "Set-Cookie"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcasecmp(name, names[i]) == 0)
            return 1;
    return 0;
}

enum lh_status lh_header_set_add(struct lh_header_set *s, const char *name, const char *value,
                                 char *err, size_t errlen)
{
    struct entry e;
    enum lh_status st;
    size_t i;

    if (s == NULL)
        return fail(err, errlen, LH_ERR_INVALID, "no header set");
    st = check_name(name, err, errlen);
    if (st != LH_OK)
        return st;
    if (strcasecmp(name, HSTS_NAME) == 0)
        return fail(err, errlen, LH_ERR_INVALID, "%s: set it as hsts (sent on HTTPS only)", name);
    if (framing_or_server(name))
        return fail(err, errlen, LH_ERR_INVALID,
                    "%s: the server or the handler sets it, not a header policy", name);
    for (i = 0; i < s->n; i++)
        if (strcasecmp(s->v[i].name, name) == 0)
            break;
    if (i == s->n && s->n >= LH_HEADER_SET_MAX)
        return fail(err, errlen, LH_ERR_INVALID, "too many headers (max %d)", LH_HEADER_SET_MAX);
    if (i == s->n && s->n == s->cap) {
        size_t cap = s->cap == 0 ? 8 : s->cap * 2;
        struct entry *v = realloc(s->v, cap * sizeof(*v));
        if (v == NULL)
            return fail(err, errlen, LH_ERR_NOMEM, "out of memory");
        s->v = v;
        s->cap = cap;
    }
    st = entry_make(&e, name, value, err, errlen);
    if (st != LH_OK)
        return st;
    if (i < s->n)
        entry_free(&s->v[i]); /* same name: the new value takes the old place */
    else
        s->n++;
    s->v[i] = e;
    return LH_OK;
}

enum lh_status lh_header_set_hsts(struct lh_header_set *s, const char *value, char *err,
                                  size_t errlen)
{
    struct entry e;
    enum lh_status st;

    if (s == NULL)
        return fail(err, errlen, LH_ERR_INVALID, "no header set");
    st = entry_make(&e, HSTS_NAME, value, err, errlen);
    if (st != LH_OK)
        return st;
    entry_free(&s->hsts);
    s->hsts = e;
    return LH_OK;
}

enum lh_status lh_header_set_csp(struct lh_header_set *s, const struct lh_csp_directive *d,
                                 size_t n, const char *report_uri, int report_only, char *err,
                                 size_t errlen)
{
    struct lh_csp_directive all[LH_CSP_MAX_DIRECTIVES + 1];
    char value[LH_HEADER_VALUE_MAX + 1];
    enum lh_status st;

    if (report_uri != NULL) {
        if (n + 1 > LH_CSP_MAX_DIRECTIVES)
            return fail(err, errlen, LH_ERR_INVALID, "too many directives (max %d)",
                        LH_CSP_MAX_DIRECTIVES);
        if (n > 0 && d == NULL)
            return fail(err, errlen, LH_ERR_INVALID, "no directives");
        if (n > 0)
            memcpy(all, d, n * sizeof(*d));
        all[n].name = "report-uri";
        all[n].sources = &report_uri;
        all[n].nsources = 1;
        d = all;
        n++;
    }
    st = lh_csp_build(d, n, value, sizeof(value), err, errlen);
    if (st != LH_OK)
        return st;
    return lh_header_set_add(
        s, report_only ? "Content-Security-Policy-Report-Only" : "Content-Security-Policy", value,
        err, errlen);
}

int lh_header_set_uses_nonce(const struct lh_header_set *s)
{
    if (s == NULL)
        return 0;
    if (s->hsts.ncuts > 0)
        return 1;
    for (size_t i = 0; i < s->n; i++)
        if (s->v[i].ncuts > 0)
            return 1;
    return 0;
}

static void emit_one(const struct entry *e, const char *nonce, size_t nonce_len, lh_header_fn fn,
                     void *arg)
{
    char buf[LH_HEADER_VALUE_MAX + 1];
    size_t pos = 0, from = 0;

    if (e->ncuts == 0) {
        fn(arg, e->name, e->lit);
        return;
    }
    /* entry_make bounded lit_len + ncuts * LH_NONCE_LEN by LH_HEADER_VALUE_MAX. */
    for (size_t i = 0; i < e->ncuts; i++) {
        memcpy(buf + pos, e->lit + from, e->cuts[i] - from);
        pos += e->cuts[i] - from;
        memcpy(buf + pos, nonce, nonce_len);
        pos += nonce_len;
        from = e->cuts[i];
    }
    memcpy(buf + pos, e->lit + from, e->lit_len - from);
    pos += e->lit_len - from;
    buf[pos] = '\0';
    fn(arg, e->name, buf);
}

void lh_header_set_emit(const struct lh_header_set *s, const char *nonce, int https,
                        lh_header_fn fn, void *arg)
{
    size_t nonce_len = LH_NONCE_LEN;

    if (s == NULL || fn == NULL)
        return;
    if (!lh_nonce_valid(nonce)) {
        nonce = "";
        nonce_len = 0;
    }
    for (size_t i = 0; i < s->n; i++)
        emit_one(&s->v[i], nonce, nonce_len, fn, arg);
    if (https && s->hsts.mem != NULL)
        emit_one(&s->hsts, nonce, nonce_len, fn, arg);
}
