/* src/common.c: status texts, clocks and cache-line allocation. */
#include "luahost/common.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const char *lh_status_str(enum lh_status st)
{
    switch (st) {
    case LH_OK:
        return "ok";
    case LH_ERR_NOMEM:
        return "out of memory";
    case LH_ERR_INVALID:
        return "invalid argument";
    case LH_ERR_IO:
        return "i/o error";
    case LH_ERR_TIMEOUT:
        return "timeout";
    case LH_ERR_LUA:
        return "lua error";
    case LH_ERR_NOT_FOUND:
        return "not found";
    case LH_ERR_CONFLICT:
        return "conflict";
    case LH_ERR_CLOSED:
        return "closed";
    }
    return "unknown status";
}

static double seconds_of(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double lh_monotonic_seconds(void)
{
    return seconds_of(CLOCK_MONOTONIC);
}

double lh_wall_seconds(void)
{
    return seconds_of(CLOCK_REALTIME);
}

struct timespec lh_timespec_of(double t)
{
    struct timespec ts;
    if (t < 0)
        t = 0;
    ts.tv_sec = (time_t)t;
    ts.tv_nsec = (long)((t - (double)ts.tv_sec) * 1e9);
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

void *lh_calloc_lines(size_t n, size_t size)
{
    if (n == 0 || size == 0 || size % LH_CACHE_LINE != 0 || n > SIZE_MAX / size)
        return NULL;
    void *p = aligned_alloc(LH_CACHE_LINE, n * size);
    if (p != NULL)
        memset(p, 0, n * size);
    return p;
}

size_t lh_utf8_char(const unsigned char *s, size_t n)
{
    unsigned char b = s[0], lo = 0x80, hi = 0xbf; /* the second byte's range */
    size_t more;

    if (b < 0x80)
        return 1;
    if (b >= 0xc2 && b <= 0xdf) {
        more = 1;
    } else if (b >= 0xe0 && b <= 0xef) {
        more = 2;
        if (b == 0xe0)
            lo = 0xa0;
        else if (b == 0xed)
            hi = 0x9f;
    } else if (b >= 0xf0 && b <= 0xf4) {
        more = 3;
        if (b == 0xf0)
            lo = 0x90;
        else if (b == 0xf4)
            hi = 0x8f;
    } else {
        return 0;
    }
    if (n - 1 < more || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t k = 2; k <= more; k++)
        if (s[k] < 0x80 || s[k] > 0xbf)
            return 0;
    return more + 1;
}
