/* src/svg.c: the SVG upload validator.
 *
 * DESIGN
 * A hand-written tokenizer walks the bytes once (tags, attributes with
 * single, double or unquoted values, end tags, comments, text) and refuses
 * at the first problem, saying why. Nothing is rewritten: a document either
 * passes as it is or is refused, so what is stored is what was checked.
 *
 * Two readers matter. A browser opening the file as image/svg+xml parses XML;
 * a page that inlines it parses HTML foreign content. Both must see the same
 * harmless tree, so on top of well-formed XML the rules close the gaps where
 * the two parsers disagree:
 *   - markup that only one side understands is refused outright: DOCTYPE and
 *     entity declarations (but the SVG 1.1 DOCTYPE with no internal subset,
 *     which declares nothing), processing instructions (the <?xml?>
 *     declaration at the start excepted), CDATA outside <style>, named
 *     entities other than the five of XML (&colon; means ':' to HTML and
 *     nothing to XML);
 *   - comments may not contain "--" or '<', nor start with ">" or "->" (HTML
 *     ends a comment at "<!-->" and "--!>");
 *   - <title> and <desc> (HTML integration points) hold text only, and <style>
 *     text and CDATA only, checked as CSS once it is closed, all of it
 *     together (CDATA cannot split "@im" from "port"), and no comment;
 *   - HTML leaves SVG at <font> with a color, face or size attribute (the
 *     rest would be HTML), so those are refused on <font>;
 *   - HTML ignores xmlns, so each namespace may be bound only to its usual
 *     prefix ("xlink:href" is a link to HTML whatever xlink is bound to), and
 *     only SVG, XLink and Inkscape's metadata namespaces (which browsers
 *     render nothing for) at all; every prefix used must be declared, and the
 *     root must be <svg> in the SVG namespace, or XML shows no image;
 *   - unquoted values, missing spaces and stray slashes are parsed far
 *     enough to name the dangerous attribute, then refused as malformed.
 * Names are compared in lowercase (HTML lowercases them). Values are checked
 * after decoding character references; URLs also after dropping whitespace
 * and control characters (the URL parser ignores them), and CSS both as it
 * is and squeezed (no whitespace, no comments), so "java&#9;script:" and a
 * url( split by a CSS comment are caught. Extra refusals are the safe
 * direction: a check that cannot tell refuses.
 *
 * Everything is bounded by len; the only allocation is one scratch buffer of
 * len + 1 bytes for decoded values (a decoded value is never longer than its
 * source).
 */
#include "luahost/svg.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SVG_NS "http://www.w3.org/2000/svg"
#define XLINK_NS "http://www.w3.org/1999/xlink"
#define SHOWN 40    /* at most this many bytes of a name in a reason */
#define NAME_BUF 48 /* lowercase copies of names; longer ones are never allowed */
#define NSPACES (sizeof(spaces) / sizeof(spaces[0]))

enum { NS_DEFAULT, NS_SVG, NS_XLINK, NS_META }; /* indexes of spaces[] */

enum kind {
    K_NORMAL,
    K_STYLE, /* one run of text, checked as CSS */
    K_TEXT,  /* text and comments only */
};

struct elem {
    size_t off, len; /* the name, for matching the end tag */
    enum kind kind;
    unsigned scope; /* bit k: spaces[k] is declared here or above */
};

struct ctx {
    const char *s;
    size_t len, pos;
    char *why;
    size_t whylen;
    char *buf;  /* scratch for one decoded value: len + 1 bytes */
    size_t css; /* inside <style>: bytes of its text gathered at buf */
    size_t depth;
    int root_seen, root_done, root_svg, doctype_seen;
    struct elem stack[LH_SVG_MAX_DEPTH];
};

/* clang-format off */
static const char *const elements[] = {
    "svg", "g", "defs", "title", "desc", "path", "rect", "circle", "ellipse", "line",
    "polyline", "polygon", "text", "tspan", "textpath", "lineargradient", "radialgradient",
    "stop", "clippath", "mask", "pattern", "symbol", "use", "marker", "filter", "style", "image",
    "feblend", "fecolormatrix", "fecomponenttransfer", "fecomposite", "feconvolvematrix",
    "fediffuselighting", "fedisplacementmap", "fedistantlight", "fedropshadow", "feflood",
    "fefunca", "fefuncb", "fefuncg", "fefuncr", "fegaussianblur", "feimage", "femerge",
    "femergenode", "femorphology", "feoffset", "fepointlight", "fespecularlighting",
    "fespotlight", "fetile", "feturbulence", "a", "metadata",
    "view", /* dvisvgm's targets of hyperref's links: a viewBox, nothing loaded */
    /* dvisvgm's default output; no font-face-uri, which loads a font */
    "font", "font-face", "font-face-src", "font-face-name", "glyph", "missing-glyph", "hkern",
    "vkern", NULL,
};

/* Index 0 is the default namespace (xmlns="..."); from NS_META on, metadata
 * that browsers render nothing for. Each URI goes with its usual prefix only. */
