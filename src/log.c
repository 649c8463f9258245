/* src/log.c: error log and buffered access log.
 *
 * DESIGN
 * ------
 * Error lines are rare and must not be lost in a crash: each is formatted on
 * the caller's stack and written with one write(2) (O_APPEND makes lines from
 * several threads interleave whole). Access lines are one per request: they
 * are appended to a buffer under `lock`, and the buffer is written when it
 * fills, by the flusher thread every 100 ms, and at close. The lock is held
 * for a memcpy, or for one write(2) when the buffer is full.
 */
#define _GNU_SOURCE /* dup3 */
#include "luahost/log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define ACCESS_BUF_SIZE (64 * 1024)
#define LINE_MAX_LEN 8192
#define FLUSH_INTERVAL_NS (100 * 1000 * 1000L)

static struct {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    int error_fd;
    int access_fd; /* -1: access log off */
    enum lh_log_level level;
    int flusher_running;
    int stopping;
    pthread_t flusher;
    char error_path[PATH_MAX], access_path[PATH_MAX]; /* "" for a standard stream or off */
    size_t used;
    size_t access_lost;           /* lines dropped since the access log last took a write */
    time_t access_error_reported; /* 0: the access log is writable */
    char buf[ACCESS_BUF_SIZE];
} logger = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .wake = PTHREAD_COND_INITIALIZER,
    .error_fd = STDERR_FILENO,
    .access_fd = -1,
    .level = LH_LOG_INFO,
};

static const char *level_names[] = {"debug", "info", "warn", "error"};

const char *lh_log_level_name(enum lh_log_level level)
{
    return level_names[level];
}

enum lh_status lh_log_level_parse(const char *name, enum lh_log_level *out)
{
    for (int i = LH_LOG_DEBUG; i <= LH_LOG_ERROR; i++) {
        if (strcmp(name, level_names[i]) == 0) {
            *out = (enum lh_log_level)i;
            return LH_OK;
        }
    }
    return LH_ERR_INVALID;
}

int lh_log_enabled(enum lh_log_level level)
{
    return level >= logger.level;
}

/* "2026-11-25T10:20:30.123Z" into out (at least 25 bytes); returns its length.
 * The part up to the seconds is formatted once per second per thread. */
static size_t format_time(char *out, size_t size)
{
    static _Thread_local time_t cached_second = -1;
    static _Thread_local char cached[24];
    static _Thread_local size_t cached_len;
    struct timespec ts;
    struct tm tm;

    clock_gettime(CLOCK_REALTIME, &ts);
    if (ts.tv_sec != cached_second) {
        gmtime_r(&ts.tv_sec, &tm);
        cached_len = strftime(cached, sizeof(cached), "%Y-%m-%dT%H:%M:%S", &tm);
        cached_second = ts.tv_sec;
    }
    if (size < cached_len + 6)
        return 0;
    unsigned ms = (unsigned)(ts.tv_nsec / 1000000);
    memcpy(out, cached, cached_len);
    out[cached_len] = '.';
    out[cached_len + 1] = (char)('0' + ms / 100);
    out[cached_len + 2] = (char)('0' + ms / 10 % 10);
    out[cached_len + 3] = (char)('0' + ms % 10);
    out[cached_len + 4] = 'Z';
    return cached_len + 5;
}

/* Adds snprintf's result m to n without passing the end of a size-byte buffer. */
static size_t advance(size_t n, int m, size_t size)
{
    if (m < 0)
        return n;
    return n + (size_t)m < size ? n + (size_t)m : size - 1;
}

/* Returns 0, or the errno of the write that failed; the rest is dropped. */
static int write_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return errno;
        }
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

void lh_log(enum lh_log_level level, const char *request_id, const char *fmt, ...)
{
    char line[LINE_MAX_LEN];
    va_list ap;

    if (level < logger.level)
        return;
    size_t n = format_time(line, sizeof(line));
    int m = snprintf(line + n, sizeof(line) - n, " [%s] %s%s", level_names[level],
                     request_id ? request_id : "", request_id ? ": " : "");
    n = advance(n, m, sizeof(line) - 1);
    va_start(ap, fmt);
    m = vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
    va_end(ap);
    n = advance(n, m, sizeof(line) - 1);
    line[n++] = '\n';
    (void)write_all(logger.error_fd, line, n); /* a failing error log has nowhere to report to */
}

