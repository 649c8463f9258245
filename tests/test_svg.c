/* tests/test_svg.c: the SVG upload validator against known XSS payloads,
 * obfuscated variants, legitimate images, and random mutations. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "luahost/svg.h"

#define NS "xmlns=\"http://www.w3.org/2000/svg\""
#define XL "xmlns:xlink=\"http://www.w3.org/1999/xlink\""

struct refusal {
    const char *svg;
    const char *why; /* the exact reason */
};

/* 1 and a message when svg is not refused with exactly want. */
static int refused_wrongly(const char *svg, size_t len, const char *want)
{
    char why[LH_SVG_WHY_LEN];
    enum lh_status st = lh_svg_check(svg, len, why, sizeof(why));

    if (st == LH_ERR_INVALID && strcmp(why, want) == 0)
        return 0;
    print_error("payload: %s\n  want: %s\n  got: %d %s\n", svg, want, (int)st, why);
    return 1;
}

static void expect_refused(const char *svg, size_t len, const char *want)
{
    if (refused_wrongly(svg, len, want))
        fail();
}

static void expect_ok(const char *svg)
{
    char why[LH_SVG_WHY_LEN];
    enum lh_status st = lh_svg_check(svg, strlen(svg), why, sizeof(why));

    if (st != LH_OK || why[0] != '\0') {
        print_error("document: %s\n  refused: %s\n", svg, why);
        fail();
    }
}

/* Checks every row, then fails once if any was wrong. */
static void expect_table(const struct refusal *t, size_t n)
{
    int wrong = 0;

    for (size_t i = 0; i < n; i++)
        wrong += refused_wrongly(t[i].svg, strlen(t[i].svg), t[i].why);
    assert_int_equal(wrong, 0);
}

/* -- Known payloads ------------------------------------------------------- */

static const struct refusal payloads[] = {
    {"<svg onload=alert(1)>", "event handler attribute onload"},
    {"<svg/onload=alert(1)>", "event handler attribute onload"},
    {"<svg " NS " onload=\"alert(1)\"></svg>", "event handler attribute onload"},
    {"<svg><script>alert(1)</script></svg>", "script element"},
    {"<svg><script xlink:href=\"data:,alert(1)\"/></svg>", "script element"},
    {"<svg " XL "><a xlink:href=\"javascript:alert(1)\"><text>x</text></a></svg>",
     "javascript: URL in xlink:href"},
    {"<svg><animate onbegin=alert(1) attributeName=x dur=1s>", "element animate not allowed"},
    {"<svg><set attributeName=\"href\" to=\"javascript:alert(1)\"/></svg>",
     "element set not allowed"},
    {"<svg><foreignObject><iframe src=javascript:alert(1)></iframe></foreignObject></svg>",
     "foreignObject element"},
    {"<!DOCTYPE svg [<!ENTITY x \"y\">]><svg>&x;</svg>", "DOCTYPE or entity"},
    {"<svg><use href=\"http://evil/x.svg#a\"/></svg>", "external reference in href"},
    {"<svg " XL "><use xlink:href=\"//evil/x.svg#a\"/></svg>", "external reference in xlink:href"},
    {"<svg><image href=\"https://evil/x.png\"/></svg>", "external reference in href"},
    {"<svg><image href=\"x.png\"/></svg>", "external reference in href"},
    {"<svg><use href=\"javascript:alert(1)\"/></svg>", "javascript: URL in href"},
    {"<svg><use href=\"&#x6A;avascript:alert(1)\"/></svg>", "javascript: URL in href"},
    {"<svg><use href=\"&#106;&#97;vascript:alert(1)\"/></svg>", "javascript: URL in href"},
    {"<svg><use href=\"&#x0000006A;avascript:alert(1)\"/></svg>", "javascript: URL in href"},
    {"<svg><use href=\" jav&#x09;ascript:alert(1)\"/></svg>", "javascript: URL in href"},
    {"<svg><use href=\"java\tscript:alert(1)\"/></svg>", "javascript: URL in href"},
    {"<svg><use href=\"java&#10;script:alert(1)\"/></svg>", "javascript: URL in href"},
    {"<svg><use href=\"JaVaScRiPt:alert(1)\"/></svg>", "javascript: URL in href"},
    {"<svg><use href=\"javascript&colon;alert(1)\"/></svg>", "unknown entity &colon;"},
    {"<svg><use href=\"vbscript:msgbox(1)\"/></svg>", "vbscript: URL in href"},
    {"<SVG><SCRIPT>alert(1)</SCRIPT></SVG>", "script element"},
    {"<svg><ScRiPt>alert(1)</ScRiPt></svg>", "script element"},
    {"<svg><svg:script>alert(1)</svg:script></svg>", "script element"},
    {"<svg><rect ONLOAD=\"alert(1)\"/></svg>", "event handler attribute onload"},
    {"<svg><rect xlink:onclick=\"alert(1)\"/></svg>", "event handler attribute xlink:onclick"},
    {"<svg><style>@import url(http://evil)</style></svg>", "style with url("},
    {"<svg><style>@import 'http://evil/x.css';</style></svg>", "style with @import"},
    {"<svg><style>@im&#x70;ort 'x.css';</style></svg>", "style with @import"},
    {"<svg><rect style=\"background:url(javascript:alert(1))\"/></svg>", "style with url("},
    {"<svg><rect style=\"fill:u\\72l(http://evil)\"/></svg>", "style with backslash escape"},
    {"<svg><rect style=\"width:expression(alert(1))\"/></svg>", "style with expression("},
    {"<svg><rect style=\"fill:URL( 'http://evil/x' )\"/></svg>", "style with url("},
    {"<svg><rect style=\"background:image-set('http://evil/x.png' 1x)\"/></svg>",
     "style with image-set("},
    {"<svg><rect style=\"fill:u/**/rl(x.svg#a)\"/></svg>", "style with url("},
    {"<svg><rect fill=\"url(http://evil/x.svg#g)\"/></svg>", "fill with url("},
    {"<svg><rect filter=\"url(x.svg#f)\"/></svg>", "filter with url("},
    {"<svg><a href=\" jav&#x09;ascript:alert(1)\">", "javascript: URL in href"},
    {"<svg><handler ev:event=\"load\">alert(1)</handler></svg>", "element handler not allowed"},
    {"<svg><handler xmlns:ev=\"http://www.w3.org/2001/xml-events\" ev:event=\"load\">"
     "alert(1)</handler></svg>",
     "attribute xmlns:ev not allowed"},
    {"<svg><g xmlns:ev=\"http://www.w3.org/2001/xml-events\" ev:event=\"load\"/></svg>",
     "attribute xmlns:ev not allowed"},
    {"<svg><iframe>", "element iframe not allowed"},
    {"<svg><img src=x onerror=alert(1)></svg>", "element img not allowed"},
    {"<svg><embed src=\"data:text/html,x\"/></svg>", "element embed not allowed"},
    {"<?xml-stylesheet href=\"evil\"?><svg/>", "processing instruction"},
    {"<?xml version=\"1.0\"?><?xml-stylesheet type=\"text/xsl\" href=\"evil.xsl\"?><svg/>",
     "processing instruction"},
    {"<svg><![CDATA[<script>alert(1)</script>]]></svg>", "CDATA section"},
    {"<svg><style><![CDATA[@import url(x)]]></style></svg>", "style with url("},
    {"<svg><image href=\"data:text/html;base64,PHNjcmlwdD4=\"/></svg>", "data: URL in href"},
    {"<svg><image href=\"data:image/svg+xml;base64,PHN2Zz4=\"/></svg>", "data: URL in href"},
    {"<svg><use href=\"data:image/png;base64,iVBORw0KGgo=\"/></svg>", "data: URL in href"},
    {"<svg><rect fill=\"url(data:image/svg+xml,x)\"/></svg>", "fill with url("},
    {"<svg><rect title=\"data:text/html,x\"/></svg>", "data: URL in title"},
    {"<svg><g xml:base=\"http://evil/\"><use href=\"#a\"/></g></svg>",
     "attribute xml:base not allowed"},
    {"<svg xmlns=\"http://www.w3.org/1999/xhtml\"><style/></svg>",
     "namespace not allowed in xmlns"},
    {"<html><body><svg/></body></html>", "not an SVG document"},
    /* HTML and XML read these differently. */
    {"<svg><!--><script>alert(1)</script>--></svg>", "malformed markup at byte 5"},
    {"<svg><!-- --!><script>alert(1)</script> --></svg>", "malformed markup at byte 10"},
    {"<svg><desc><style><!--</style><img src=x onerror=alert(1)>--></style></desc></svg>",
     "element style inside desc"},
    {"<svg><style><!--</style><img src=x onerror=alert(1)>--></style></svg>",
     "comment inside style"},
    {"<svg><title><img src=x onerror=alert(1)></title></svg>", "element img inside title"},
    {"<svg><rect x=\"1\"y=\"2\"/></svg>", "malformed markup at byte 16"},
    {"<svg><rect x=\"1\" x=\"2\"/></svg>", "duplicate attribute x"},
    {"<svg><rect width=100/></svg>", "malformed markup at byte 17"},
};