static const struct {
    const char *prefix, *uri;
} spaces[] = {
    {"", SVG_NS},
    {"svg", SVG_NS},
    {"xlink", XLINK_NS},
    {"dc", "http://purl.org/dc/elements/1.1/"},
    {"cc", "http://creativecommons.org/ns#"},
    {"rdf", "http://www.w3.org/1999/02/22-rdf-syntax-ns#"},
    {"sodipodi", "http://sodipodi.sourceforge.net/DTD/sodipodi-0.dtd"},
    {"inkscape", "http://www.inkscape.org/namespaces/inkscape"},
};

/* Functions and words that make CSS load something or run something. */
static const char *const css_refused[] = {
    "@import", "expression(", "image(", "image-set(", "src(", "cross-fade(", "progid:", NULL,
};

static const char *const rasters[] = {
    "data:image/png;base64,", "data:image/jpeg;base64,", "data:image/jpg;base64,",
    "data:image/gif;base64,", "data:image/webp;base64,", NULL,
};
/* clang-format on */

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static enum lh_status
fail(struct ctx *c, const char *fmt, ...)
{
    va_list ap;

    if (c->whylen > 0) {
        va_start(ap, fmt);
        if (vsnprintf(c->why, c->whylen, fmt, ap) < 0)
            c->why[0] = '\0';
        va_end(ap);
    }
    return LH_ERR_INVALID;
}

static enum lh_status malformed(struct ctx *c, size_t at)
{
    return fail(c, "malformed markup at byte %zu", at);
}

static int is_ws(unsigned char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r';
}

static unsigned char lower(unsigned char ch)
{
    return ch >= 'A' && ch <= 'Z' ? (unsigned char)(ch + 32) : ch;
}

static int name_start(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_' || ch == ':';
}

static int name_char(unsigned char ch)
{
    return name_start(ch) || (ch >= '0' && ch <= '9') || ch == '-' || ch == '.';
}

/* The length of the (ASCII) XML name at s, 0 if there is none. */
static size_t scan_name(const char *s, size_t n)
{
    size_t i = 0;

    if (n == 0 || !name_start((unsigned char)s[0]))
        return 0;
    while (i < n && name_char((unsigned char)s[i]))
        i++;
    return i;
}

/* Does the input at pos start with lit (ASCII, case-insensitive)? */
static int starts_i(const struct ctx *c, size_t pos, const char *lit)
{
    size_t n = strlen(lit);

    if (pos > c->len || c->len - pos < n)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (lower((unsigned char)c->s[pos + i]) != (unsigned char)lit[i])
            return 0;
    return 1;
}

/* A lowercase, NUL-terminated copy of at most NAME_BUF - 1 bytes; 0 when the
 * name was longer (and so cannot equal anything allowed). */
static int lower_name(const char *s, size_t n, char out[NAME_BUF])
{
    size_t k = n < NAME_BUF - 1 ? n : NAME_BUF - 1;

    for (size_t i = 0; i < k; i++)
        out[i] = (char)lower((unsigned char)s[i]);
    out[k] = '\0';
    return k == n;
}

static int shown(size_t n)
{
    return (int)(n < SHOWN ? n : SHOWN);
}

/* The first index >= from where needle occurs in h[0..n), or SIZE_MAX. */
static size_t find(const char *h, size_t n, size_t from, const char *needle)
{
    size_t m = strlen(needle);

    if (m > n)
        return SIZE_MAX;
    for (size_t i = from; i <= n - m; i++)
        if (memcmp(h + i, needle, m) == 0)
            return i;
    return SIZE_MAX;
}

static int has_prefix(const char *t, size_t n, const char *lit)
{
    size_t m = strlen(lit);
    return n >= m && memcmp(t, lit, m) == 0;
}

/* -- Encoding ------------------------------------------------------------ */

/* Valid UTF-8 (no overlongs, surrogates or code points past U+10FFFF), no
 * control characters other than tab, LF and CR, and neither U+FFFE nor
 * U+FFFF: with them the rest of XML 1.0's excluded characters, which an
 * XML parser refuses, and the browser with it. */
static enum lh_status check_encoding(struct ctx *c)
{
    const unsigned char *s = (const unsigned char *)c->s;
    size_t n = c->len;

    for (size_t i = 0; i < n;) {
        unsigned char b = s[i];
        size_t len = lh_utf8_char(s + i, n - i);

        if (len == 0)
            return fail(c, "invalid UTF-8 at byte %zu", i);
        if ((b < 0x20 && b != '\t' && b != '\n' && b != '\r') || b == 0x7f)
            return fail(c, "control character at byte %zu", i);
        if (len == 3 && b == 0xef && s[i + 1] == 0xbf && s[i + 2] >= 0xbe)
            return fail(c, "U+%s, not an XML character, at byte %zu",
                        s[i + 2] == 0xbe ? "FFFE" : "FFFF", i);
        i += len;
    }
    return LH_OK;
}

/* -- Values -------------------------------------------------------------- */

