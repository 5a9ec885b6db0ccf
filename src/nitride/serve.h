/*
 * serve — nitrided's daemon side (docs/nitrided.md): answers vhsmd's
 * NITRIDED_PROVISION and NITRIDED_ATTEST requests (docs/vhsm-protocol.md,
 * "Case B") on a Unix socket, one thread per connection, so one slow flow
 * does not hold up the others.  Only peers whose SO_PEERCRED uid is the
 * configured vhsmd uid are served.
 */
#ifndef NITRIDE_AGENT_SERVE_H
#define NITRIDE_AGENT_SERVE_H

#include <stdbool.h>
#include <sys/types.h>

#include "nitride/flow.h"

struct serve_config {
	const char *socket_path;  /* where to listen (replaced if a stale socket is there) */
	uid_t vhsmd_uid;          /* the only uid served */
	const struct flow_config *flow;
};

/* Bind and listen.  Returns the listening fd or -1 (reason on stderr). */
int serve_listen(const char *path);

/*
 * Accept and serve until *stop becomes true (checked at least every 200 ms)
 * or a fatal error.  Each connection gets a detached thread that serves its
 * requests in order and ends at EOF.  Returns 0 when stopped, -1 on error.
 */
int serve_run(const struct serve_config *sc, int lfd, volatile bool *stop);

#endif
