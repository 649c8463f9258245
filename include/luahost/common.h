/* include/luahost/common.h: status codes, clocks and allocation shared by every luahost module.
 * Thread safety: everything here is constant data. */
#ifndef LUAHOST_COMMON_H
#define LUAHOST_COMMON_H
#include <stddef.h>
#include <time.h>

/* Per-thread state that is written on every request sits alone on its
 * cache lines: two threads writing one line slow each other down. */
#define LH_CACHE_LINE 64

enum lh_status {
    LH_OK = 0,
    LH_ERR_NOMEM,     /* an allocation failed */
    LH_ERR_INVALID,   /* bad input from the caller or the client */
    LH_ERR_IO,        /* a system call failed */
    LH_ERR_TIMEOUT,   /* a deadline passed */
    LH_ERR_LUA,       /* a Lua script failed to load or run */
    LH_ERR_NOT_FOUND, /* the thing asked for does not exist */
    LH_ERR_CONFLICT,  /* it clashes with something that exists */
    LH_ERR_CLOSED,    /* the object is shutting down */
};

/* A short lowercase description of st ("out of memory"); never NULL. */
const char *lh_status_str(enum lh_status st);

/* Seconds on a clock that never jumps (timeouts, ages, durations). */
double lh_monotonic_seconds(void);
/* Seconds since the Unix epoch (what clients and Redis see). */
double lh_wall_seconds(void);
/* Seconds (clamped at 0) as a timespec: a duration for nanosleep, or a
 * point of lh_monotonic_seconds for a condition variable on CLOCK_MONOTONIC. */
struct timespec lh_timespec_of(double t);

/* n zeroed elements of size bytes (a multiple of LH_CACHE_LINE), the first
 * on a line boundary; NULL when memory runs out. Freed with free(). */
void *lh_calloc_lines(size_t n, size_t size);

/* The length (1 to 4) of the UTF-8 character that starts the n > 0 bytes at
 * s, or 0 when they start with none: a stray or truncated byte, an overlong
 * form, a surrogate or a code point past U+10FFFF. */
size_t lh_utf8_char(const unsigned char *s, size_t n);

#endif
