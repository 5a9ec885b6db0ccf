/*
 * sdnotify — systemd's readiness protocol (sd_notify(3)) without libsystemd:
 * one datagram to $NOTIFY_SOCKET.  A no-op when not started by systemd.
 */
#ifndef NITRIDE_COMMON_SDNOTIFY_H
#define NITRIDE_COMMON_SDNOTIFY_H

/* Send `msg` ("READY=1", "RELOADING=1", "STOPPING=1", "STATUS=…"); errors are
 * ignored, as a daemon must run the same with or without a supervisor. */
void sd_notify_msg(const char *msg);

#endif