static void test_lh_svg_check_refuses_known_payloads(void **state)
{
    (void)state;
    assert_true(sizeof(payloads) / sizeof(payloads[0]) >= 25);
    expect_table(payloads, sizeof(payloads) / sizeof(payloads[0]));
}

/* -- Structure ------------------------------------------------------------ */

static const struct refusal structure[] = {
    {"", "not an SVG document"},
    {"   ", "not an SVG document"},
    {"<!-- only a comment -->", "not an SVG document"},
    {"hello <svg/>", "text outside the svg element"},
    {"<svg/>trailing", "text outside the svg element"},
    {"<svg/><svg/>", "content after the svg element"},
    {"<svg><g></svg>", "malformed markup at byte 8"},
    {"<svg><g>", "unclosed element g"},
    {"<svg", "malformed markup at byte 0"},
    {"<svg><rect x=\"1/></svg>", "malformed markup at byte 13"},
    {"< svg/>", "malformed markup at byte 1"},
    {"<svg>&amp</svg>", "malformed markup at byte 5"},
    {"<svg>&#0;</svg>", "malformed markup at byte 5"},
    {"<svg>&#x110000;</svg>", "malformed markup at byte 5"},
    {"<svg>a]]>b</svg>", "malformed markup at byte 6"},
    {"<svg><!-- a -- b --></svg>", "malformed markup at byte 12"},
    {"<svg><!-- a <b> --></svg>", "comment containing <"},
    {"<svg><!ELEMENT x ANY></svg>", "DOCTYPE or entity"},
    {"<svg><!doctype html></svg>", "DOCTYPE or entity"},
    {"<?xml version=\"1.0\" encoding=\"UTF-7\"?><svg/>", "encoding other than UTF-8"},
    /* The declaration's values: markup to an HTML parser, which ends the
     * declaration at the first '>' (the rest would be live HTML). */
    {"<?xml version=\"1.0\" standalone=\"><img src=x onerror=alert(1)>\"?><svg/>",
     "malformed markup at byte 32"},
    {"<?xml version=\"><script>alert(1)</script>\"?><svg/>", "malformed markup at byte 15"},
    {"<?xml?><svg/>", "malformed markup at byte 5"},
    {"<?xml version=\"1.0\" version=\"1.0\"?><svg/>", "malformed markup at byte 20"},
    {"<?xml standalone=\"no\" version=\"1.0\"?><svg/>", "malformed markup at byte 5"},
    {"<?xml version=\"1.0\" standalone=\"no\" encoding=\"utf-8\"?><svg/>",
     "malformed markup at byte 36"},
    {"<?xml version=\"1.0\" standalone=\"encoding='iso-2022-jp'\" encoding=\"utf-8\"?><svg/>",
     "malformed markup at byte 32"},
    {"<?xml version=\"1.0\"encoding=\"utf-8\"?><svg/>", "malformed markup at byte 19"},
    {"<?xml version=\"2.0\"?><svg/>", "malformed markup at byte 15"},
    {"<svg/><?xml version=\"1.0\"?>", "processing instruction"},
    {"<svg><style><g/></style></svg>", "element g inside style"},
    /* An HTML serializer writes <style> text as it is: "&lt;" would become markup. */
    {"<svg><style>&lt;/style&gt;&lt;img src=x onerror=alert(1)&gt;</style></svg>", "style with <"},
};

