/* include/luahost/log.h: the error log (levels, unbuffered) and the access log
 * (one line per request, buffered and flushed at least every 100 ms).
 * Thread safety: every function may be called from any thread. The logger is
 * process-wide: one process has one error log and one access log. */
#ifndef LUAHOST_LOG_H
#define LUAHOST_LOG_H
#include <stddef.h>
#include "luahost/common.h"

enum lh_log_level { LH_LOG_DEBUG, LH_LOG_INFO, LH_LOG_WARN, LH_LOG_ERROR };

/* Opens the logs. A NULL path or "-" means stderr for the error log and stdout
 * for the access log; "off" disables the access log. Until this is called,
 * errors go to stderr at level info. Returns LH_ERR_IO and sets *err (static
 * text naming the file and the reason) if a file cannot be opened; the
 * previous logs then stay in use. */
enum lh_status lh_log_open(const char *error_path, const char *access_path,
                           enum lh_log_level level, const char **err);
/* Opens each log file again by its path, in place of the one in use (after
 * logrotate moved it, say): lines written meanwhile go to the old file,
 * later ones to the new; none is lost. Standard streams and "off" stay as
 * they are. LH_ERR_IO and *err (static text naming each file that failed,
 * and why) if a file cannot be opened; that log stays on its old file. */
enum lh_status lh_log_reopen(const char **err);
/* Flushes and closes the logs, and stops the flusher thread. */
void lh_log_close(void);

/* Parses "debug", "info", "warn" or "error". Returns LH_ERR_INVALID otherwise. */
enum lh_status lh_log_level_parse(const char *name, enum lh_log_level *out);
const char *lh_log_level_name(enum lh_log_level level);
int lh_log_enabled(enum lh_log_level level);

/* One error-log line: time, level, request id (NULL for none), message. */
void lh_log(enum lh_log_level level, const char *request_id, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Copies len bytes of s into out with ", \, control bytes and every byte
 * past ASCII escaped (\xNN, as nginx does), so that a logged value from a
 * client can neither end its line, forge the next one, nor reach a terminal
 * or log viewer as a C1 control, a line separator or broken UTF-8. Writes at most size - 1 bytes (no terminating NUL)
 * and returns how many; input past that is dropped. */
size_t lh_log_escape(char *out, size_t size, const char *s, size_t len);
/* The same, whole, NUL-terminated, in a buffer the caller frees; NULL when
 * out of memory. For client text inside an error-log line (a request's
 * path, a handler's message that quotes it). */
char *lh_log_escaped(const char *s, size_t len);

struct lh_access_entry {
    const char *request_id;
    const char *client;
    const char *method;
    const char *path;
    unsigned status;
    size_t bytes;
    double duration_ms;
};
/* Appends one access-log line. Control characters, quotes and backslashes in
 * the method and path are escaped so that a client cannot forge log lines. */
void lh_log_access(const struct lh_access_entry *e);
/* Writes out the buffered access-log lines now. */
void lh_log_flush(void);

#endif
