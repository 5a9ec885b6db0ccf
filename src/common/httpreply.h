/*
 * httpreply: send an evhttp reply as one write.
 *
 * evhttp puts the status line and headers in one evbuffer chain and moves
 * the body in as another; libevent's TLS bufferevent then calls SSL_write
 * once per chain.  So a small reply went out as two TLS records in two
 * write(2) calls, and the client often woke once for each.  A reply up to
 * one TLS record's payload is made contiguous before it is written.
 */
#ifndef NITRIDE_COMMON_HTTPREPLY_H
#define NITRIDE_COMMON_HTTPREPLY_H

#include <event2/buffer.h>
#include <event2/http.h>

/* Replies up to this size (headers and body) leave in one TLS record. */
#define HTTP_REPLY_ONE_RECORD 16384

/* evhttp_send_reply(req, code, reason, body), then joins the reply into one
 * chain if it is no larger than HTTP_REPLY_ONE_RECORD.  body may be NULL; it
 * is drained as by evhttp_send_reply and stays the caller's to free. */
void http_send_reply(struct evhttp_request *req, int code, const char *reason,
		     struct evbuffer *body);

#endif