static int xml_char(unsigned long cp)
{
    return cp == 0x9 || cp == 0xa || cp == 0xd || (cp >= 0x20 && cp <= 0xd7ff && cp != 0x7f) ||
           (cp >= 0xe000 && cp <= 0xfffd) || (cp >= 0x10000 && cp <= 0x10ffff);
}

static size_t put_utf8(char *out, unsigned long cp)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xc0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xe0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    out[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

static int digit(unsigned char ch, int hex)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (hex && lower(ch) >= 'a' && lower(ch) <= 'f')
        return lower(ch) - 'a' + 10;
    return -1;
}

/* Decodes the references in the input at off..off+n into dst (n bytes are
 * enough), *out bytes. Only XML's: &#N; &#xH; and the five predefined names. */
static enum lh_status decode(struct ctx *c, size_t off, size_t n, char *dst, size_t *out)
{
    static const struct {
        const char *name;
        char ch;
    } predefined[] = {{"amp", '&'}, {"lt", '<'}, {"gt", '>'}, {"quot", '"'}, {"apos", '\''}};
    const char *s = c->s + off;
    size_t o = 0;

    for (size_t i = 0; i < n;) {
        if (s[i] != '&') {
            dst[o++] = s[i++];
            continue;
        }
        size_t j = i + 1;
        if (j < n && s[j] == '#') {
            int hex = 0, d;
            unsigned long cp = 0;
            j++;
            if (j < n && s[j] == 'x') {
                hex = 1;
                j++;
            }
            size_t first = j;
            while (j < n && (d = digit((unsigned char)s[j], hex)) >= 0) {
                cp = cp * (hex ? 16 : 10) + (unsigned long)d;
                if (cp > 0x10ffff)
                    return malformed(c, off + i);
                j++;
            }
            if (j == first || j >= n || s[j] != ';' || !xml_char(cp))
                return malformed(c, off + i);
            o += put_utf8(dst + o, cp);
            i = j + 1;
            continue;
        }
        size_t nl = scan_name(s + j, n - j);
        if (nl == 0 || j + nl >= n || s[j + nl] != ';')
            return malformed(c, off + i);
        size_t k;
        for (k = 0; k < sizeof(predefined) / sizeof(predefined[0]); k++)
            if (strlen(predefined[k].name) == nl && memcmp(predefined[k].name, s + j, nl) == 0)
                break;
        if (k == sizeof(predefined) / sizeof(predefined[0]))
            return fail(c, "unknown entity &%.*s;", shown(nl), s + j);
        dst[o++] = predefined[k].ch;
        i = j + nl + 1;
    }
    *out = o;
    return LH_OK;
}

static void lowercase(char *t, size_t n)
{
    for (size_t i = 0; i < n; i++)
        t[i] = (char)lower((unsigned char)t[i]);
}

/* Drops whitespace and control characters (and CSS comments when asked) in
 * place; returns the new length. */
static size_t squeeze(char *t, size_t n, int css_comments)
{
    size_t o = 0;

    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)t[i];
        if (css_comments && ch == '/' && i + 1 < n && t[i + 1] == '*') {
            size_t end = find(t, n, i + 2, "*/");
            if (end == SIZE_MAX)
                break;
            i = end + 1;
            continue;
        }
        if (ch <= 0x20 || ch == 0x7f)
            continue;
        t[o++] = (char)ch;
    }
    return o;
}

/* t: lowercase. what: "style" or the attribute's name. */
static enum lh_status css_patterns(struct ctx *c, const char *t, size_t n, const char *what)
{
    for (size_t i = find(t, n, 0, "url("); i != SIZE_MAX; i = find(t, n, i + 4, "url(")) {
        size_t j = i + 4;
        while (j < n && is_ws((unsigned char)t[j]))
            j++;
        if (j < n && (t[j] == '"' || t[j] == '\''))
            j++;
        while (j < n && is_ws((unsigned char)t[j]))
            j++;
        if (j >= n || t[j] != '#')
            return fail(c, "%s with url(", what);
    }
    for (int k = 0; css_refused[k]; k++)
        if (find(t, n, 0, css_refused[k]) != SIZE_MAX)
            return fail(c, "%s with %s", what, css_refused[k]);
    if (find(t, n, 0, "javascript:") != SIZE_MAX)
        return fail(c, "javascript: URL in %s", what);
    if (find(t, n, 0, "vbscript:") != SIZE_MAX)
        return fail(c, "vbscript: URL in %s", what);
    if (find(t, n, 0, "data:") != SIZE_MAX)
        return fail(c, "data: URL in %s", what);
    if (find(t, n, 0, "://") != SIZE_MAX)
        return fail(c, "external reference in %s", what);
    return LH_OK;
}

/* A decoded style text or attribute value (presentation attributes are CSS
 * values too), checked as it is and squeezed. */
static enum lh_status check_css(struct ctx *c, char *t, size_t n, const char *what)
{
    enum lh_status st;

