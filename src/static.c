/* src/static.c: which static file answers, and how it may be cached (see
 * include/luahost/static.h). */
#define _GNU_SOURCE /* strptime, timegm */
#include "luahost/static.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define PREFIX "/static/"
#define SERVICE_WORKER "sw.js"

struct lh_static {
    char root[PATH_MAX]; /* real path, no trailing slash */
    size_t root_len;
};

struct lh_static *lh_static_new(const char *root, char *err, size_t errlen)
{
    struct lh_static *s = calloc(1, sizeof(*s));
    struct stat st;

    if (s == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (realpath(root, s->root) == NULL || stat(s->root, &st) != 0 || !S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "static folder %s: %s", root,
                 errno ? strerror(errno) : "not a directory");
        free(s);
        return NULL;
    }
    s->root_len = strlen(s->root);
    return s;
}

void lh_static_free(struct lh_static *s)
{
    free(s);
}

const char *lh_static_route(const char *path)
{
    if (strcmp(path, "/" SERVICE_WORKER) == 0)
        return SERVICE_WORKER;
    if (strncmp(path, PREFIX, sizeof(PREFIX) - 1) == 0 && path[sizeof(PREFIX) - 1] != '\0')
        return path + sizeof(PREFIX) - 1;
    return NULL;
}

/* Every segment a plain name: no "", ".", "..", backslash or control byte. */
static int safe_relative(const char *rel)
{
    const char *seg = rel;
    for (const char *p = rel;; p++) {
        if (*p == '/' || *p == '\0') {
            size_t n = (size_t)(p - seg);
            if (n == 0 || (n == 1 && seg[0] == '.') || (n == 2 && seg[0] == '.' && seg[1] == '.'))
                return 0;
            if (*p == '\0')
                return 1;
            seg = p + 1;
        } else if (*p == '\\' || (unsigned char)*p < 0x20 || *p == 0x7f) {
            return 0;
        }
    }
}

/* Whether a segment of rel (already safe_relative) starts with a dot: a
 * hidden file (.env, .git, an editor's .app.js.swp) is no static file. */
static int hidden(const char *rel)
{
    return rel[0] == '.' || strstr(rel, "/.") != NULL;
}

/* Opens root/rel when it is a regular file whose real path is inside the
 * root; -1 with errno ENOENT otherwise (a symlink leaving the root too: its
 * target is nobody's business). */
static int open_inside(const struct lh_static *s, const char *rel, const char *suffix,
                       struct stat *st)
{
    char path[PATH_MAX], real[PATH_MAX];

    if ((size_t)snprintf(path, sizeof(path), "%s/%s%s", s->root, rel, suffix) >= sizeof(path) ||
        realpath(path, real) == NULL) {
        errno = ENOENT;
        return -1;
    }
    if (strncmp(real, s->root, s->root_len) != 0 || real[s->root_len] != '/') {
        errno = ENOENT;
        return -1;
    }
    /* O_NONBLOCK: opening a FIFO for reading would otherwise wait for a
     * writer, and hold the serving thread and its connections with it. It
     * changes nothing for a regular file. */
    int fd = open(real, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0)
        return -1;
    if (fstat(fd, st) != 0 || !S_ISREG(st->st_mode)) {
        close(fd);
        errno = ENOENT;
        return -1;
    }
    return fd;
}

