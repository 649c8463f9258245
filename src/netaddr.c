/* src/netaddr.c: IP addresses, CIDR sets and the client address behind
 * trusted proxies.
 *
 * An address is kept as (family, 16 bytes); IPv4 uses the first 4 bytes, and
 * an IPv4-mapped IPv6 address (::ffff:a.b.c.d) is turned into IPv4 as soon as
 * it is parsed, for set entries (when the prefix reaches into the IPv4 part)
 * and for lookups alike. A set is an array scanned linearly: trusted-proxy
 * lists are a handful of entries.
 *
 * The proxy headers are split left to right into hops (empty list elements
 * are skipped, as RFC 9110 asks); only the last MAX_HOPS are kept, which is
 * all a walk from the right can use. */
#include "luahost/netaddr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define ADDR_TEXT_MAX 64 /* longest address text we try to parse (with brackets, port) */
#define MAX_HOPS LH_PROXY_HOPS_MAX /* proxy hops considered, counted from the right */

struct addr {
    int family; /* AF_INET or AF_INET6 */
    unsigned char bytes[16];
};

struct entry {
    struct addr a;   /* host bits cleared */
    unsigned prefix; /* 0..32 or 0..128 */
};

struct lh_cidr_set {
    size_t n, cap;
    struct entry *entries;
};

/* -- Addresses ---------------------------------------------------------------- */

static const unsigned char v4_mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

/* Parses a bare address (no brackets, no port) of len bytes. */
static int parse_addr(const char *s, size_t len, struct addr *a)
{
    char buf[ADDR_TEXT_MAX];

    if (len == 0 || len >= sizeof(buf))
        return 0;
    memcpy(buf, s, len);
    buf[len] = '\0';
    memset(a, 0, sizeof(*a));
    if (inet_pton(AF_INET, buf, a->bytes) == 1) {
        a->family = AF_INET;
        return 1;
    }
    if (inet_pton(AF_INET6, buf, a->bytes) == 1) {
        a->family = AF_INET6;
        if (memcmp(a->bytes, v4_mapped_prefix, sizeof(v4_mapped_prefix)) == 0) {
            memmove(a->bytes, a->bytes + 12, 4);
            memset(a->bytes + 4, 0, 12);
            a->family = AF_INET;
        }
        return 1;
    }
    return 0;
}

static void format_addr(const struct addr *a, char out[LH_IP_MAX])
{
    if (inet_ntop(a->family, a->bytes, out, LH_IP_MAX) == NULL)
        out[0] = '\0'; /* cannot happen: LH_IP_MAX fits any address */
}

/* 1 when the first prefix bits of a and b are equal. */
static int same_prefix(const unsigned char *a, const unsigned char *b, unsigned prefix)
{
    unsigned whole = prefix / 8, rest = prefix % 8;

    if (memcmp(a, b, whole) != 0)
        return 0;
    if (rest == 0)
        return 1;
    unsigned char mask = (unsigned char)(0xff << (8 - rest));
    return (a[whole] & mask) == (b[whole] & mask);
}

static void clear_host_bits(unsigned char *bytes, unsigned prefix)
{
    unsigned whole = prefix / 8, rest = prefix % 8;

    if (rest != 0) {
        bytes[whole] &= (unsigned char)(0xff << (8 - rest));
        whole++;
    }
    if (whole < 16)
        memset(bytes + whole, 0, 16 - whole);
}

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* -- Sets ---------------------------------------------------------------------- */

struct lh_cidr_set *lh_cidr_set_new(void)
{
    return calloc(1, sizeof(struct lh_cidr_set));
}

void lh_cidr_set_free(struct lh_cidr_set *s)
{
    if (s == NULL)
        return;
    free(s->entries);
    free(s);
}

size_t lh_cidr_set_count(const struct lh_cidr_set *s)
{
    return s ? s->n : 0;
}

/* Parses "addr" or "addr/prefix" of len bytes into e. */
static enum lh_status parse_cidr(const char *s, size_t len, struct entry *e, const char **err)
{
    const char *slash = memchr(s, '/', len);
    size_t alen = slash ? (size_t)(slash - s) : len;
    unsigned max, prefix;