    lowercase(t, n);
    /* CSS escapes spell anything ("u\72l("); nobody needs them in an image. */
    if (memchr(t, '\\', n) != NULL)
        return fail(c, "%s with backslash escape", what);
    st = css_patterns(c, t, n, what);
    if (st != LH_OK)
        return st;
    n = squeeze(t, n, 1);
    return css_patterns(c, t, n, what);
}

static int raster_ok(const char *t, size_t n)
{
    for (int k = 0; rasters[k]; k++) {
        if (!has_prefix(t, n, rasters[k]))
            continue;
        for (size_t i = strlen(rasters[k]); i < n; i++) {
            unsigned char ch = (unsigned char)t[i];
            if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '+' || ch == '/' ||
                  ch == '='))
                return 0;
        }
        return 1;
    }
    return 0;
}

/* A decoded href: a local "#fragment", or on <image> a base64 raster. */
static enum lh_status check_href(struct ctx *c, char *t, size_t n, const char *attr, int image)
{
    lowercase(t, n);
    n = squeeze(t, n, 0);
    if (n > 0 && t[0] == '#')
        return LH_OK;
    if (has_prefix(t, n, "javascript:"))
        return fail(c, "javascript: URL in %s", attr);
    if (has_prefix(t, n, "vbscript:"))
        return fail(c, "vbscript: URL in %s", attr);
    if (has_prefix(t, n, "data:")) {
        if (image && raster_ok(t, n))
            return LH_OK;
        return fail(c, "data: URL in %s", attr);
    }
    return fail(c, "external reference in %s", attr);
}

static int in_list(const char *name, const char *const *list)
{
    for (int k = 0; list[k]; k++)
        if (strcmp(name, list[k]) == 0)
            return 1;
    return 0;
}

/* -- Namespaces ---------------------------------------------------------- */

/* The entry of spaces[] (past the default) for the n-byte prefix p, or -1. */
static int space_named(const char *p, size_t n)
{
    for (size_t k = NS_SVG; k < NSPACES; k++)
        if (strlen(spaces[k].prefix) == n && memcmp(spaces[k].prefix, p, n) == 0)
            return (int)k;
    return -1;
}

/* The entry of spaces[] named by the prefix of name (lowercase), or -1 when
 * name is not "prefix:local" or the prefix is unknown. */
static int prefix_space(const char *name)
{
    const char *colon = strchr(name, ':');

    if (colon == NULL || colon[1] == '\0' || strchr(colon + 1, ':') != NULL)
        return -1;
    return space_named(name, (size_t)(colon - name));
}

static int is_decl(const char *name)
{
    return strcmp(name, "xmlns") == 0 || has_prefix(name, strlen(name), "xmlns:");
}

static enum lh_status undeclared(struct ctx *c, const char *name)
{
    return fail(c, "undeclared namespace prefix %.*s", (int)strcspn(name, ":"), name);
}

/* A namespace declaration, name (lowercase) "xmlns" or "xmlns:...": adds the
 * bit of its entry in spaces[] to *scope when it binds that entry's URI. */
static enum lh_status declare(struct ctx *c, const char *name, size_t voff, size_t vlen,
                              unsigned *scope)
{
    int k = name[5] == '\0' ? NS_DEFAULT : space_named(name + 6, strlen(name + 6));
    size_t n;
    enum lh_status st;

    if (k < 0)
        return fail(c, "attribute %s not allowed", name);
    st = decode(c, voff, vlen, c->buf, &n);
    if (st != LH_OK)
        return st;
    if (n != strlen(spaces[k].uri) || memcmp(c->buf, spaces[k].uri, n) != 0)
        return fail(c, "namespace not allowed in %s", name);
    *scope |= 1u << k;
    return LH_OK;
}

/* One attribute of element elem (lowercase), scope the namespaces declared
 * for it: the name at noff, the raw value at voff (vlen 0 when it had none).
 * Declarations were checked by declare(). */
