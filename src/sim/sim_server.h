/*
 * sim_server — snpsimd's Unix socket (simproto.h framing): one thread per
 * connection, each serving any number of request/response frame pairs with
 * bounded reads and the simproto timeouts.
 */
#ifndef NITRIDE_SIM_SERVER_H
#define NITRIDE_SIM_SERVER_H

#include <stddef.h>

#include "sim/sim_firmware.h"

#define SIM_SERVER_MAX_CONN 32      /* further connections are closed at once */
#define SIM_SERVER_MAX_REQUEST 4096 /* every request payload is far smaller */

struct sim_server;

/* Bind and listen on `path` (mode 0600; an existing socket file is replaced,
 * anything else there is an error).  `fw` is borrowed and must outlive the
 * server.  Returns 0 or -1 with err. */
__attribute__((warn_unused_result)) int sim_server_start(const char *path, const struct sim_fw *fw,
							 struct sim_server **out, char *err,
							 size_t errlen);
/* The listening descriptor (non-blocking), for the caller's event loop. */
int sim_server_fd(const struct sim_server *srv);
/* Accept pending connections and hand each to a thread. */
void sim_server_accept(struct sim_server *srv);
/* Number of requests answered so far. */
unsigned long sim_server_requests(struct sim_server *srv);
/* Stop: close the listener, unlink the socket, end open connections and wait
 * (bounded) for their threads; then free.  NULL is accepted. */
void sim_server_stop(struct sim_server *srv);

/*
 * Serve one connection on `fd` until the peer closes it, a read fails or
 * times out (the caller closes fd).  Exposed for tests (socketpair).
 * Returns the number of requests answered.
 */
unsigned sim_server_serve_fd(const struct sim_fw *fw, int fd);

#endif