static void test_lh_svg_check_refuses_malformed_markup(void **state)
{
    (void)state;
    expect_table(structure, sizeof(structure) / sizeof(structure[0]));
}

/* -- Namespaces, TikZ and Inkscape additions ------------------------------ */

#define SVG_OPEN "<svg " NS ">"
#define DC "xmlns:dc=\"http://purl.org/dc/elements/1.1/\""
#define RDF "xmlns:rdf=\"http://www.w3.org/1999/02/22-rdf-syntax-ns#\""
#define XHTML "\"http://www.w3.org/1999/xhtml\""
#define DTD_SVG11                                                                                  \
    "PUBLIC \"-//W3C//DTD SVG 1.1//EN\" \"http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd\""

static const struct refusal namespaces[] = {
    /* A browser shows nothing for these: the root is not in the SVG namespace,
     * or a prefix is unbound (an XML error). */
    {"<svg><rect/></svg>", "root element must be svg in the SVG namespace"},
    {"<svg/>", "root element must be svg in the SVG namespace"},
    {"<svg xmlns:svg=\"http://www.w3.org/2000/svg\"><rect/></svg>",
     "root element must be svg in the SVG namespace"},
    {"<svg><g " NS "/></svg>", "root element must be svg in the SVG namespace"},
    /* XML names are case-sensitive: neither is the SVG root to a browser. */
    {"<SVG " NS "/>", "root element must be svg in the SVG namespace"},
    {"<svg XMLNS=\"http://www.w3.org/2000/svg\"/>",
     "root element must be svg in the SVG namespace"},
    {SVG_OPEN "<use xlink:href=\"#p\"/></svg>", "undeclared namespace prefix xlink"},
    {SVG_OPEN "<g " XL "/><use xlink:href=\"#p\"/></svg>", "undeclared namespace prefix xlink"},
    {SVG_OPEN "<metadata><dc:title>x</dc:title></metadata></svg>",
     "undeclared namespace prefix dc"},
    {SVG_OPEN "<g inkscape:label=\"x\"/></svg>", "undeclared namespace prefix inkscape"},
    /* XHTML in SVG runs scripts, under any prefix or as the default. */
    {"<svg " NS " xmlns:html=" XHTML "><html:script>alert(1)</html:script></svg>",
     "attribute xmlns:html not allowed"},
    {SVG_OPEN "<h:iframe xmlns:h=" XHTML " src=\"javascript:alert(1)\"/></svg>",
     "attribute xmlns:h not allowed"},
    {SVG_OPEN "<g xmlns=" XHTML "><script>alert(1)</script></g></svg>",
     "namespace not allowed in xmlns"},
    {"<svg " NS " " RDF "><metadata><rdf:RDF xmlns=" XHTML "><iframe/></rdf:RDF></metadata></svg>",
     "namespace not allowed in xmlns"},
    {SVG_OPEN "<g xmlns=\"\"><rect/></g></svg>", "namespace not allowed in xmlns"},
    /* A metadata prefix bound elsewhere, a metadata or XLink URI under
     * another prefix, a prefix rebound inside. */
    {"<svg " NS " xmlns:dc=" XHTML "><dc:script>alert(1)</dc:script></svg>",
     "namespace not allowed in xmlns:dc"},
    {"<svg " NS " xmlns:inkscape=" XHTML "><inkscape:img src=\"x\"/></svg>",
     "namespace not allowed in xmlns:inkscape"},
    {"<svg " NS " xmlns:x=\"http://purl.org/dc/elements/1.1/\"><x:title/></svg>",
     "attribute xmlns:x not allowed"},
    {"<svg " NS
     " xmlns:l=\"http://www.w3.org/1999/xlink\"><a l:href=\"javascript:alert(1)\"/></svg>",
     "attribute xmlns:l not allowed"},
    {"<svg " NS " " RDF "><g xmlns:rdf=" XHTML "/></svg>", "namespace not allowed in xmlns:rdf"},
    {"<svg " NS " " XL "><g xmlns:xlink=\"http://purl.org/dc/elements/1.1/\">"
     "<a xlink:href=\"javascript:alert(1)\"/></g></svg>",
     "namespace not allowed in xmlns:xlink"},
    {"<svg " NS " xmlns:xml=\"http://www.w3.org/XML/1998/namespace\"/>",
     "attribute xmlns:xml not allowed"},
    /* Inside metadata the SVG allowlist still holds. */
    {"<svg " NS " " RDF "><metadata><rdf:RDF><script>alert(1)</script></rdf:RDF></metadata></svg>",
     "script element"},
    {"<svg " NS " " RDF "><metadata><rdf:RDF><iframe src=\"x\"/></rdf:RDF></metadata></svg>",
     "element iframe not allowed"},
    {"<svg " NS " " DC "><dc:x><foreignObject/></dc:x></svg>", "foreignObject element"},
    {"<svg " NS " " DC "><dc:x><animate attributeName=\"x\"/></dc:x></svg>",
     "element animate not allowed"},
    {"<svg " NS " " DC "><dc:script>alert(1)</dc:script></svg>", "script element"},
    {"<svg " NS " " DC "><dc:title onclick=\"alert(1)\"/></svg>",
     "event handler attribute onclick"},
    {"<svg " NS " " DC "><g dc:onload=\"alert(1)\"/></svg>", "event handler attribute dc:onload"},
    {"<svg " NS " " DC "><dc:x style=\"fill:url(http://evil/)\"/></svg>", "style with url("},
    {"<svg " NS " " DC "><dc:a:b/></svg>", "element dc:a:b not allowed"},
    /* Prefixed SVG: HTML sees unknown elements and attributes. */
    {"<svg " NS " xmlns:svg=\"http://www.w3.org/2000/svg\"><svg:rect/></svg>",
     "element svg:rect not allowed"},
    {"<svg " NS " xmlns:svg=\"http://www.w3.org/2000/svg\"><rect svg:fill=\"red\"/></svg>",
     "attribute svg:fill not allowed"},
};

