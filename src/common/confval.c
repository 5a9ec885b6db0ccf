#include "common/confval.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

int
conf_str(char *dst, size_t cap, const char *v)
{
	size_t n = strlen(v);

	if (n >= cap)
		return -1;
	memcpy(dst, v, n + 1);
	return 0;
}

int
conf_uint(const char *v, unsigned long lo, unsigned long hi, unsigned *out)
{
	char *end = NULL;
	unsigned long x;

	if (*v < '0' || *v > '9')
		return -1; /* no sign, no space: strtoul would accept both */
	errno = 0;
	x = strtoul(v, &end, 10);
	if (errno != 0 || *end != '\0' || x < lo || x > hi || x > (unsigned long)(unsigned)-1)
		return -1;
	*out = (unsigned)x;
	return 0;
}

int
conf_bool(const char *v, bool *out)
{
	if (!strcmp(v, "yes") || !strcmp(v, "true") || !strcmp(v, "1") || !strcmp(v, "on"))
		*out = true;
	else if (!strcmp(v, "no") || !strcmp(v, "false") || !strcmp(v, "0") || !strcmp(v, "off"))
		*out = false;
	else
		return -1;
	return 0;
}

int
conf_hostport(const char *v, char *host, size_t hostcap, unsigned *port)
{
	const char *colon = strrchr(v, ':');
	const char *h = v;
	size_t hl;

	if (colon == NULL || conf_uint(colon + 1, 0, 65535, port) != 0)
		return -1;
	hl = (size_t)(colon - v);
	if (hl >= 2 && v[0] == '[' && v[hl - 1] == ']') {
		h = v + 1;
		hl -= 2;
	}
	if (hl == 0 || hl >= hostcap)
		return -1;
	memcpy(host, h, hl);
	host[hl] = '\0';
	return 0;
}

bool
conf_is_loopback(const char *host)
{
	struct in_addr a4;
	struct in6_addr a6;

	if (strcmp(host, "localhost") == 0)
		return true;
	if (inet_pton(AF_INET, host, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (inet_pton(AF_INET6, host, &a6) == 1)
		return IN6_IS_ADDR_LOOPBACK(&a6);
	return false;
}