static enum lh_status check_attr(struct ctx *c, const char *elem, unsigned scope, size_t noff,
                                 size_t nlen, size_t voff, size_t vlen)
{
    static const char *const xlink_attrs[] = {"href", "title", "show",    "actuate",
                                              "type", "role",  "arcrole", NULL};
    static const char *const xml_attrs[] = {"space", "lang", NULL};
    static const char *const font_html[] = {"color", "face", "size", NULL};
    char name[NAME_BUF];
    int whole = lower_name(c->s + noff, nlen, name);
    const char *colon = strrchr(name, ':');
    const char *local = colon != NULL ? colon + 1 : name;
    int k = -1;
    size_t n;
    enum lh_status st;

    if (local[0] == 'o' && local[1] == 'n')
        return fail(c, "event handler attribute %.*s", shown(strlen(name)), name);
    if (!whole)
        return fail(c, "attribute %.*s not allowed", shown(strlen(name)), name);
    if (is_decl(name))
        return LH_OK;
    if (colon != NULL) {
        int ok;
        if (has_prefix(name, strlen(name), "xml:")) { /* bound without a declaration */
            ok = in_list(name + 4, xml_attrs);
        } else {
            k = prefix_space(name);
            if (k >= 0 && !(scope & (1u << k)))
                return undeclared(c, name);
            ok = k >= NS_META || (k == NS_XLINK && in_list(local, xlink_attrs));
        }
        if (!ok)
            return fail(c, "attribute %s not allowed", name);
    }
    if (strcmp(elem, "font") == 0 && in_list(name, font_html))
        return fail(c, "attribute %s not allowed on font", name);
    st = decode(c, voff, vlen, c->buf, &n);
    if (st != LH_OK)
        return st;
    /* Neither metadata (rdf:resource holds a URL) nor the characters a glyph
     * draws are CSS or a link to a browser. */
    if (k >= NS_META || (strcmp(name, "unicode") == 0 &&
                         (strcmp(elem, "glyph") == 0 || strcmp(elem, "missing-glyph") == 0)))
        return LH_OK;
    if (strcmp(name, "href") == 0 || strcmp(name, "xlink:href") == 0)
        return check_href(c, c->buf, n, name, strcmp(elem, "image") == 0);
    return check_css(c, c->buf, n, name);
}

/* -- Markup -------------------------------------------------------------- */

/* <?xml version="1.0" encoding="UTF-8" standalone="no"?> at c->pos. */
/* Skips whitespace from p; returns where it ends. */
static size_t skip_ws(const struct ctx *c, size_t p)
{
    while (p < c->len && is_ws((unsigned char)c->s[p]))
        p++;
    return p;
}

/* The declaration's pseudo-attribute ` name = "value"` (or 'value') at *p,
 * whitespace first: 1 with the value's offset and length and *p past it;
 * 0, *p unchanged, when it is not there. */
static int decl_attr(const struct ctx *c, size_t *p, const char *name, size_t *voff,
                     size_t *vlen)
{
    const char *s = c->s;
    size_t n = strlen(name), q = skip_ws(c, *p);

    if (q == *p || c->len - q < n || memcmp(s + q, name, n) != 0)
        return 0;
    q = skip_ws(c, q + n);
    if (q >= c->len || s[q] != '=')
        return 0;
    q = skip_ws(c, q + 1);
    if (q >= c->len || (s[q] != '"' && s[q] != '\''))
        return 0;
    const char *end = memchr(s + q + 1, s[q], c->len - q - 1);
    if (end == NULL)
        return 0;
    *voff = q + 1;
    *vlen = (size_t)(end - (s + q + 1));
    *p = (size_t)(end - s) + 1;
    return 1;
}

/* <?xml version="1.N" encoding="UTF-8"? standalone="yes|no"? ?>, in that
 * order and nothing else (XML 1.0, production 23): a value with other text
 * would be markup to an HTML parser, which ends the declaration at its
 * first '>'. */
static enum lh_status xml_decl(struct ctx *c)
{
    const char *s = c->s;
    size_t p = c->pos + 5, voff, vlen;

    if (!decl_attr(c, &p, "version", &voff, &vlen))
        return malformed(c, p);
    if (vlen < 3 || memcmp(s + voff, "1.", 2) != 0)
        return malformed(c, voff);
    for (size_t i = voff + 2; i < voff + vlen; i++)
        if (s[i] < '0' || s[i] > '9')
            return malformed(c, i);
    if (decl_attr(c, &p, "encoding", &voff, &vlen) && (vlen != 5 || !starts_i(c, voff, "utf-8")))
        return fail(c, "encoding other than UTF-8");
    if (decl_attr(c, &p, "standalone", &voff, &vlen) &&
        !(vlen == 3 && memcmp(s + voff, "yes", 3) == 0) &&
        !(vlen == 2 && memcmp(s + voff, "no", 2) == 0))
        return malformed(c, voff);
    p = skip_ws(c, p);
    if (p + 1 < c->len && s[p] == '?' && s[p + 1] == '>') {
        c->pos = p + 2;
        return LH_OK;
    }
    return malformed(c, p);
}

/* <!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" "http://www.w3.org/Graphics/
 * SVG/1.1/DTD/svg11.dtd"> before the root, once, as dvisvgm and Inkscape
 * write it. With no internal subset it declares no entity (only XML's five
 * are read anyway) and browsers do not fetch the DTD. Any other DOCTYPE is
 * refused. */
static enum lh_status doctype(struct ctx *c)
{
    static const char *const words[] = {"svg", "PUBLIC", "-//W3C//DTD SVG 1.1//EN",
                                        "http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd", NULL};
    const char *s = c->s;
    size_t p = c->pos + 9;

