#include "sim/sim_log.h"

#include <stdarg.h>
#include <stdio.h>

static enum sim_log_level max_level = SIM_LOG_INFO;

void
sim_log_set_level(enum sim_log_level level)
{
	max_level = level;
}

void
sim_log(enum sim_log_level level, const char *fmt, ...)
{
	static const char *const names[] = { "error", "warning", "info", "debug" };
	char line[768];
	va_list ap;

	if (level > max_level)
		return;
	va_start(ap, fmt);
	(void)vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	/* One call per line so that lines from several threads do not interleave. */
	(void)fprintf(stderr, "snpsimd: %s: %s\n", names[level], line);
}

int
sim_fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err != NULL && errlen > 0) {
		va_start(ap, fmt);
		(void)vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -1;
}
