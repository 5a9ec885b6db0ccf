/*
 * workq — a fixed pool of threads over one FIFO of jobs (see workq.h).
 */
#include "common/workq.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

struct job {
	workq_fn *fn;
	void *arg;
	struct job *next;
};

struct workq {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct job *head, *tail;
	bool stopping;
	size_t n_threads;
	pthread_t threads[];
};

static void *
runner(void *p)
{
	workq *q = p;
	struct job *j;

	for (;;) {
		(void)pthread_mutex_lock(&q->mu);
		while (q->head == NULL && !q->stopping)
			(void)pthread_cond_wait(&q->cv, &q->mu);
		j = q->head;
		if (j == NULL) { /* stopping, and nothing left to run */
			(void)pthread_mutex_unlock(&q->mu);
			return NULL;
		}
		q->head = j->next;
		if (q->head == NULL)
			q->tail = NULL;
		(void)pthread_mutex_unlock(&q->mu);
		j->fn(j->arg);
		free(j);
	}
}

int
workq_start(size_t threads, workq **out)
{
	workq *q;
	size_t i;

	*out = NULL;
	if (threads == 0 || threads > 256)
		return -1;
	if ((q = calloc(1, sizeof(*q) + threads * sizeof(pthread_t))) == NULL)
		return -1;
	(void)pthread_mutex_init(&q->mu, NULL);
	(void)pthread_cond_init(&q->cv, NULL);
	for (i = 0; i < threads; i++) {
		if (pthread_create(&q->threads[i], NULL, runner, q) != 0)
			break;
		q->n_threads = i + 1;
	}
	if (q->n_threads != threads) {
		workq_stop(q);
		return -1;
	}
	*out = q;
	return 0;
}

int
workq_submit(workq *q, workq_fn *fn, void *arg)
{
	struct job *j;
	int r = -1;

	if (q == NULL || fn == NULL || (j = malloc(sizeof(*j))) == NULL)
		return -1;
	j->fn = fn;
	j->arg = arg;
	j->next = NULL;
	(void)pthread_mutex_lock(&q->mu);
	if (!q->stopping) {
		if (q->tail != NULL)
			q->tail->next = j;
		else
			q->head = j;
		q->tail = j;
		r = 0;
		(void)pthread_cond_signal(&q->cv);
	}
	(void)pthread_mutex_unlock(&q->mu);
	if (r != 0)
		free(j);
	return r;
}

void
workq_stop(workq *q)
{
	size_t i;

	if (q == NULL)
		return;
	(void)pthread_mutex_lock(&q->mu);
	q->stopping = true;
	(void)pthread_cond_broadcast(&q->cv);
	(void)pthread_mutex_unlock(&q->mu);
	for (i = 0; i < q->n_threads; i++)
		(void)pthread_join(q->threads[i], NULL);
	pthread_mutex_destroy(&q->mu);
	pthread_cond_destroy(&q->cv);
	free(q);
}
