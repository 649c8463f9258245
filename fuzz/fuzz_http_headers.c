/* fuzz/fuzz_http_headers.c: the request headers luahost parses itself:
 * Cookie, Range, the validators (If-None-Match, If-Modified-Since, If-Match,
 * If-Unmodified-Since, If-Range), Accept-Encoding, and a static path, one
 * per line. */
#include <unistd.h>

#include "fuzz.h"
#include "luahost/cookie.h"
#include "luahost/static.h"

/* Reads every byte of each pair, so that a bad length shows under ASan. */
static int count_pair(void *arg, const char *name, size_t name_len, const char *value,
                      size_t value_len)
{
    size_t *sum = arg;
    for (size_t i = 0; i < name_len; i++)
        *sum += (unsigned char)name[i];
    for (size_t i = 0; i < value_len; i++)
        *sum += (unsigned char)value[i];
    return 0;
}

static struct lh_static *root;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *parts[5], err[256];
    int n;
    char *copy = fuzz_parts(data, size, parts, 5, &n);
    size_t total = 0;
    off_t start, len;
    struct lh_static_file f = {.mtime = 1000000000, .etag = "\"1-1\"", .version = "1-1"};

    if (root == NULL)
        root = lh_static_new("/usr/share/doc", err, sizeof(err));
    if (copy == NULL)
        return 0;
    lh_cookie_each(parts[0], strlen(parts[0]), count_pair, &total);
    if (n > 1)
        lh_static_range(parts[1], 1000, &start, &len);
    if (n > 2) {
        lh_static_not_modified(&f, parts[2], parts[2]);
        lh_static_precondition_failed(&f, parts[2], parts[2]);
        lh_static_range_applies(&f, parts[2]);
    }
    if (n > 3)
        lh_static_accepts_gzip(parts[3]);
    if (n > 4 && root != NULL && lh_static_open(root, parts[4], 1, &f) == LH_OK)
        close(f.fd);
    free(copy);
    return 0;
}