    if (!parse_addr(s, alen, &e->a)) {
        *err = "bad address";
        return LH_ERR_INVALID;
    }
    /* A mapped address was turned into IPv4 by parse_addr: its prefix counts
     * from the start of the 128 bits. */
    int mapped = e->a.family == AF_INET && memchr(s, ':', alen) != NULL;
    max = mapped || e->a.family == AF_INET6 ? 128 : 32;
    prefix = max;
    if (slash != NULL) {
        const char *p = slash + 1, *end = s + len;
        size_t ndigits = (size_t)(end - p);
        if (ndigits == 0 || ndigits > 3 || (ndigits > 1 && p[0] == '0')) {
            *err = "bad prefix length";
            return LH_ERR_INVALID;
        }
        prefix = 0;
        for (; p < end; p++) {
            if (!is_digit(*p)) {
                *err = "bad prefix length";
                return LH_ERR_INVALID;
            }
            prefix = prefix * 10 + (unsigned)(*p - '0');
        }
        if (prefix > max) {
            *err = "prefix length too long";
            return LH_ERR_INVALID;
        }
    }
    if (mapped) {
        if (prefix < 96) {
            /* Wider than ::ffff:0:0/96: keep it an IPv6 entry, which does
             * not match IPv4 lookups. */
            e->a.family = AF_INET6;
            memmove(e->a.bytes + 12, e->a.bytes, 4);
            memcpy(e->a.bytes, v4_mapped_prefix, sizeof(v4_mapped_prefix));
        } else {
            prefix -= 96;
        }
    }
    e->prefix = prefix;
    clear_host_bits(e->a.bytes, prefix);
    return LH_OK;
}

static enum lh_status push_entry(struct lh_cidr_set *s, const struct entry *e)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 8;
        struct entry *grown = realloc(s->entries, cap * sizeof(*grown));
        if (grown == NULL)
            return LH_ERR_NOMEM;
        s->entries = grown;
        s->cap = cap;
    }
    s->entries[s->n++] = *e;
    return LH_OK;
}

enum lh_status lh_cidr_set_add(struct lh_cidr_set *s, const char *cidr, const char **err)
{
    struct entry e;
    enum lh_status st;

    if (s == NULL || cidr == NULL) {
        *err = "no set or no address";
        return LH_ERR_INVALID;
    }
    st = parse_cidr(cidr, strlen(cidr), &e, err);
    if (st != LH_OK)
        return st;
    st = push_entry(s, &e);
    if (st != LH_OK)
        *err = "out of memory";
    return st;
}

static int is_list_separator(char c)
{
    return c == ',' || is_blank(c);
}

enum lh_status lh_cidr_set_add_list(struct lh_cidr_set *s, const char *list, char *err,
                                    size_t errlen)
{
    size_t old_n;
    const char *p = list;

    if (s == NULL || list == NULL) {
        snprintf(err, errlen, "no set or no list");
        return LH_ERR_INVALID;
    }
    old_n = s->n;
    for (;;) {
        while (is_list_separator(*p))
            p++;
        if (*p == '\0')
            return LH_OK;
        const char *start = p;
        while (*p != '\0' && !is_list_separator(*p))
            p++;
        size_t len = (size_t)(p - start);
        const char *why = NULL;
        struct entry e;
        enum lh_status st = parse_cidr(start, len, &e, &why);
        if (st == LH_OK && push_entry(s, &e) != LH_OK) {
            st = LH_ERR_NOMEM;
            why = "out of memory";
        }
        if (st != LH_OK) {
            s->n = old_n; /* all or nothing */
            snprintf(err, errlen, "bad entry '%.*s': %s", (int)(len > 64 ? 64 : len), start, why);
            return st;
        }
    }
}

static int set_contains(const struct lh_cidr_set *s, const struct addr *a)
{
    for (size_t i = 0; i < s->n; i++) {
        const struct entry *e = &s->entries[i];
        if (e->a.family == a->family && same_prefix(e->a.bytes, a->bytes, e->prefix))
            return 1;
    }
    return 0;
}

int lh_cidr_set_contains(const struct lh_cidr_set *s, const char *ip)
{
    struct addr a;

    if (s == NULL || ip == NULL || !parse_addr(ip, strlen(ip), &a))
        return 0;
    return set_contains(s, &a);
}

/* -- Proxy headers ------------------------------------------------------------- */

