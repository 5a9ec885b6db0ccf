/*
 * listen — the TCP socket a service (attestd, provd) accepts on.
 *
 * One place for what both need: non-blocking and close-on-exec for
 * libevent's loops, SO_REUSEADDR so that a restart can bind at once, and
 * TCP_NODELAY, which Linux passes on to every accepted connection.  Over TLS
 * an answer can leave as several records, and with Nagle the second one would
 * wait for the client's delayed ACK (40 ms per request).
 */
#ifndef NITRIDE_COMMON_LISTEN_H
#define NITRIDE_COMMON_LISTEN_H

#include <stdbool.h>
#include <stddef.h>

#define LISTEN_BACKLOG 512
#define LISTEN_URL_MAX 80 /* "https://[" + an IPv6 address + "]:65535" fits */

/*
 * Bind host:port (a numeric address or a name; port 0 takes a free one) and
 * listen.  On success *fd_out is the socket and url ("http://…" or
 * "https://…" as `tls` says, IPv6 in brackets) names the address actually
 * bound.  Returns 0, or -1 with err saying what failed ("listen HOST:PORT:
 * reason") and nothing left open.
 */
__attribute__((warn_unused_result)) int listen_tcp(const char *host, unsigned port, bool tls,
						   int *fd_out, char *url, size_t urllen,
						   char *err, size_t errlen);

#endif