    if (c->root_seen || c->doctype_seen || memcmp(s + c->pos, "<!DOCTYPE", 9) != 0)
        return fail(c, "DOCTYPE or entity");
    for (int k = 0; words[k]; k++) {
        size_t q = skip_ws(c, p), n = strlen(words[k]);
        char quote = 0;
        if (q == p)
            return fail(c, "DOCTYPE or entity");
        if (k >= 2) { /* the two literals */
            if (q >= c->len || (s[q] != '"' && s[q] != '\''))
                return fail(c, "DOCTYPE or entity");
            quote = s[q++];
        }
        if (c->len - q < n || memcmp(s + q, words[k], n) != 0)
            return fail(c, "DOCTYPE or entity");
        q += n;
        if (quote != 0 && (q >= c->len || s[q++] != quote))
            return fail(c, "DOCTYPE or entity");
        p = q;
    }
    p = skip_ws(c, p);
    if (p >= c->len || s[p] != '>')
        return fail(c, "DOCTYPE or entity");
    c->doctype_seen = 1;
    c->pos = p + 1;
    return LH_OK;
}

static enum lh_status text(struct ctx *c)
{
    const char *s = c->s;
    size_t start = c->pos;
    const char *lt = memchr(s + start, '<', c->len - start);
    size_t end = lt != NULL ? (size_t)(lt - s) : c->len;
    size_t n;
    enum lh_status st;

    c->pos = end;
    if (c->depth == 0) {
        for (size_t i = start; i < end; i++)
            if (!is_ws((unsigned char)s[i]))
                return fail(c, "text outside the svg element");
        return LH_OK;
    }
    size_t bad = find(s + start, end - start, 0, "]]>");
    if (bad != SIZE_MAX)
        return malformed(c, start + bad);
    if (c->stack[c->depth - 1].kind != K_STYLE)
        return decode(c, start, end - start, c->buf, &n);
    st = decode(c, start, end - start, c->buf + c->css, &n);
    if (st == LH_OK)
        c->css += n;
    return st;
}

/* <![CDATA[...]]>, only in <style>, where its text joins the rest. */
static enum lh_status cdata(struct ctx *c)
{
    size_t start = c->pos + 9, end;

    if (c->depth == 0 || c->stack[c->depth - 1].kind != K_STYLE || c->len - c->pos < 9 ||
        memcmp(c->s + c->pos, "<![CDATA[", 9) != 0)
        return fail(c, "CDATA section");
    end = find(c->s, c->len, start, "]]>");
    if (end == SIZE_MAX)
        return malformed(c, c->pos);
    memcpy(c->buf + c->css, c->s + start, end - start);
    c->css += end - start;
    c->pos = end + 3;
    return LH_OK;
}

/* All the text of a <style>, at its end tag. */
static enum lh_status check_style(struct ctx *c)
{
    /* An HTML serializer writes style text unescaped: "&lt;" must not
     * become markup if the image is ever inlined. */
    if (memchr(c->buf, '<', c->css) != NULL)
        return fail(c, "style with <");
    return check_css(c, c->buf, c->css, "style");
}

static enum lh_status comment(struct ctx *c)
{
    size_t start = c->pos + 4;
    size_t end = find(c->s, c->len, start, "-->");
    const char *body = c->s + start;
    size_t n;

    if (end == SIZE_MAX)
        return malformed(c, c->pos);
    if (c->depth > 0 && c->stack[c->depth - 1].kind == K_STYLE)
        return fail(c, "comment inside style");
    n = end - start;
    if (has_prefix(body, n, ">") || has_prefix(body, n, "->") || (n > 0 && body[n - 1] == '-'))
        return malformed(c, c->pos);
    size_t dd = find(body, n, 0, "--");
    if (dd != SIZE_MAX)
        return malformed(c, start + dd);
    if (memchr(body, '<', n) != NULL)
        return fail(c, "comment containing <");
    c->pos = end + 3;
    return LH_OK;
}

static enum lh_status end_tag(struct ctx *c)
{
    const char *s = c->s;
    size_t tag = c->pos, p = c->pos + 2;
    size_t nlen = scan_name(s + p, c->len - p);

    if (nlen == 0)
        return malformed(c, p);
    size_t noff = p;
    p += nlen;
    while (p < c->len && is_ws((unsigned char)s[p]))
        p++;
    if (p >= c->len || s[p] != '>')
        return malformed(c, p);
    if (c->depth == 0)
        return malformed(c, tag);
    const struct elem *top = &c->stack[c->depth - 1];
    if (top->len != nlen || memcmp(s + top->off, s + noff, nlen) != 0)
        return malformed(c, tag);
    if (top->kind == K_STYLE) {
        enum lh_status st = check_style(c);
        if (st != LH_OK)
            return st;
    }
    c->depth--;
    if (c->depth == 0)
        c->root_done = 1;
    c->pos = p + 1;
    return LH_OK;
}

/* Where an element may appear (known before its attributes are read). */
static enum lh_status placement(struct ctx *c, size_t noff, size_t nlen)
{
    char name[NAME_BUF];

