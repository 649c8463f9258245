/* src/headers.c: placeholder, being written. */
#include "luahost/headers.h"