/* One hop of a proxy header: the node text, or none (a Forwarded element
 * without for=). quoted: a quoted-string body, which may hold \-escapes. */
struct hop {
    const char *s;
    size_t len;
    int quoted;
};

struct hops {
    size_t total; /* hops seen; the ring holds the last MAX_HOPS */
    struct hop ring[MAX_HOPS];
};

static void add_hop(struct hops *h, const char *s, size_t len, int quoted)
{
    h->ring[h->total % MAX_HOPS] = (struct hop){s, len, quoted};
    h->total++;
}

static void trim(const char **s, size_t *len)
{
    while (*len > 0 && is_blank(**s)) {
        (*s)++;
        (*len)--;
    }
    while (*len > 0 && is_blank((*s)[*len - 1]))
        (*len)--;
}

static void split_xff(const char *xff, struct hops *h)
{
    const char *p = xff;

    for (;;) {
        const char *comma = strchr(p, ',');
        const char *s = p;
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        trim(&s, &len);
        if (len > 0)
            add_hop(h, s, len, 0);
        if (comma == NULL)
            return;
        p = comma + 1;
    }
}

static int ieq_for(const char *s, size_t len)
{
    return len == 3 && (s[0] | 0x20) == 'f' && (s[1] | 0x20) == 'o' && (s[2] | 0x20) == 'r';
}

/* RFC 7239: forwarded-element *( "," forwarded-element ), an element is
 * pairs separated by ';', a pair is token "=" ( token / quoted-string ). */
static void split_forwarded(const char *fwd, struct hops *h)
{
    const char *p = fwd;

    for (;;) {
        /* One element: find its for= value. */
        struct hop found = {NULL, 0, 0};
        int nonblank = 0;
        for (;;) {
            while (is_blank(*p))
                p++;
            const char *name = p;
            while (*p != '\0' && *p != '=' && *p != ';' && *p != ',')
                p++;
            size_t name_len = (size_t)(p - name);
            trim(&name, &name_len);
            if (name_len > 0)
                nonblank = 1;
            struct hop value = {NULL, 0, 0};
            if (*p == '=') {
                nonblank = 1;
                p++;
                while (is_blank(*p))
                    p++;
                if (*p == '"') {
                    value.s = ++p;
                    value.quoted = 1;
                    while (*p != '\0' && *p != '"') {
                        if (*p == '\\' && p[1] != '\0')
                            p++;
                        p++;
                    }
                    value.len = (size_t)(p - value.s);
                    if (*p == '"')
                        p++;
                    else
                        value.s = NULL; /* unterminated: not an address */
                    while (*p != '\0' && *p != ';' && *p != ',')
                        p++; /* anything after the closing quote is ignored */
                } else {
                    value.s = p;
                    while (*p != '\0' && *p != ';' && *p != ',')
                        p++;
                    value.len = (size_t)(p - value.s);
                    trim(&value.s, &value.len);
                }
                if (found.s == NULL && ieq_for(name, name_len) && value.s != NULL)
                    found = value;
            }
            if (*p != ';')
                break;
            p++;
        }
        if (nonblank)
            add_hop(h, found.s, found.len, found.quoted);
        if (*p != ',')
            return;
        p++;
    }
}

static int is_port_char(char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '.' ||
           c == '_' || c == '-';
}

/* A port: digits, or RFC 7239's obfuscated "_name". */
static int valid_port(const char *s, size_t len)
{
    if (len == 0)
        return 0;
    if (s[0] == '_') {
        for (size_t i = 1; i < len; i++)
            if (!is_port_char(s[i]))
                return 0;
        return len > 1;
    }
    if (len > 5)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!is_digit(s[i]))
            return 0;
    return 1;
}