    lower_name(c->s + noff, nlen, name);
    if (c->root_done)
        return fail(c, "content after the svg element");
    if (c->depth == 0 && strcmp(name, "svg") != 0)
        return fail(c, "not an SVG document");
    if (c->depth > 0 && c->stack[c->depth - 1].kind != K_NORMAL) {
        const struct elem *top = &c->stack[c->depth - 1];
        return fail(c, "element %.*s inside %.*s", shown(nlen), c->s + noff, shown(top->len),
                    c->s + top->off);
    }
    if (c->depth == LH_SVG_MAX_DEPTH)
        return fail(c, "nested deeper than %d elements", LH_SVG_MAX_DEPTH);
    return LH_OK;
}

/* Which elements may appear, and what they may hold; scope: the namespaces
 * declared for it. */
static enum lh_status check_element(struct ctx *c, size_t noff, size_t nlen, unsigned scope,
                                    enum kind *kind)
{
    char name[NAME_BUF];
    int whole = lower_name(c->s + noff, nlen, name);
    const char *colon = strrchr(name, ':');
    const char *local = colon != NULL ? colon + 1 : name;
    int k = whole ? prefix_space(name) : -1;

    *kind = K_NORMAL;
    if (strcmp(local, "script") == 0)
        return fail(c, "script element");
    if (strcmp(local, "foreignobject") == 0)
        return fail(c, "foreignObject element");
    if (k >= NS_META) /* rendered as nothing; its content is checked as any */
        return scope & (1u << k) ? LH_OK : undeclared(c, name);
    /* svg:rect too: HTML reads it as an unknown element. */
    if (!whole || !in_list(name, elements))
        return fail(c, "element %.*s not allowed", shown(nlen), c->s + noff);
    if (strcmp(name, "style") == 0)
        *kind = K_STYLE;
    else if (strcmp(name, "title") == 0 || strcmp(name, "desc") == 0)
        *kind = K_TEXT;
    return LH_OK;
}

static enum lh_status start_tag(struct ctx *c)
{
    const char *s = c->s;
    size_t tag = c->pos, p = c->pos + 1;
    size_t noff = p, nlen = scan_name(s + p, c->len - p);
    size_t attrs[LH_SVG_MAX_ATTRS][4];    /* name offset and length, value offset and length */
    size_t nattrs = 0, sloppy = SIZE_MAX; /* where the first non-XML syntax was */
    unsigned scope = c->depth > 0 ? c->stack[c->depth - 1].scope : 0;
    char elem[NAME_BUF], name[NAME_BUF];
    enum kind kind = K_NORMAL;
    int empty;
    enum lh_status st;

    if (nlen == 0)
        return malformed(c, p);
    st = placement(c, noff, nlen);
    if (st != LH_OK)
        return st;
    lower_name(s + noff, nlen, elem);
    p += nlen;
    for (;;) {
        size_t before = p;
        while (p < c->len && is_ws((unsigned char)s[p]))
            p++;
        if (p >= c->len)
            return malformed(c, tag);
        if (s[p] == '>') {
            empty = 0;
            p++;
            break;
        }
        if (s[p] == '/') {
            if (p + 1 < c->len && s[p + 1] == '>') {
                empty = 1;
                p += 2;
                break;
            }
            /* HTML reads <svg/onload=...> as an attribute: keep going, refuse later. */
            if (sloppy == SIZE_MAX)
                sloppy = p;
            p++;
            continue;
        }
        if (p == before && sloppy == SIZE_MAX)
            sloppy = p;
        size_t aoff = p, alen = scan_name(s + p, c->len - p);
        if (alen == 0)
            return malformed(c, p);
        p += alen;
        while (p < c->len && is_ws((unsigned char)s[p]))
            p++;
        size_t voff = p, vlen = 0;
        if (p < c->len && s[p] == '=') {
            p++;
            while (p < c->len && is_ws((unsigned char)s[p]))
                p++;
            if (p >= c->len)
                return malformed(c, tag);
            if (s[p] == '"' || s[p] == '\'') {
                const char *end = memchr(s + p + 1, s[p], c->len - p - 1);
                if (end == NULL)
                    return malformed(c, p);
                voff = p + 1;
                vlen = (size_t)(end - (s + voff));
                p = voff + vlen + 1;
                const char *lt = memchr(s + voff, '<', vlen);
                if (lt != NULL && sloppy == SIZE_MAX)
                    sloppy = (size_t)(lt - s);
            } else {
                voff = p;
                while (p < c->len && !is_ws((unsigned char)s[p]) && s[p] != '>')
                    p++;
                vlen = p - voff;
                if (vlen == 0)
                    return malformed(c, voff);
                if (sloppy == SIZE_MAX)
                    sloppy = voff;
            }
        } else if (sloppy == SIZE_MAX) {
            sloppy = p; /* an attribute with no value */
        }
        for (size_t k = 0; k < nattrs; k++) {
            if (attrs[k][1] != alen)
                continue;
            size_t i = 0;
            while (i < alen &&
                   lower((unsigned char)s[attrs[k][0] + i]) == lower((unsigned char)s[aoff + i]))
                i++;
            if (i == alen)
                return fail(c, "duplicate attribute %.*s", shown(alen), s + aoff);
        }
        if (nattrs == LH_SVG_MAX_ATTRS)
            return fail(c, "more than %d attributes on one element", LH_SVG_MAX_ATTRS);
        attrs[nattrs][0] = aoff;
        attrs[nattrs][1] = alen;
        attrs[nattrs][2] = voff;
        attrs[nattrs][3] = vlen;
        nattrs++;
    }
    /* Declarations first: they hold for the element's own name and attributes. */
    int exact = c->depth == 0 && memcmp(s + noff, "svg", 3) == 0; /* XML: <SVG> is not svg */
    for (size_t k = 0; k < nattrs; k++) {
        lower_name(s + attrs[k][0], attrs[k][1], name);
        if (is_decl(name)) {
            st = declare(c, name, attrs[k][2], attrs[k][3], &scope);
            if (st != LH_OK)
                return st;
        }
        if (strcmp(name, "xmlns") == 0)
            exact = exact && memcmp(s + attrs[k][0], "xmlns", 5) == 0;
    }
    st = check_element(c, noff, nlen, scope, &kind);
    if (st != LH_OK)
        return st;
    for (size_t k = 0; k < nattrs; k++) {
        st = check_attr(c, elem, scope, attrs[k][0], attrs[k][1], attrs[k][2], attrs[k][3]);
        if (st != LH_OK)
            return st;
    }
    if (sloppy != SIZE_MAX)
        return malformed(c, sloppy);
    c->pos = p;
    c->root_seen = 1;
    if (c->depth == 0)
        c->root_svg = exact && (scope & (1u << NS_DEFAULT)) != 0;
    if (empty) {
        if (c->depth == 0)
            c->root_done = 1;
        return LH_OK;
    }
    c->stack[c->depth].off = noff;
    c->stack[c->depth].len = nlen;
    c->stack[c->depth].kind = kind;
    c->stack[c->depth].scope = scope;
    c->depth++;
    if (kind == K_STYLE)
        c->css = 0;
    return LH_OK;
}

