/*
 * sim_log — one line per event on stderr: "snpsimd: LEVEL: text".
 * Thread-safe (one fprintf per line).  Callers never pass key material.
 */
#ifndef NITRIDE_SIM_LOG_H
#define NITRIDE_SIM_LOG_H

enum sim_log_level { SIM_LOG_ERROR = 0, SIM_LOG_WARN, SIM_LOG_INFO, SIM_LOG_DEBUG };

/* Lines above `level` are dropped (default SIM_LOG_INFO). */
void sim_log_set_level(enum sim_log_level level);
void sim_log(enum sim_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Write a one-line reason into err[errlen] (if err is not NULL) and return -1,
 * the simulator modules' error convention: `return sim_fail(err, errlen, …);`. */
#include <stddef.h>
int sim_fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