/* Parses a hop: "v4", "v6", "[v6]", "[v6]:port" or "v4:port". */
static int parse_hop(const struct hop *hop, struct addr *a)
{
    char buf[ADDR_TEXT_MAX];
    size_t len = 0;

    if (hop->s == NULL)
        return 0;
    /* Copy, undoing a quoted-string's escapes. */
    for (size_t i = 0; i < hop->len; i++) {
        if (hop->quoted && hop->s[i] == '\\' && i + 1 < hop->len)
            i++;
        if (len == sizeof(buf))
            return 0;
        buf[len++] = hop->s[i];
    }
    if (len > 0 && buf[0] == '[') {
        char *close = memchr(buf, ']', len);
        if (close == NULL)
            return 0;
        size_t inner = (size_t)(close - buf - 1), after = len - inner - 2;
        if (after > 0 && (close[1] != ':' || !valid_port(close + 2, after - 1)))
            return 0;
        struct addr tmp;
        /* Brackets hold IPv6 only ("[1.2.3.4]" is not a node). */
        if (memchr(buf + 1, ':', inner) == NULL || !parse_addr(buf + 1, inner, &tmp))
            return 0;
        *a = tmp;
        return 1;
    }
    if (parse_addr(buf, len, a))
        return 1;
    char *colon = memchr(buf, ':', len);
    if (colon == NULL || memchr(colon + 1, ':', len - (size_t)(colon - buf) - 1) != NULL)
        return 0;
    if (!valid_port(colon + 1, len - (size_t)(colon - buf) - 1))
        return 0;
    /* Without a ':' before the port, only IPv4 can parse here. */
    return parse_addr(buf, (size_t)(colon - buf), a);
}

static int has_nonblank(const char *s)
{
    for (; *s != '\0'; s++)
        if (!is_blank(*s) && *s != ',')
            return 1;
    return 0;
}

enum lh_status lh_client_ip_lines(const struct lh_cidr_set *trusted, const char *peer,
                                  const char *const *lines, size_t nlines, int forwarded_syntax,
                                  char out[LH_IP_MAX])
{
    struct addr client, hop_addr;
    struct hops hops;

    out[0] = '\0';
    if (peer == NULL || !parse_addr(peer, strlen(peer), &client))
        return LH_ERR_INVALID;
    if (trusted != NULL && set_contains(trusted, &client)) {
        hops.total = 0;
        for (size_t i = 0; i < nlines; i++) {
            if (lines[i] == NULL)
                continue;
            if (forwarded_syntax)
                split_forwarded(lines[i], &hops);
            else
                split_xff(lines[i], &hops);
        }
        size_t n = hops.total < MAX_HOPS ? hops.total : MAX_HOPS;
        /* From the right: each trusted hop vouches for the one before it. */
        for (size_t i = 0; i < n; i++) {
            const struct hop *h = &hops.ring[(hops.total - 1 - i) % MAX_HOPS];
            if (!parse_hop(h, &hop_addr))
                break;
            client = hop_addr;
            if (!set_contains(trusted, &client))
                break;
        }
    }
    format_addr(&client, out);
    return LH_OK;
}

enum lh_status lh_client_ip(const struct lh_cidr_set *trusted, const char *peer,
                            const char *forwarded_for, const char *forwarded, char out[LH_IP_MAX])
{
    int use_xff = forwarded_for != NULL && has_nonblank(forwarded_for);
    const char *line = use_xff ? forwarded_for : forwarded;
    return lh_client_ip_lines(trusted, peer, &line, line != NULL, !use_xff, out);
}

/* -- Limit keys --------------------------------------------------------------- */

/* a's network of prefix bits, as "<address>/<bits>" in out. */
static void format_network(struct addr *a, unsigned bits, char out[LH_CLIENT_KEY_MAX])
{
    char text[LH_IP_MAX];

    clear_host_bits(a->bytes, bits);
    format_addr(a, text);
    snprintf(out, LH_CLIENT_KEY_MAX, "%s/%u", text, bits);
}

enum lh_status lh_client_key(const char *ip, char out[LH_CLIENT_KEY_MAX])
{
    struct addr a;

    if (!parse_addr(ip, strlen(ip), &a)) {
        snprintf(out, LH_CLIENT_KEY_MAX, "%s", ip);
        return LH_ERR_INVALID;
    }
    if (a.family == AF_INET6)
        format_network(&a, 64, out);
    else
        format_addr(&a, out);
    return LH_OK;
}

enum lh_status lh_ipv6_network(const char *ip, unsigned bits, char out[LH_CLIENT_KEY_MAX])
{
    struct addr a;

    out[0] = '\0';
    if (bits < 1 || bits > 128 || !parse_addr(ip, strlen(ip), &a) || a.family != AF_INET6)
        return LH_ERR_INVALID;
    format_network(&a, bits, out);
    return LH_OK;
}