static void test_lh_svg_check_refuses_foreign_and_undeclared_namespaces(void **state)
{
    (void)state;
    expect_table(namespaces, sizeof(namespaces) / sizeof(namespaces[0]));
}

static const struct refusal styles_links_fonts[] = {
    /* CDATA joins the style's text, which is checked as a whole. */
    {SVG_OPEN "<style>@im<![CDATA[port 'x.css';]]></style></svg>", "style with @import"},
    {SVG_OPEN "<style><![CDATA[@im]]><![CDATA[port 'x.css';]]></style></svg>",
     "style with @import"},
    {SVG_OPEN "<style><![CDATA[</style><img src=x onerror=alert(1)>]]></style></svg>",
     "style with <"},
    {SVG_OPEN "<style><![CDATA[.a{fill:url(http://evil/x)}]]></style></svg>", "style with url("},
    {SVG_OPEN "<style><![CDATA[.a{fill:u\\72l(x)}]]></style></svg>", "style with backslash escape"},
    {SVG_OPEN "<style><![CDATA[.a{fill:u/**/rl(x.svg#a)}]]></style></svg>", "style with url("},
    {SVG_OPEN "<style><![CDATA[.a{background:image-set('x.png' 1x)}]]></style></svg>",
     "style with image-set("},
    {SVG_OPEN "<style><![CDATA[.a{width:expression(alert(1))}]]></style></svg>",
     "style with expression("},
    {SVG_OPEN "<style><![CDATA[x]]><!-- c --></style></svg>", "comment inside style"},
    {SVG_OPEN "<style><![CDATA[x</style></svg>", "malformed markup at byte 47"},
    {SVG_OPEN "<style><![cdata[x]]></style></svg>", "CDATA section"},
    /* CDATA anywhere else stays refused. */
    {SVG_OPEN "<text><![CDATA[x]]></text></svg>", "CDATA section"},
    {SVG_OPEN "<title><![CDATA[x]]></title></svg>", "CDATA section"},
    {"<![CDATA[x]]>" SVG_OPEN "</svg>", "CDATA section"},
    /* <a>: a same-document fragment only. */
    {SVG_OPEN "<a href=\"page.html\"><text>x</text></a></svg>", "external reference in href"},
    {"<svg " NS " " XL "><a xlink:href=\"https://evil/\"/></svg>",
     "external reference in xlink:href"},
    {SVG_OPEN "<a href=\"\"/></svg>", "external reference in href"},
    {SVG_OPEN "<a href=\"&#106;avascript:alert(1)\"/></svg>", "javascript: URL in href"},
    {SVG_OPEN "<a href=\"data:text/html,x\"/></svg>", "data: URL in href"},
    {SVG_OPEN "<a href=\"data:image/png;base64,iVBORw0KGgo=\"/></svg>", "data: URL in href"},
    {SVG_OPEN "<a href=\"#x\" onclick=\"alert(1)\"/></svg>", "event handler attribute onclick"},
    /* Fonts: no external font, and no <font> that HTML reads as its own. */
    {"<svg " NS " " XL "><font><font-face font-family=\"f\"><font-face-src><font-face-uri "
     "xlink:href=\"http://evil/f.svg#f\"/></font-face-src></font-face></font></svg>",
     "element font-face-uri not allowed"},
    {SVG_OPEN "<font color=\"red\"><glyph/></font><style>x</style></svg>",
     "attribute color not allowed on font"},
    {SVG_OPEN "<FONT FACE=\"x\"/></svg>", "attribute face not allowed on font"},
    {SVG_OPEN "<font size=\"1\"/></svg>", "attribute size not allowed on font"},
    {SVG_OPEN "<font><glyph unicode=\"a\" style=\"fill:url(http://evil/)\"/></font></svg>",
     "style with url("},
    {SVG_OPEN "<font><glyph onclick=\"alert(1)\"/></font></svg>",
     "event handler attribute onclick"},
    /* unicode is a glyph's characters only; elsewhere it is checked like any value */
    {SVG_OPEN "<text unicode=\"\\75rl(x)\">a</text></svg>", "unicode with backslash escape"},
};

static void test_lh_svg_check_refuses_bad_style_cdata_links_and_fonts(void **state)
{
    (void)state;
    expect_table(styles_links_fonts, sizeof(styles_links_fonts) / sizeof(styles_links_fonts[0]));
}