/* An access log that cannot be written (a full disk) is reported in the
 * error log when it starts failing, once a minute while it fails, and when
 * it takes lines again, with the count of lines lost. */
static void note_access_write(int err, const char *buf, size_t len)
{
    time_t now = time(NULL);
    if (err == 0) {
        if (logger.access_error_reported != 0)
            lh_log(LH_LOG_WARN, NULL, "the access log is written again; %zu line(s) were lost",
                   logger.access_lost);
        logger.access_lost = 0;
        logger.access_error_reported = 0;
        return;
    }
    for (const char *p = buf; (p = memchr(p, '\n', len - (size_t)(p - buf))) != NULL; p++)
        logger.access_lost++;
    if (logger.access_error_reported == 0 || now - logger.access_error_reported >= 60) {
        lh_log(LH_LOG_ERROR, NULL, "cannot write the access log %s: %s; %zu line(s) lost so far",
               logger.access_path[0] ? logger.access_path : "(standard output)", strerror(err),
               logger.access_lost);
        logger.access_error_reported = now;
    }
}

static void flush_locked(void)
{
    if (logger.used > 0 && logger.access_fd >= 0)
        note_access_write(write_all(logger.access_fd, logger.buf, logger.used), logger.buf,
                          logger.used);
    logger.used = 0;
}

void lh_log_flush(void)
{
    pthread_mutex_lock(&logger.lock);
    flush_locked();
    pthread_mutex_unlock(&logger.lock);
}

size_t lh_log_escape(char *out, size_t size, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t n = 0;

    for (size_t i = 0; i < len && n + 4 < size; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            out[n++] = '\\';
            out[n++] = (char)c;
        } else if (c < 0x20 || c >= 0x7f) {
            out[n++] = '\\';
            out[n++] = 'x';
            out[n++] = hex[c >> 4];
            out[n++] = hex[c & 15];
        } else {
            out[n++] = (char)c;
        }
    }
    return n;
}

char *lh_log_escaped(const char *s, size_t len)
{
    size_t size = len * 4 + 1; /* \xNN at most per byte */
    char *out = len < SIZE_MAX / 4 ? malloc(size) : NULL;
    if (out != NULL)
        out[lh_log_escape(out, size, s, len)] = '\0';
    return out;
}

void lh_log_access(const struct lh_access_entry *e)
{
    char line[LINE_MAX_LEN];
    size_t n;
    int m;

    if (logger.access_fd < 0)
        return;
    n = format_time(line, sizeof(line));
    m = snprintf(line + n, 256, " %.64s %.64s \"", e->request_id, e->client);
    n = advance(n, m, 256);
    n += lh_log_escape(line + n, 64, e->method, strlen(e->method));
    line[n++] = ' ';
    n += lh_log_escape(line + n, sizeof(line) - n - 128, e->path, strlen(e->path));
    m = snprintf(line + n, sizeof(line) - n, "\" %u %zu %.3fms\n", e->status, e->bytes,
                 e->duration_ms);
    n = advance(n, m, sizeof(line));

    pthread_mutex_lock(&logger.lock);
    if (logger.used + n > sizeof(logger.buf))
        flush_locked();
    memcpy(logger.buf + logger.used, line, n);
    logger.used += n;
    pthread_mutex_unlock(&logger.lock);
}

static void *flusher_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&logger.lock);
    while (!logger.stopping) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += FLUSH_INTERVAL_NS;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&logger.wake, &logger.lock, &until);
        flush_locked();
    }
    pthread_mutex_unlock(&logger.lock);
    return NULL;
}

static int open_log_file(const char *path, int std_fd)
{
    if (path == NULL || strcmp(path, "-") == 0)
        return std_fd;
    return open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
}

/* "cannot open the <which> log <path>: <reason>", for *err: the logs are
 * opened from the main thread only. */
