/* src/db.c: placeholder, being written. */
#include "luahost/db.h"