static const struct refusal doctypes[] = {
    {"<!DOCTYPE svg " DTD_SVG11 " []>" SVG_OPEN "</svg>", "DOCTYPE or entity"},
    {"<!DOCTYPE svg " DTD_SVG11 " [<!ENTITY x \"y\">]>" SVG_OPEN "&x;</svg>", "DOCTYPE or entity"},
    {"<!DOCTYPE svg PUBLIC \"-//W3C//DTD SVG 1.1//EN\" \"http://evil/x.dtd\">" SVG_OPEN "</svg>",
     "DOCTYPE or entity"},
    {"<!DOCTYPE svg SYSTEM \"http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd\">" SVG_OPEN "</svg>",
     "DOCTYPE or entity"},
    {"<!DOCTYPE svg PUBLIC \"-//W3C//DTD SVG 1.1//EN\">" SVG_OPEN "</svg>", "DOCTYPE or entity"},
    {"<!DOCTYPE svg PUBLIC \"-//W3C//DTD SVG 1.1//EN' "
     "'http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd'>" SVG_OPEN "</svg>",
     "DOCTYPE or entity"},
    {"<!doctype svg " DTD_SVG11 ">" SVG_OPEN "</svg>", "DOCTYPE or entity"},
    {"<!DOCTYPE html>" SVG_OPEN "</svg>", "DOCTYPE or entity"},
    {"<!DOCTYPE svg " DTD_SVG11 "><!DOCTYPE svg " DTD_SVG11 ">" SVG_OPEN "</svg>",
     "DOCTYPE or entity"},
    {SVG_OPEN "<!DOCTYPE svg " DTD_SVG11 "></svg>", "DOCTYPE or entity"},
    {"<!DOCTYPEsvg " DTD_SVG11 ">" SVG_OPEN "</svg>", "DOCTYPE or entity"},
};

static void test_lh_svg_check_refuses_other_doctypes(void **state)
{
    (void)state;
    expect_table(doctypes, sizeof(doctypes) / sizeof(doctypes[0]));
}

static void test_lh_svg_check_refuses_bad_bytes(void **state)
{
    (void)state;
    expect_refused("<svg>\xc3</svg>", 12, "invalid UTF-8 at byte 5");
    expect_refused("<svg>\xc0\xaf</svg>", 13, "invalid UTF-8 at byte 5");         /* overlong */
    expect_refused("<svg>\xed\xa0\x80</svg>", 14, "invalid UTF-8 at byte 5");     /* surrogate */
    expect_refused("<svg>\xf4\x90\x80\x80</svg>", 15, "invalid UTF-8 at byte 5"); /* > U+10FFFF */
    expect_refused("<svg>\x01</svg>", 12, "control character at byte 5");
    expect_refused("<svg>\0</svg>", 12, "control character at byte 5");
    expect_refused("<svg>\xef\xbf\xbe</svg>", 14, "U+FFFE, not an XML character, at byte 5");
    expect_refused("<svg a='\xef\xbf\xbf'/>", 14, "U+FFFF, not an XML character, at byte 8");
    expect_ok("<svg " NS "><text>\xef\xbf\xbd</text></svg>"); /* U+FFFD: an XML character */
    expect_refused("\xff\xfe<\0s\0v\0g\0/\0>\0", 14, "invalid UTF-8 at byte 0"); /* UTF-16 */
}

static void test_lh_svg_check_refuses_more_than_256_kib(void **state)
{
    size_t n = LH_SVG_MAX_BYTES + 1;
    char *big = malloc(n);
    (void)state;
    assert_non_null(big);
    memset(big, ' ', n);
    memcpy(big, "<svg " NS ">", 40);
    memcpy(big + n - 6, "</svg>", 6);
    expect_refused(big, n, "larger than 256 KiB");
    /* Exactly at the cap it is read and accepted. */
    memcpy(big + n - 7, "</svg>", 6);
    big[n - 1] = ' ';
    char why[LH_SVG_WHY_LEN];
    assert_int_equal(lh_svg_check(big, n - 1, why, sizeof(why)), LH_OK);
    free(big);
}

static void test_lh_svg_check_refuses_deep_nesting(void **state)
{
    char doc[LH_SVG_MAX_DEPTH * 3 + 16];
    size_t n = 0;
    (void)state;
    for (int i = 0; i < LH_SVG_MAX_DEPTH + 1; i++) {
        memcpy(doc + n, i == 0 ? "<svg>" : "<g>", i == 0 ? 5 : 3);
        n += i == 0 ? 5 : 3;
    }
    expect_refused(doc, n, "nested deeper than 128 elements");
}

static void test_lh_svg_check_never_reads_past_len(void **state)
{
    const char *doc = "<svg " NS "/><script>alert(1)</script>";
    size_t n = strlen("<svg " NS "/>");
    char why[LH_SVG_WHY_LEN];
    char *exact = malloc(n);
    (void)state;
    assert_int_equal(lh_svg_check(doc, n, why, sizeof(why)), LH_OK);
    /* A heap copy with no NUL after it: valgrind and ASan see any overread. */
    assert_non_null(exact);
    memcpy(exact, doc, n);
    assert_int_equal(lh_svg_check(exact, n, why, sizeof(why)), LH_OK);
    assert_int_equal(lh_svg_check(exact, n - 1, why, sizeof(why)), LH_ERR_INVALID);
    assert_string_equal(why, "malformed markup at byte 0");
    free(exact);
}

static void test_lh_svg_check_truncates_why_and_allows_null(void **state)
{
    const char *doc = "<svg onload=alert(1)>";
    char why[8];
    (void)state;
    assert_int_equal(lh_svg_check(doc, strlen(doc), why, sizeof(why)), LH_ERR_INVALID);
    assert_string_equal(why, "event h");
    assert_int_equal(lh_svg_check(doc, strlen(doc), NULL, 0), LH_ERR_INVALID);
    assert_int_equal(lh_svg_check("<svg " NS "/>", 41, NULL, 0), LH_OK);
    assert_int_equal(lh_svg_check(NULL, 0, why, sizeof(why)), LH_ERR_INVALID);
    assert_int_equal(lh_svg_check(NULL, 5, why, sizeof(why)), LH_ERR_INVALID);
}