static const char *content_type(const char *rel)
{
    static const struct {
        const char *ext, *type;
    } TYPES[] = {
        {".html", "text/html; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},
        {".js", "text/javascript; charset=utf-8"},
        {".mjs", "text/javascript; charset=utf-8"},
        {".json", "application/json"},
        {".webmanifest", "application/manifest+json"},
        {".svg", "image/svg+xml"},
        {".png", "image/png"},
        {".jpg", "image/jpeg"},
        {".jpeg", "image/jpeg"},
        {".gif", "image/gif"},
        {".webp", "image/webp"},
        {".ico", "image/x-icon"},
        {".txt", "text/plain; charset=utf-8"},
        {".woff2", "font/woff2"},
        {".woff", "font/woff"},
        {".map", "application/json"},
        {".wasm", "application/wasm"},
        {".avif", "image/avif"},
        {".xml", "application/xml"},
        {".pdf", "application/pdf"},
        {".csv", "text/csv; charset=utf-8"},
        {".mp4", "video/mp4"},
        {".webm", "video/webm"},
        {".mp3", "audio/mpeg"},
        {".ogg", "audio/ogg"},
        {".ttf", "font/ttf"},
        {".otf", "font/otf"},
    };
    const char *dot = strrchr(rel, '.');
    for (size_t i = 0; dot && i < sizeof(TYPES) / sizeof(TYPES[0]); i++) {
        if (strcasecmp(dot, TYPES[i].ext) == 0)
            return TYPES[i].type;
    }
    return "application/octet-stream";
}

/* The file's modification time to the nanosecond, and its size: an edit
 * within the same second changes it too. */
static void version_of(const struct stat *st, char out[LH_STATIC_TAG_MAX])
{
    snprintf(out, LH_STATIC_TAG_MAX, "%llx.%lx-%llx", (unsigned long long)st->st_mtim.tv_sec,
             (unsigned long)st->st_mtim.tv_nsec, (unsigned long long)st->st_size);
}

static int older(const struct stat *a, const struct stat *b)
{
    return a->st_mtim.tv_sec < b->st_mtim.tv_sec ||
           (a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec < b->st_mtim.tv_nsec);
}

enum lh_status lh_static_open(const struct lh_static *s, const char *rel, int accept_gzip,
                              struct lh_static_file *f)
{
    struct stat st, gz;

    memset(f, 0, sizeof(*f));
    f->fd = -1;
    if (!safe_relative(rel))
        return LH_ERR_INVALID;
    if (hidden(rel))
        return LH_ERR_NOT_FOUND;
    int fd = open_inside(s, rel, "", &st);
    if (fd < 0)
        return LH_ERR_NOT_FOUND;
    version_of(&st, f->version);
    f->content_type = content_type(rel);
    f->mtime = st.st_mtime;
    f->size = st.st_size;
    int gz_fd = accept_gzip ? open_inside(s, rel, ".gz", &gz) : -1;
    /* A .gz older than its file is what the file was: sent under the
     * file's new version, a browser would keep it for a year. */
    if (gz_fd >= 0 && older(&gz, &st)) {
        close(gz_fd);
        gz_fd = -1;
    }
    if (gz_fd >= 0) {
        close(fd);
        fd = gz_fd;
        f->size = gz.st_size;
        f->gzip = 1;
    }
    f->fd = fd;
    snprintf(f->etag, sizeof(f->etag), "\"%s%s\"", f->version, f->gzip ? "-gz" : "");
    return LH_OK;
}

enum lh_status lh_static_version(const struct lh_static *s, const char *rel,
                                 char out[LH_STATIC_TAG_MAX])
{
    struct stat st;
    if (!safe_relative(rel))
        return LH_ERR_INVALID;
    int fd = open_inside(s, rel, "", &st);
    if (fd < 0)
        return LH_ERR_NOT_FOUND;
    close(fd);
    version_of(&st, out);
    return LH_OK;
}

/* -- Validators, ranges, caching --------------------------------------------- */

/* Whether a comma-separated If-None-Match or If-Match list holds etag or
 * "*": weakly (a W/ tag matches too) or strongly (RFC 9110 section 8.8.3.2). */
static int etag_listed(const char *list, const char *etag, int strong)
{
    size_t n = strlen(etag);
    for (const char *p = list; *p;) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        int weak = strncmp(p, "W/", 2) == 0;
        if (weak)
            p += 2;
        if (*p == '*' || (!(weak && strong) && strncmp(p, etag, n) == 0 &&
                          (p[n] == '\0' || p[n] == ',' || p[n] == ' ' || p[n] == '\t')))
            return 1;
        while (*p && *p != ',')
            p++;
    }
    return 0;
}

/* An HTTP date: an IMF-fixdate, or one of the two obsolete forms a
 * recipient must still read (RFC 9110 section 5.6.7); 0 for anything else. */
static int parse_http_date(const char *text, time_t *out)
{
    static const char *const forms[] = {
        "%a, %d %b %Y %H:%M:%S GMT", /* Sun, 06 Nov 1994 08:49:37 GMT */
        "%A, %d-%b-%y %H:%M:%S GMT", /* Sunday, 06-Nov-94 08:49:37 GMT (RFC 850) */
        "%a %b %e %H:%M:%S %Y",      /* Sun Nov  6 08:49:37 1994 (asctime) */
    };
    for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
        struct tm tm;
        memset(&tm, 0, sizeof(tm));
        const char *end = strptime(text, forms[i], &tm);
        if (end != NULL && *end == '\0') {
            *out = timegm(&tm);
            return 1;
        }
    }
    return 0;
}

int lh_static_not_modified(const struct lh_static_file *f, const char *if_none_match,
                           const char *if_modified_since)
{
    time_t since;

    if (if_none_match != NULL)
        return etag_listed(if_none_match, f->etag, 0);
    /* A date later than the server's clock is invalid, and ignored (RFC 9110
     * section 13.1.3): a file changed before it would otherwise stay stale. */
    return if_modified_since != NULL && parse_http_date(if_modified_since, &since) &&
           f->mtime <= since && since <= time(NULL);
}

