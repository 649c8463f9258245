/* src/fingerprint.c: placeholder, being written. */
#include "luahost/fingerprint.h"