/* -- Legitimate images ------------------------------------------------------ */

static void test_lh_svg_check_accepts_a_circle(void **state)
{
    (void)state;
    expect_ok("<svg " NS " width=\"10\" height=\"10\"><circle cx=\"5\" cy=\"5\" r=\"4\" "
              "fill=\"red\"/></svg>");
}

static void test_lh_svg_check_accepts_the_seed_images(void **state)
{
    (void)state;
    /* lua/app/seeds/001_sample_images.sql, an even and an odd row. */
    expect_ok("<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 100 100\" width=\"100\" "
              "height=\"100\"><rect width=\"100\" height=\"100\" fill=\"hsl(74,30%,92%)\"/>"
              "<circle cx=\"50\" cy=\"50\" r=\"12\" fill=\"hsl(106,70%,45%)\"/></svg>");
    expect_ok("<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 100 100\" width=\"100\" "
              "height=\"100\"><rect width=\"100\" height=\"100\" fill=\"hsl(37,30%,92%)\"/>"
              "<rect x=\"25\" y=\"25\" width=\"21\" height=\"50\" fill=\"hsl(53,70%,45%)\"/>"
              "</svg>");
}

static void test_lh_svg_check_accepts_gradients_and_local_references(void **state)
{
    (void)state;
    expect_ok("<svg " NS " xmlns:xlink=\"http://www.w3.org/1999/xlink\" viewBox=\"0 0 10 10\">\n"
              "  <defs>\n"
              "    <linearGradient id=\"g\" x1=\"0\" x2=\"1\">\n"
              "      <stop offset=\"0%\" stop-color=\"#fff\"/><stop offset=\"100%\" "
              "stop-color=\"#000\"/>\n"
              "    </linearGradient>\n"
              "    <radialGradient id=\"r\" xlink:href=\"#g\"/>\n"
              "    <clipPath id=\"c\"><circle r=\"4\"/></clipPath>\n"
              "    <filter id=\"f\"><feGaussianBlur stdDeviation=\"1\"/><feOffset dx=\"1\"/>"
              "</filter>\n"
              "    <path id=\"p\" d=\"M0 0 L10 10 Z\"/>\n"
              "  </defs>\n"
              "  <path d=\"M1 1h8v8h-8z\" fill=\"url(#g)\" stroke=\"url( '#r' )\" "
              "clip-path=\"url(#c)\" filter=\"url(#f)\"/>\n"
              "  <use href=\"#p\" x=\"1\"/><use xlink:href=\" #p\"/>\n"
              "</svg>\n");
}

static void test_lh_svg_check_accepts_text_style_and_declaration(void **state)
{
    (void)state;
    expect_ok(
        "\xef\xbb\xbf<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"no\"?>\n"
        "<!-- Drawn by hand, caf\xc3\xa9 -->\n"
        "<svg " NS " xml:space=\"preserve\">\n"
        "  <title>A &amp; B &#x263A;</title><desc>x &lt; y</desc>\n"
        "  <style>.a { fill: #123; font: 12px 'Fira Sans', sans-serif } "
        ".b > .c { mask: url(#m) }</style>\n"
        "  <text x=\"1\" y=\"10\" class=\"a\" style=\"font-weight:bold; fill:url(#g)\">"
        "Hello <tspan dy=\"2\">world</tspan> 1 > 0</text>\n"
        "  <!-- a comment inside -->\n"
        "  <image href=\"data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAf\n"
        "  FcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==\" width=\"1\" height=\"1\"/>\n"
        "  <image href=\"#p\"/>\n"
        "</svg>\n");
    expect_ok("<svg " NS "><rect RX='2' Width='3'></rect></svg>");
}

/* What `dvisvgm file.dvi` writes for a TikZ picture: SVG fonts, a CDATA
 * style block, a DOCTYPE (older versions), and a hyperref link to a view. */
static void test_lh_svg_check_accepts_dvisvgm_output(void **state)
{
    (void)state;
    expect_ok(
        "<?xml version='1.0' encoding='UTF-8'?>\n"
        "<!DOCTYPE svg PUBLIC \"-//W3C//DTD SVG 1.1//EN\" "
        "\"http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd\">\n"
        "<!-- This file was generated by dvisvgm 2.13.3 -->\n"
        "<svg version='1.1' xmlns='http://www.w3.org/2000/svg' "
        "xmlns:xlink='http://www.w3.org/1999/xlink' width='58.301pt' height='40.417pt' "
        "viewBox='-72 -72 58.301 40.417'>\n"
        "<style type='text/css'>\n"
        "<![CDATA[text.f0 {font-family:cmr10;font-size:9.96264px}\n"
        "text.f1 {font-family:cmtt10;font-size:9.96264px}\n"
        "]]>\n"
        "</style>\n"
        "<defs>\n"
        "<font id='cmr10' horiz-adv-x='0'>\n"
        "<font-face font-family='cmr10' units-per-em='1000' ascent='750' descent='250'/>\n"
        "<missing-glyph horiz-adv-x='0'/>\n"
        "<glyph unicode='a' horiz-adv-x='500' vert-adv-y='500' glyph-name='a' "
        "d='M415 119C415 77 415 27 460 27C481 27 492 45 494 77L482 82C480 60 475 52 467 52"
        "C447 52 447 78 447 108V264C447 375 372 442 255 442C170 442 98 405 98 333Z'/>\n"
        "<glyph unicode='&#x2019;' horiz-adv-x='278' vert-adv-y='278' glyph-name='quoteright' "
        "d='M189 632C189 677 172 703 145 703Z'/>\n"
        "<hkern u1='A' u2='V' k='83'/>\n"
        "</font>\n"
        "<view id='loc.1' viewBox='-72 -72 58.301 40.417'/>\n"
        "<font id='cmtt10' horiz-adv-x='0'>\n"
        "<font-face font-family='cmtt10' units-per-em='1000' ascent='750' descent='250'/>\n"
        "<glyph unicode='\\' horiz-adv-x='525' vert-adv-y='525' glyph-name='backslash' "
        "d='M430 -30C424 -40 418 -40 410 -40Z'/>\n"
        "</font>\n"
        "</defs>\n"
        "<g id='page1'>\n"
        "<path d='M-71.801 -32.082H-14.199V-71.801H-71.801Z' stroke='#000' fill='none' "
        "stroke-width='.3985' stroke-miterlimit='10'/>\n"
        "<text class='f0' x='-49.626' y='-48.906'>a&#x2019;</text>\n"
        "<text class='f1' x='-42.987' y='-48.906'>\\</text>\n"
        "<a xlink:href='#loc.1'><rect x='-50' y='-56' width='10' height='10' fill='#fff' "
        "fill-opacity='0'/></a>\n"
        "<a href='#page1'><text class='f0' x='-49' y='-40'>a</text></a>\n"
        "</g>\n"
        "</svg>\n");
}

