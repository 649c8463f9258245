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
 * (encoding UTF-8 only); the SVG 1.1 DOCTYPE (PUBLIC "-//W3C//DTD SVG 1.1//EN"
 * "http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd", no internal subset)
 * before the root; comments; one root <svg xmlns="http://www.w3.org/2000/svg">;
 * elements from an allowlist (shapes, text, gradients, clipPath, mask,
 * pattern, symbol, use, marker, filter and fe*, style, image, a, metadata,
 * and SVG fonts: font, font-face, font-face-src, font-face-name, glyph,
 * missing-glyph, hkern, vkern); href and xlink:href that are a local
 * "#fragment", or on <image> a base64 data: URL of PNG, JPEG, GIF or WebP;
 * other attribute values and <style> text (CDATA sections included, all of
 * it checked together) with no url( other than url(#id), no @import,
 * expression(, image(, image-set(, src(, backslash escapes, javascript:,
 * vbscript:, data: or "://"; the namespace declarations xmlns (SVG only),
 * xmlns:svg, xmlns:xlink and Inkscape's metadata xmlns:dc, cc, rdf,
 * sodipodi and inkscape, each with its usual URI; elements and attributes in
 * those metadata namespaces (values not checked: browsers ignore them, as
 * they do a glyph's unicode value, which is not CSS either). Names match
 * case-insensitively (but the root's "svg" and "xmlns", which XML reads as
 * written); character references are decoded, and
 * whitespace and control characters ignored, before values are checked.
 * What fails, with a short lowercase reason in why (NUL-terminated, truncated
 * to whylen; why may be NULL when whylen is 0): other DOCTYPEs and entity
 * declarations, processing instructions, CDATA outside <style>, on*
 * attributes, other namespaces or prefixes, a prefix used where it is not
 * declared ("undeclared namespace prefix P"), a root not in the SVG
 * namespace, <font> with color, face or size (HTML leaves SVG there),
 * unknown entities, malformed markup ("malformed markup at byte N"), more
 * than LH_SVG_MAX_BYTES.
 * Returns LH_OK (why set to "") when the document is safe, LH_ERR_INVALID
 * when it is refused, LH_ERR_NOMEM when the scratch buffer (len bytes) could
 * not be allocated. */
enum lh_status lh_svg_check(const char *svg, size_t len, char *why, size_t whylen);

#endif
