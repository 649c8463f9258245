/* src/ratelimit.c: placeholder, being written. */