/* Inkscape's own SVG (not "plain"): its namespaces, metadata, named view and
 * layer attributes. */
static void test_lh_svg_check_accepts_inkscape_output(void **state)
{
    (void)state;
    expect_ok(
        "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"no\"?>\n"
        "<!-- Created with Inkscape (http://www.inkscape.org/) -->\n"
        "\n"
        "<svg\n"
        "   xmlns:dc=\"http://purl.org/dc/elements/1.1/\"\n"
        "   xmlns:cc=\"http://creativecommons.org/ns#\"\n"
        "   xmlns:rdf=\"http://www.w3.org/1999/02/22-rdf-syntax-ns#\"\n"
        "   xmlns:svg=\"http://www.w3.org/2000/svg\"\n"
        "   xmlns=\"http://www.w3.org/2000/svg\"\n"
        "   xmlns:sodipodi=\"http://sodipodi.sourceforge.net/DTD/sodipodi-0.dtd\"\n"
        "   xmlns:inkscape=\"http://www.inkscape.org/namespaces/inkscape\"\n"
        "   width=\"210mm\"\n"
        "   height=\"297mm\"\n"
        "   viewBox=\"0 0 210 297\"\n"
        "   version=\"1.1\"\n"
        "   id=\"svg8\"\n"
        "   inkscape:version=\"0.92.4 (5da689c313, 2019-01-14)\"\n"
        "   sodipodi:docname=\"drawing.svg\">\n"
        "  <defs\n"
        "     id=\"defs2\" />\n"
        "  <sodipodi:namedview\n"
        "     id=\"base\"\n"
        "     pagecolor=\"#ffffff\"\n"
        "     bordercolor=\"#666666\"\n"
        "     borderopacity=\"1.0\"\n"
        "     inkscape:pageopacity=\"0.0\"\n"
        "     inkscape:pageshadow=\"2\"\n"
        "     inkscape:zoom=\"0.35\"\n"
        "     inkscape:cx=\"400\"\n"
        "     inkscape:cy=\"560\"\n"
        "     inkscape:document-units=\"mm\"\n"
        "     inkscape:current-layer=\"layer1\"\n"
        "     showgrid=\"false\"\n"
        "     inkscape:window-width=\"1920\"\n"
        "     inkscape:window-height=\"1016\"\n"
        "     inkscape:window-x=\"0\"\n"
        "     inkscape:window-y=\"27\"\n"
        "     inkscape:window-maximized=\"1\" />\n"
        "  <metadata\n"
        "     id=\"metadata5\">\n"
        "    <rdf:RDF>\n"
        "      <cc:Work\n"
        "         rdf:about=\"\">\n"
        "        <dc:format>image/svg+xml</dc:format>\n"
        "        <dc:type\n"
        "           rdf:resource=\"http://purl.org/dc/dcmitype/StillImage\" />\n"
        "        <dc:title>Commutative diagram</dc:title>\n"
        "        <cc:license\n"
        "           rdf:resource=\"http://creativecommons.org/licenses/by-sa/4.0/\" />\n"
        "      </cc:Work>\n"
        "    </rdf:RDF>\n"
        "  </metadata>\n"
        "  <g\n"
        "     inkscape:label=\"Layer 1\"\n"
        "     inkscape:groupmode=\"layer\"\n"
        "     id=\"layer1\">\n"
        "    <path\n"
        "       style=\"fill:none;stroke:#000000;stroke-width:0.26458332px;stroke-linecap:butt\"\n"
        "       d=\"m 40.065476,72.863093 76.351194,-3.401786\"\n"
        "       id=\"path815\"\n"
        "       inkscape:connector-curvature=\"0\"\n"
        "       sodipodi:nodetypes=\"cc\" />\n"
        "    <text\n"
        "       xml:space=\"preserve\"\n"
        "       style=\"font-size:10.58333302px;font-family:sans-serif;stroke-width:0.26458332\"\n"
        "       x=\"50.270832\"\n"
        "       y=\"60.994049\"\n"
        "       id=\"text819\"><tspan\n"
        "         sodipodi:role=\"line\"\n"
        "         id=\"tspan817\"\n"
        "         x=\"50.270832\"\n"
        "         y=\"60.994049\">A</tspan></text>\n"
        "  </g>\n"
        "</svg>\n");
}