static const char *open_failure(const char *which, const char *path)
{
    static char why[PATH_MAX + 128];
    snprintf(why, sizeof(why), "cannot open the %s log %s: %s", which, path, strerror(errno));
    return why;
}

/* The path kept for lh_log_reopen: "" for a standard stream or off. */
static void keep_path(char *kept, const char *path)
{
    int file = path != NULL && strcmp(path, "-") != 0 && strcmp(path, "off") != 0;
    snprintf(kept, PATH_MAX, "%s", file ? path : "");
}

enum lh_status lh_log_open(const char *error_path, const char *access_path,
                           enum lh_log_level level, const char **err)
{
    int access_off = access_path != NULL && strcmp(access_path, "off") == 0;
    int efd = open_log_file(error_path, STDERR_FILENO);
    if (efd < 0) {
        *err = open_failure("error", error_path);
        return LH_ERR_IO;
    }
    int afd = access_off ? -1 : open_log_file(access_path, STDOUT_FILENO);
    if (!access_off && afd < 0) {
        *err = open_failure("access", access_path);
        if (efd != STDERR_FILENO)
            close(efd);
        return LH_ERR_IO;
    }

    pthread_mutex_lock(&logger.lock);
    flush_locked();
    if (logger.error_fd != STDERR_FILENO)
        close(logger.error_fd);
    if (logger.access_fd > STDERR_FILENO)
        close(logger.access_fd);
    logger.error_fd = efd;
    logger.access_fd = afd;
    keep_path(logger.error_path, error_path);
    keep_path(logger.access_path, access_path);
    logger.level = level;
    logger.stopping = 0;
    int start = !logger.flusher_running;
    logger.flusher_running = 1;
    pthread_mutex_unlock(&logger.lock);

    if (start && pthread_create(&logger.flusher, NULL, flusher_main, NULL) != 0) {
        /* Without the flusher, lines still go out when the buffer fills and at close. */
        logger.flusher_running = 0;
    }
    return LH_OK;
}

/* Points fd at a fresh open of path. dup3 swaps the file under the same
 * descriptor at once, so a thread writing an error line meanwhile never
 * meets a closed descriptor. */
static int reopen_as(const char *path, int fd)
{
    if (path[0] == '\0' || fd < 0)
        return 1;
    int fresh = open_log_file(path, -1);
    if (fresh < 0)
        return 0;
    int ok = dup3(fresh, fd, O_CLOEXEC) >= 0;
    close(fresh);
    return ok;
}

enum lh_status lh_log_reopen(const char **err)
{
    static char why[2 * (PATH_MAX + 128) + 2];
    size_t n = 0;

    why[0] = '\0';
    pthread_mutex_lock(&logger.lock);
    flush_locked(); /* the buffered lines belong to the old file */
    if (!reopen_as(logger.error_path, logger.error_fd))
        n = (size_t)snprintf(why, sizeof(why), "%s", open_failure("error", logger.error_path));
    if (!reopen_as(logger.access_path, logger.access_fd))
        snprintf(why + n, sizeof(why) - n, "%s%s", n ? "; " : "",
                 open_failure("access", logger.access_path));
    pthread_mutex_unlock(&logger.lock);
    if (why[0] == '\0')
        return LH_OK;
    *err = why;
    return LH_ERR_IO;
}

void lh_log_close(void)
{
    pthread_mutex_lock(&logger.lock);
    int running = logger.flusher_running;
    logger.stopping = 1;
    logger.flusher_running = 0;
    pthread_cond_signal(&logger.wake);
    pthread_mutex_unlock(&logger.lock);
    if (running)
        pthread_join(logger.flusher, NULL);

    pthread_mutex_lock(&logger.lock);
    flush_locked();
    if (logger.access_fd > STDERR_FILENO)
        close(logger.access_fd);
    if (logger.error_fd != STDERR_FILENO)
        close(logger.error_fd);
    logger.access_fd = -1;
    logger.error_fd = STDERR_FILENO;
    logger.error_path[0] = logger.access_path[0] = '\0';
    pthread_mutex_unlock(&logger.lock);
}
