/* include/luahost/svg.h: a validator for uploaded SVG images. It refuses (it
 * never rewrites) a document that could run script, load anything from
 * outside itself, or be read differently by an XML and an HTML parser.
 * Thread safety: stateless; call it from any thread. */
#ifndef LUAHOST_SVG_H
#define LUAHOST_SVG_H
#include "luahost/common.h"
#include <stddef.h>

#define LH_SVG_MAX_BYTES (256 * 1024) /* larger documents are refused */
#define LH_SVG_MAX_DEPTH 128          /* element nesting */
#define LH_SVG_MAX_ATTRS 64           /* attributes on one element */
#define LH_SVG_WHY_LEN 96             /* a why buffer this size never truncates */

/* Checks the len bytes at svg (no NUL needed; never read past len; not kept).
 * What passes: valid UTF-8; an optional UTF-8 BOM and <?xml?> declaration
 * (encoding UTF-8 only); comments; one root <svg>; elements from an
 * allowlist (shapes, text, gradients, clipPath, mask, pattern, symbol, use,
 * marker, filter and fe*, style, image); href and xlink:href that are a local
 * "#fragment", or on <image> a base64 data: URL of PNG, JPEG, GIF or WebP;
 * other attribute values and <style> text with no url( other than url(#id),
 * no @import, expression(, image(, image-set(, src(, backslash escapes,
 * javascript:, vbscript:, data: or "://". Names match case-insensitively;
 * character references are decoded, and whitespace and control characters
 * ignored, before values are checked.
 * What fails, with a short lowercase reason in why (NUL-terminated, truncated
 * to whylen; why may be NULL when whylen is 0): DOCTYPE and entity
 * declarations, processing instructions, CDATA, on* attributes, other
 * namespaces, unknown entities, malformed markup ("malformed markup at byte
 * N"), more than LH_SVG_MAX_BYTES.
 * Returns LH_OK (why set to "") when the document is safe, LH_ERR_INVALID
 * when it is refused, LH_ERR_NOMEM when the scratch buffer (len bytes) could
 * not be allocated. */
enum lh_status lh_svg_check(const char *svg, size_t len, char *why, size_t whylen);

#endif
