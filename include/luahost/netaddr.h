/* include/luahost/netaddr.h: IP addresses, CIDR sets and the client address
 * behind trusted proxies (nginx's real_ip_recursive).
 * Thread safety: build a set on one thread; lh_cidr_set_contains and
 * lh_client_ip are read-only and may then run on any number of threads. */
#ifndef LUAHOST_NETADDR_H
#define LUAHOST_NETADDR_H
#include <stddef.h>
#include "luahost/common.h"

#define LH_IP_MAX 46 /* INET6_ADDRSTRLEN */

struct lh_cidr_set; /* opaque */

/* NULL when memory runs out. Free with lh_cidr_set_free (NULL is a no-op). */
struct lh_cidr_set *lh_cidr_set_new(void);
void lh_cidr_set_free(struct lh_cidr_set *s);
/* Adds "10.0.0.0/8", "2001:db8::/32", or a bare address (a /32 or /128).
 * LH_ERR_INVALID with *err (static text) for a bad address or prefix. */
enum lh_status lh_cidr_set_add(struct lh_cidr_set *s, const char *cidr, const char **err);
/* Adds every entry of a list separated by commas and/or blanks; the message
 * names the bad entry. The set is unchanged on failure. */
enum lh_status lh_cidr_set_add_list(struct lh_cidr_set *s, const char *list, char *err,
                                    size_t errlen);
size_t lh_cidr_set_count(const struct lh_cidr_set *s);
/* 1 when ip (text) is in the set; an IPv4-mapped IPv6 address (::ffff:a.b.c.d)
 * matches IPv4 entries, in the set and in ip alike (an IPv6 entry wider than
 * /96, such as ::/0, matches IPv6 only); 0 for anything that does not parse. */
int lh_cidr_set_contains(const struct lh_cidr_set *s, const char *ip);

/* The client's address. It is peer, unless peer is in trusted: then the
 * X-Forwarded-For list (or, without one, the for= values of RFC 7239
 * Forwarded) is walked from the right, skipping trusted addresses; the first
 * untrusted one is the client. If every hop is trusted, the leftmost is the
 * client; at an entry that is not an address the walk stops at the last good
 * hop. An empty X-Forwarded-For counts as missing, empty list elements are
 * skipped, ports and [brackets] are stripped, and only the last 32 hops are
 * walked. Addresses are written normalised (inet_ntop; IPv4-mapped as dotted
 * IPv4) into out. Returns LH_ERR_INVALID only when peer itself is not an
 * address. */
enum lh_status lh_client_ip(const struct lh_cidr_set *trusted, const char *peer,
                            const char *forwarded_for, const char *forwarded,
                            char out[LH_IP_MAX]);

/* The same for one header that came as several lines, lines[0..nlines) in
 * the order received (NULLs skipped): they read as one list, joined in that
 * order (RFC 9110 5.3), so a proxy's line, appended after any the client
 * sent, holds the rightmost hops. Only the last LH_PROXY_HOPS_MAX hops are
 * walked, so lines before the last that many can be left out.
 * forwarded_syntax: the lines are RFC 7239
 * Forwarded, else X-Forwarded-For. */
#define LH_PROXY_HOPS_MAX 32
enum lh_status lh_client_ip_lines(const struct lh_cidr_set *trusted, const char *peer,
                                  const char *const *lines, size_t nlines, int forwarded_syntax,
                                  char out[LH_IP_MAX]);

/* The key a per-address limit counts a client under, in out: an IPv4
 * address as it is; an IPv6 address as its /64 ("2001:db8:1:2::/64"), the
 * network one subscriber is given, so that walking through its 2^64
 * addresses buys no fresh bucket. LH_ERR_INVALID when ip is not an address
 * (out is then ip, cut to fit). */
#define LH_CLIENT_KEY_MAX (LH_IP_MAX + 4)
enum lh_status lh_client_key(const char *ip, char out[LH_CLIENT_KEY_MAX]);

/* The IPv6 network of ip that is bits long (1..128), in out as
 * "2001:db8:1::/48": what a per-network limit counts a subscriber's whole
 * allocation (a /56, a /48) under. LH_ERR_INVALID, and out empty, when ip is
 * not an IPv6 address (an IPv4 or IPv4-mapped address has no such network)
 * or bits is out of range. */
enum lh_status lh_ipv6_network(const char *ip, unsigned bits, char out[LH_CLIENT_KEY_MAX]);

#endif