static void test_lh_svg_check_accepts_local_declarations_and_doctype_forms(void **state)
{
    (void)state;
    /* Declared after its use on the same element, or on the element itself. */
    expect_ok(SVG_OPEN "<use xlink:href=\"#p\" " XL "/></svg>");
    expect_ok(SVG_OPEN "<metadata><rdf:RDF " RDF "><rdf:Description rdf:about=\"\"/></rdf:RDF>"
                       "</metadata></svg>");
    /* Redeclaring a prefix to the same namespace changes nothing. */
    expect_ok("<svg " NS " " XL "><g " NS " " XL "><use xlink:href=\"#p\"/></g></svg>");
    expect_ok(SVG_OPEN "<style/><style></style><style><![CDATA[]]></style></svg>");
    expect_ok("<!DOCTYPE svg\n  PUBLIC '-//W3C//DTD SVG 1.1//EN'\n"
              "  'http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd' >\n" SVG_OPEN "</svg>");
    expect_ok("<?xml version=\"1.0\"?><!-- c --><!DOCTYPE svg " DTD_SVG11 ">" SVG_OPEN "</svg>");
    expect_ok(SVG_OPEN "<a href=\"#x\"><circle r=\"1\"/></a><a><text>no link</text></a></svg>");
}

/* -- Random mutations ------------------------------------------------------ */

static uint32_t rng_next(uint32_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

/* 10,000 mutations of good and bad documents (bytes flipped, markup bytes
 * inserted, cut short): each call must return a status and a terminated why,
 * and valgrind/ASan must see no bad access. Deterministic seed. */
static void test_lh_svg_check_survives_random_mutations(void **state)
{
    static const char *const seeds[] = {
        ("<?xml version=\"1.0\"?><svg " NS "><defs><linearGradient id=\"g\"><stop/>"
         "</linearGradient></defs><rect fill=\"url(#g)\" style=\"a:b\"/><!-- c --></svg>"),
        ("<svg " NS "><use href=\"&#x6A;avascript:x\"/><style>.a{fill:url(#a)}</style><text>&lt;"
         "</text></svg>"),
        "<svg/onload=x><![CDATA[x]]><!DOCTYPE x><?pi?><image href='data:image/gif;base64,R0=='/>",
        ("<!DOCTYPE svg " DTD_SVG11 "><svg " NS " " XL " " DC "><style><![CDATA[text.f0{font:"
         "9px cmr10}]]></style><font><glyph unicode='\\'/></font><metadata><dc:title>t"
         "</dc:title></metadata><a xlink:href=\"#p\"><text class=\"f0\">x</text></a></svg>"),
    };
    const size_t nseeds = sizeof(seeds) / sizeof(seeds[0]);
    char doc[512], why[LH_SVG_WHY_LEN];
    static const char markup[] = "<>/=\"'&#;:!?-[] \txX";
    uint32_t seed = 0x5eed1234u;
    int ok = 0;
    (void)state;

    for (int iter = 0; iter < 10000; iter++) {
        const char *base = seeds[(size_t)iter % nseeds];
        size_t n = strlen(base);
        memcpy(doc, base, n);
        int edits = 1 + (int)(rng_next(&seed) % 4);
        for (int e = 0; e < edits && n > 0; e++) {
            uint32_t r = rng_next(&seed);
            size_t at = r % n;
            switch ((r >> 16) % 4) {
            case 0:
                doc[at] = (char)(rng_next(&seed) & 0xff);
                break;
            case 1:
                doc[at] = markup[rng_next(&seed) % (sizeof(markup) - 1)];
                break;
            case 2:
                if (n < sizeof(doc) - 1) {
                    memmove(doc + at + 1, doc + at, n - at);
                    doc[at] = markup[rng_next(&seed) % (sizeof(markup) - 1)];
                    n++;
                }
                break;
            default:
                n = at;
            }
        }
        /* A heap copy of exactly n bytes, so an overread is caught. */
        char *copy = malloc(n > 0 ? n : 1);
        assert_non_null(copy);
        memcpy(copy, doc, n);
        memset(why, 'z', sizeof(why));
        enum lh_status st = lh_svg_check(copy, n, why, sizeof(why));
        free(copy);
        assert_true(st == LH_OK || st == LH_ERR_INVALID);
        assert_non_null(memchr(why, '\0', sizeof(why)));
        if (st == LH_OK)
            ok++;
        else
            assert_true(why[0] != '\0');
    }
    /* Some mutations leave harmless documents; most break them. */
    assert_true(ok > 0);
    assert_true(ok < 10000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lh_svg_check_refuses_known_payloads),
        cmocka_unit_test(test_lh_svg_check_refuses_malformed_markup),
        cmocka_unit_test(test_lh_svg_check_refuses_foreign_and_undeclared_namespaces),
        cmocka_unit_test(test_lh_svg_check_refuses_bad_style_cdata_links_and_fonts),
        cmocka_unit_test(test_lh_svg_check_refuses_other_doctypes),
        cmocka_unit_test(test_lh_svg_check_refuses_bad_bytes),
        cmocka_unit_test(test_lh_svg_check_refuses_more_than_256_kib),
        cmocka_unit_test(test_lh_svg_check_refuses_deep_nesting),
        cmocka_unit_test(test_lh_svg_check_never_reads_past_len),
        cmocka_unit_test(test_lh_svg_check_truncates_why_and_allows_null),
        cmocka_unit_test(test_lh_svg_check_accepts_a_circle),
        cmocka_unit_test(test_lh_svg_check_accepts_the_seed_images),
        cmocka_unit_test(test_lh_svg_check_accepts_gradients_and_local_references),
        cmocka_unit_test(test_lh_svg_check_accepts_text_style_and_declaration),
        cmocka_unit_test(test_lh_svg_check_accepts_dvisvgm_output),
        cmocka_unit_test(test_lh_svg_check_accepts_inkscape_output),
        cmocka_unit_test(test_lh_svg_check_accepts_local_declarations_and_doctype_forms),
        cmocka_unit_test(test_lh_svg_check_survives_random_mutations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