static enum lh_status parse(struct ctx *c)
{
    static const char *const declarations[] = {"<!entity", "<!attlist", "<!element", "<!notation",
                                               NULL};
    enum lh_status st = LH_OK;

    if (starts_i(c, 0, "\xef\xbb\xbf"))
        c->pos = 3;
    /* The declaration is allowed only first: "<?xml " or "<?xml?". */
    if (c->len - c->pos > 5 && memcmp(c->s + c->pos, "<?xml", 5) == 0 &&
        (is_ws((unsigned char)c->s[c->pos + 5]) || c->s[c->pos + 5] == '?')) {
        st = xml_decl(c);
        if (st != LH_OK)
            return st;
    }
    while (c->pos < c->len) {
        if (c->s[c->pos] != '<') {
            st = text(c);
        } else if (starts_i(c, c->pos, "<!--")) {
            st = comment(c);
        } else if (starts_i(c, c->pos, "<![")) {
            st = cdata(c);
        } else if (starts_i(c, c->pos, "<!doctype")) {
            st = doctype(c);
        } else if (starts_i(c, c->pos, "<!")) {
            st = malformed(c, c->pos);
            for (int k = 0; declarations[k]; k++)
                if (starts_i(c, c->pos, declarations[k]))
                    st = fail(c, "DOCTYPE or entity");
        } else if (starts_i(c, c->pos, "<?")) {
            st = fail(c, "processing instruction");
        } else if (starts_i(c, c->pos, "</")) {
            st = end_tag(c);
        } else {
            st = start_tag(c);
        }
        if (st != LH_OK)
            return st;
    }
    if (!c->root_seen)
        return fail(c, "not an SVG document");
    if (c->depth > 0) {
        const struct elem *top = &c->stack[c->depth - 1];
        return fail(c, "unclosed element %.*s", shown(top->len), c->s + top->off);
    }
    /* Checked last, so that what else is wrong is named first. */
    if (!c->root_svg)
        return fail(c, "root element must be svg in the SVG namespace");
    return LH_OK;
}

enum lh_status lh_svg_check(const char *svg, size_t len, char *why, size_t whylen)
{
    struct ctx c;
    enum lh_status st;

    c.s = svg;
    c.len = len;
    c.pos = 0;
    c.why = why;
    c.whylen = why != NULL ? whylen : 0;
    c.buf = NULL;
    c.css = 0;
    c.depth = 0;
    c.root_seen = c.root_done = c.root_svg = c.doctype_seen = 0;
    if (c.whylen > 0)
        why[0] = '\0';
    if (svg == NULL && len > 0)
        return fail(&c, "no document");
    if (len > LH_SVG_MAX_BYTES)
        return fail(&c, "larger than 256 KiB");
    if (svg == NULL)
        return fail(&c, "not an SVG document");
    st = check_encoding(&c);
    if (st != LH_OK)
        return st;
    c.buf = malloc(len + 1);
    if (c.buf == NULL) {
        fail(&c, "out of memory");
        return LH_ERR_NOMEM;
    }
    st = parse(&c);
    free(c.buf);
    return st;
}
