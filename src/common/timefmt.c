#include "timefmt.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* Read exactly n decimal digits. */
static bool
digits(const char **p, int n, int *out)
{
	int v = 0, i;

	for (i = 0; i < n; i++) {
		char c = (*p)[i];

		if (c < '0' || c > '9')
			return false;
		v = v * 10 + (c - '0');
	}
	*p += n;
	*out = v;
	return true;
}

static bool
expect(const char **p, const char *set)
{
	if (**p == '\0' || strchr(set, **p) == NULL)
		return false;
	(*p)++;
	return true;
}

static int
days_in_month(int year, int month)
{
	static const int mdays[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;

	return month == 2 && leap ? 29 : mdays[month - 1];
}

int
rfc3339_parse(const char *s, time_t *out)
{
	struct tm tm = { 0 };
	int year, mon, day, hour, min, sec, oh = 0, om = 0, sign = 0;
	const char *p = s;
	time_t t;

	if (s == NULL || out == NULL)
		return -1;
	if (!digits(&p, 4, &year) || !expect(&p, "-") || !digits(&p, 2, &mon) ||
	    !expect(&p, "-") || !digits(&p, 2, &day) || !expect(&p, "Tt ") ||
	    !digits(&p, 2, &hour) || !expect(&p, ":") || !digits(&p, 2, &min) ||
	    !expect(&p, ":") || !digits(&p, 2, &sec))
		return -1;
	if (*p == '.') {
		p++;
		if (*p < '0' || *p > '9')
			return -1;
		while (*p >= '0' && *p <= '9')
			p++;
	}
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		sign = *p == '+' ? 1 : -1;
		p++;
		if (!digits(&p, 2, &oh) || !expect(&p, ":") || !digits(&p, 2, &om) || oh > 23 ||
		    om > 59)
			return -1;
	} else {
		return -1;
	}
	if (*p != '\0')
		return -1;
	/* Leap seconds (sec 60) are folded into the next second by timegm. */
	if (year < 1970 || mon < 1 || mon > 12 || day < 1 || day > days_in_month(year, mon) ||
	    hour > 23 || min > 59 || sec > 60)
		return -1;
	tm.tm_year = year - 1900;
	tm.tm_mon = mon - 1;
	tm.tm_mday = day;
	tm.tm_hour = hour;
	tm.tm_min = min;
	tm.tm_sec = sec;
	if ((t = timegm(&tm)) == (time_t)-1)
		return -1;
	*out = t - sign * (time_t)(oh * 3600 + om * 60);
	return 0;
}

void
rfc3339_format(time_t t, char out[RFC3339_LEN])
{
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL || strftime(out, RFC3339_LEN, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		(void)snprintf(out, RFC3339_LEN, "invalid-time");
}
