# Writes OUT: a C file holding each Lua file of FILES (separated by |) as a string, and a table
# lh_embedded_lua[] of {module name, source, length} ending with a NULL name.
# lua/luahost/request.lua becomes the module "luahost.request".
set(body "/* Generated from the files of lua/luahost/ by cmake/embed_lua.cmake; do not edit. */\n#include <stddef.h>\n#include \"lua_modules.h\"\n")
set(table "const struct lh_embedded_lua lh_embedded_lua[] = {\n")
string(REPLACE "|" ";" FILES "${FILES}")
set(i 0)
foreach(f ${FILES})
  get_filename_component(name ${f} NAME_WE)
  file(READ ${f} hex HEX)
  string(LENGTH "${hex}" hexlen)
  math(EXPR len "${hexlen} / 2")
  string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
  string(APPEND body "static const char src${i}[] = {${bytes}0};\n")
  string(APPEND table "    {\"luahost.${name}\", src${i}, ${len}},\n")
  math(EXPR i "${i} + 1")
endforeach()
string(APPEND table "    {NULL, NULL, 0},\n};\n")
file(WRITE ${OUT} "${body}${table}")
