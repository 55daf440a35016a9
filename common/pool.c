#include "pool.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "util.h"

enum { JOB_IDLE, JOB_QUEUED, JOB_RUNNING, JOB_DONE };

#define POOL_WAIT_MAX_S 2

struct sm_pool {
	pthread_mutex_t mu;
	pthread_cond_t work_cv;   /* a job was queued, or stop */
	pthread_cond_t done_cv;   /* a job finished */
	pthread_cond_t budget_cv; /* bytes of the budget came back */
	struct sm_job *head, *tail;
	int n_queued;
	pthread_t *th;
	int max_threads;
	int n_threads;
	int n_idle;
	bool stop;
	size_t budget;
	size_t reserved;
};

enum sm_err sm_pool_new(int nthreads, size_t budget, struct sm_pool **out, struct sm_diag *d)
{
	struct sm_pool *p = calloc(1, sizeof(*p));
	if (!p || !(p->th = calloc((size_t)(nthreads > 0 ? nthreads : 1), sizeof(*p->th)))) {
		free(p);
		return sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
	}
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->work_cv, NULL);
	pthread_cond_init(&p->done_cv, NULL);
	sm_cond_init_mono(&p->budget_cv);
	p->max_threads = nthreads;
	p->budget = budget;
	*out = p;
	return SM_OK;
}

void sm_pool_free(struct sm_pool *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	p->stop = true;
	pthread_cond_broadcast(&p->work_cv);
	pthread_mutex_unlock(&p->mu);
	for (int i = 0; i < p->n_threads; i++)
		pthread_join(p->th[i], NULL);
	pthread_cond_destroy(&p->work_cv);
	pthread_cond_destroy(&p->done_cv);
	pthread_cond_destroy(&p->budget_cv);
	pthread_mutex_destroy(&p->mu);
	free(p->th);
	free(p);
}

/* Run j (taken off the queue, state RUNNING) and mark it done. Called and
 * returns with p->mu held. */
static void pool_run(struct sm_pool *p, struct sm_job *j)
{
	pthread_mutex_unlock(&p->mu);
	j->fn(j);
	pthread_mutex_lock(&p->mu);
	j->state = JOB_DONE;
	pthread_cond_broadcast(&p->done_cv);
}

static void *pool_thread(void *arg)
{
	struct sm_pool *p = arg;
	pthread_mutex_lock(&p->mu);
	for (;;) {
		while (!p->head && !p->stop) {
			p->n_idle++;
			pthread_cond_wait(&p->work_cv, &p->mu);
			p->n_idle--;
		}
		if (!p->head)
			break; /* stopping, nothing queued */
		struct sm_job *j = p->head;
		p->head = j->next;
		if (!p->head)
			p->tail = NULL;
		p->n_queued--;
		j->state = JOB_RUNNING;
		pool_run(p, j);
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

void sm_pool_submit(struct sm_pool *p, struct sm_job *j)
{
	j->next = NULL;
	if (!p) {
		j->state = JOB_DONE;
		j->fn(j);
		return;
	}
	pthread_mutex_lock(&p->mu);
	j->state = JOB_QUEUED;
	if (p->tail)
		p->tail->next = j;
	else
		p->head = j;
	p->tail = j;
	p->n_queued++;
	/* One more thread when none is free for it; without one the waiter
	 * runs it. */
	if (p->n_queued > p->n_idle && p->n_threads < p->max_threads &&
	    pthread_create(&p->th[p->n_threads], NULL, pool_thread, p) == 0)
		p->n_threads++;
	pthread_cond_signal(&p->work_cv);
	pthread_mutex_unlock(&p->mu);
}

void sm_pool_wait(struct sm_pool *p, struct sm_job *j)
{
	if (!p)
		return; /* it ran in submit */
	pthread_mutex_lock(&p->mu);
	if (j->state == JOB_QUEUED) {
		/* nobody took it: unlink it and run it here */
		struct sm_job **pp = &p->head, *prev = NULL;
		while (*pp != j) {
			prev = *pp;
			pp = &(*pp)->next;
		}
		*pp = j->next;
		if (p->tail == j)
			p->tail = prev;
		p->n_queued--;
		j->state = JOB_RUNNING;
		pool_run(p, j);
	}
	while (j->state != JOB_DONE)
		pthread_cond_wait(&p->done_cv, &p->mu);
	pthread_mutex_unlock(&p->mu);
}

bool sm_pool_reserve(struct sm_pool *p, size_t n)
{
	if (!p)
		return false;
	pthread_mutex_lock(&p->mu);
	bool ok = p->reserved <= p->budget && p->budget - p->reserved >= n;
	if (ok)
		p->reserved += n;
	pthread_mutex_unlock(&p->mu);
	return ok;
}

void sm_pool_reserve_wait(struct sm_pool *p, size_t n, bool holding)
{
	if (!p)
		return;
	uint64_t until = sm_now_ns() + (uint64_t)POOL_WAIT_MAX_S * 1000000000u;
	pthread_mutex_lock(&p->mu);
	while (p->reserved && (p->reserved > p->budget || p->budget - p->reserved < n))
		if (!holding)
			pthread_cond_wait(&p->budget_cv, &p->mu);
		else if (!sm_cond_wait_until(&p->budget_cv, &p->mu, until))
			break;
	p->reserved += n;
	pthread_mutex_unlock(&p->mu);
}

void sm_pool_unreserve(struct sm_pool *p, size_t n)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	p->reserved -= n;
	pthread_cond_broadcast(&p->budget_cv);
	pthread_mutex_unlock(&p->mu);
}
