/* httpreply: send an evhttp reply as one write (see httpreply.h). */
#include "common/httpreply.h"

#include <event2/bufferevent.h>

void
http_send_reply(struct evhttp_request *req, int code, const char *reason, struct evbuffer *body)
{
	/* Looked up before the send, which frees the request at once when it
	 * has no connection left; a connection stays until its write is done. */
	struct evhttp_connection *conn = evhttp_request_get_connection(req);
	struct evbuffer *out;

	evhttp_send_reply(req, code, reason, body);
	if (conn == NULL)
		return;
	/* The write itself happens on a later turn of the loop, when the socket
	 * is reported writable, so the whole reply is in the buffer now.  A
	 * failed pullup (no memory) leaves the chains as they were: the reply
	 * still goes out, in two records. */
	out = bufferevent_get_output(evhttp_connection_get_bufferevent(conn));
	if (evbuffer_get_length(out) <= HTTP_REPLY_ONE_RECORD)
		(void)evbuffer_pullup(out, -1);
}
