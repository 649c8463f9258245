/* src/netaddr.c: placeholder, being written. */
#include "luahost/netaddr.h"