int lh_static_precondition_failed(const struct lh_static_file *f, const char *if_match,
                                  const char *if_unmodified_since)
{
    time_t since;

    if (if_match != NULL)
        return !etag_listed(if_match, f->etag, 1);
    /* An unreadable date is ignored (RFC 9110 section 13.1.4). */
    return if_unmodified_since != NULL && parse_http_date(if_unmodified_since, &since) &&
           f->mtime > since;
}

int lh_static_range_applies(const struct lh_static_file *f, const char *if_range)
{
    time_t date;

    if (if_range == NULL)
        return 1;
    if (if_range[0] == '"')
        return strcmp(if_range, f->etag) == 0;
    return parse_http_date(if_range, &date) && date == f->mtime;
}

/* Parses decimal digits at *p into *out, past 18 digits saturating at a
 * value larger than any file (a range past the end is still one); 0 when
 * there are none. */
static int parse_offset(const char **p, off_t *out)
{
    off_t v = 0;
    int digits = 0;
    for (; **p >= '0' && **p <= '9'; (*p)++)
        v = ++digits > 18 ? INT64_MAX : v * 10 + (**p - '0');
    *out = v;
    return digits > 0;
}

enum lh_static_range lh_static_range(const char *range, off_t size, off_t *start, off_t *len)
{
    off_t a = 0, b = 0;
    const char *p = range;

    if (range == NULL || strncasecmp(p, "bytes=", 6) != 0)
        return LH_RANGE_NONE;
    p += 6;
    while (*p == ' ')
        p++;
    if (*p == '-') { /* the last b bytes */
        p++;
        if (!parse_offset(&p, &b) || *p != '\0')
            return LH_RANGE_NONE;
        if (b == 0 || size == 0)
            return LH_RANGE_UNSATISFIABLE;
        *start = b >= size ? 0 : size - b;
        *len = size - *start;
        return LH_RANGE_OK;
    }
    if (!parse_offset(&p, &a) || *p != '-')
        return LH_RANGE_NONE;
    p++;
    int has_end = parse_offset(&p, &b);
    if (*p != '\0' || (has_end && b < a))
        return LH_RANGE_NONE;
    if (a >= size)
        return LH_RANGE_UNSATISFIABLE;
    if (!has_end || b >= size)
        b = size - 1;
    *start = a;
    *len = b - a + 1;
    return LH_RANGE_OK;
}

static int has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcasecmp(s + n - k, suffix) == 0;
}

const char *lh_static_cache_control(const char *rel, const char *v,
                                    const struct lh_static_file *f)
{
    if (strcmp(rel, SERVICE_WORKER) == 0 || has_suffix(rel, ".html") ||
        has_suffix(rel, ".webmanifest"))
        return "no-cache";
    if (v != NULL && strcmp(v, f->version) == 0)
        return "public, max-age=31536000, immutable";
    return "public, max-age=0, must-revalidate";
}

void lh_static_http_date(time_t t, char *out, size_t len)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, len, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

/* Whether an Accept-Encoding entry's parameters (from params to end) give
 * it a weight above 0: q=0 (or 0.0, 0.00...) refuses, any other accepts. */
static int weighted(const char *params, const char *end)
{
    const char *q = params;
    while (q < end &&
           !(strncasecmp(q, "q=", 2) == 0 && (q == params || q[-1] == ';' || q[-1] == ' ')))
        q++;
    if (q >= end)
        return 1;
    q += 2;
    if (*q != '0')
        return 1;
    for (q++; q < end && (*q == '.' || *q == '0'); q++)
        ;
    return !(q >= end || *q == ' ' || *q == ';');
}

/* gzip (or its alias x-gzip) by name decides; "*" only without it
 * (RFC 9110 section 12.5.3). */
int lh_static_accepts_gzip(const char *accept_encoding)
{
    const char *p = accept_encoding;
    int any = 0;

    while (p != NULL && *p) {
        size_t n = strcspn(p, ",");
        const char *name = p + strspn(p, " \t");
        size_t name_len = strcspn(name, " \t;,");
        const char *params = name + name_len, *end = p + n;
        p = *end ? end + 1 : NULL;
        if (name >= end)
            continue;
        if ((name_len == 4 && strncasecmp(name, "gzip", 4) == 0) ||
            (name_len == 6 && strncasecmp(name, "x-gzip", 6) == 0))
            return weighted(params, end);
        if (name_len == 1 && name[0] == '*')
            any = weighted(params, end);
    }
    return any;
}
