/* include/luahost/static.h: the application's static files.
 *
 * GET and HEAD of /static/<path> are answered from <app>/static/<path>, and
 * /sw.js from <app>/static/sw.js (a service worker's scope is the folder it
 * is served from), by the C core without Lua. This module decides which file
 * answers and with which validators and caching; the transport sends the
 * file itself with sendfile.
 *
 * Nothing outside the root is ever opened: paths with "..", "." or empty
 * segments, backslashes or control characters are refused, and a file whose
 * real path (symlinks resolved) leaves the root is refused too.
 *
 * Thread safety: a struct lh_static is read-only after lh_static_new; every
 * function may be called from any thread. */
#ifndef LUAHOST_STATIC_H
#define LUAHOST_STATIC_H
#include <stddef.h>
#include <sys/types.h>
#include <time.h>
#include "luahost/common.h"

struct lh_static; /* opaque */

/* NULL with the reason in err when root is not a directory. */
struct lh_static *lh_static_new(const char *root, char *err, size_t errlen);
void lh_static_free(struct lh_static *s);

/* The path relative to the root that a request path asks for, or NULL when
 * the path is not a static one. */
const char *lh_static_route(const char *path);

#define LH_STATIC_TAG_MAX 48

struct lh_static_file {
    int fd;                   /* open, read-only; the caller closes it */
    off_t size;
    time_t mtime;
    int gzip;                 /* the .gz variant was chosen */
    const char *content_type; /* static text */
    char version[LH_STATIC_TAG_MAX]; /* mtime (to the ns) and size of the file itself: ?v= */
    char etag[LH_STATIC_TAG_MAX + 8]; /* "version" or "version-gz", quoted */
};

/* Opens rel (as given by lh_static_route). With accept_gzip, a regular
 * <rel>.gz beside it is opened instead. LH_ERR_INVALID for a path that is not
 * plain names (.., ., empty segments, backslashes, control bytes);
 * LH_ERR_NOT_FOUND for anything else that is not a file to serve: missing,
 * a directory, hidden (a segment starting with a dot), or a symlink whose
 * target leaves the root. */
enum lh_status lh_static_open(const struct lh_static *s, const char *rel, int accept_gzip,
                              struct lh_static_file *f);
/* The version tag of rel for links (static.url); LH_ERR_NOT_FOUND. */
enum lh_status lh_static_version(const struct lh_static *s, const char *rel,
                                 char out[LH_STATIC_TAG_MAX]);

/* 1 when the client's copy is current: If-None-Match lists the ETag (or
 * "*"), or, without If-None-Match, If-Modified-Since is not older than the
 * file. Either header may be NULL. */
int lh_static_not_modified(const struct lh_static_file *f, const char *if_none_match,
                           const char *if_modified_since);

/* 1 when the request must get 412: If-Match lists neither "*" nor the ETag
 * (compared strongly), or, without If-Match, the file changed after
 * If-Unmodified-Since. Either header may be NULL. */
int lh_static_precondition_failed(const struct lh_static_file *f, const char *if_match,
                                  const char *if_unmodified_since);

/* 1 when a Range is to be honoured: no If-Range, or one that is the ETag or
 * exactly the file's Last-Modified; otherwise the whole file is sent. */
int lh_static_range_applies(const struct lh_static_file *f, const char *if_range);

enum lh_static_range { LH_RANGE_NONE, LH_RANGE_OK, LH_RANGE_UNSATISFIABLE };
/* A single "bytes=a-b", "bytes=a-" or "bytes=-n" range of a file of size
 * bytes. Anything else (several ranges, other units, garbage) is
 * LH_RANGE_NONE: the whole file is sent, as RFC 9110 allows. */
enum lh_static_range lh_static_range(const char *range, off_t size, off_t *start, off_t *len);

/* Cache-Control for rel: immutable for a year when the URL's version (v,
 * may be NULL) is the file's; no-cache for the service worker, HTML and the
 * manifest; otherwise revalidate every time. */
const char *lh_static_cache_control(const char *rel, const char *v,
                                    const struct lh_static_file *f);

/* Whether an Accept-Encoding value admits gzip: a "gzip" or "*" coding
 * whose weight is not zero. NULL admits nothing. */
int lh_static_accepts_gzip(const char *accept_encoding);

/* RFC 9110 IMF-fixdate of t into out (at least 30 bytes). */
void lh_static_http_date(time_t t, char *out, size_t len);

#endif
