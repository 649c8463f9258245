/* fuzz/fuzz_netaddr.c: trusted-proxy CIDR lists, then a peer address,
 * X-Forwarded-For and Forwarded, one per line. */
#include "fuzz.h"
#include "luahost/netaddr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *parts[4], err[256], out[LH_IP_MAX];
    int n;
    char *copy = fuzz_parts(data, size, parts, 4, &n);
    struct lh_cidr_set *set = lh_cidr_set_new();

    if (copy && set) {
        lh_cidr_set_add_list(set, parts[0], err, sizeof(err));
        const char *peer = n > 1 ? parts[1] : "10.0.0.1";
        lh_cidr_set_contains(set, peer);
        lh_client_ip(set, peer, n > 2 ? parts[2] : NULL, n > 3 ? parts[3] : NULL, out);
        lh_client_ip(set, "127.0.0.1", n > 2 ? parts[2] : NULL, NULL, out);
    }
    lh_cidr_set_free(set);
    free(copy);
    return 0;
}
