/*
 * Retries of transient failures (SM_EAGAIN: timeouts, resets, refused
 * connections, HTTP 5xx/429), one policy for every layer that retries (the
 * S3 requests, a worker's transfer of a key).
 *
 * An operation is tried at least `min_attempts` times, with exponential
 * backoff and jitter (base_ms, doubling, at most cap_ms). While the peer was
 * healthy lately it goes on past that until `budget_ms` have passed since
 * its first attempt, so a short outage (a load balancer restarting for a few
 * seconds) costs no key. "Healthy" is a clock shared by everything that
 * talks to the same peer: the time of its last success. After
 * SM_RETRY_SICK_MS without one the peer counts as down, every operation
 * stops at min_attempts, and a dead server fails the run's keys quickly
 * instead of each waiting out its budget.
 */
#ifndef SM_RETRY_H
#define SM_RETRY_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "err.h"

#define SM_RETRY_SICK_MS 60000u

/* The time of a peer's last success (sm_now_ns), shared; 0: none yet, which
 * counts as healthy from the clock's creation (sm_retry_health_init). */
struct sm_retry_health {
	_Atomic uint64_t last_ok_ns;
};
void sm_retry_health_init(struct sm_retry_health *h);
void sm_retry_ok(struct sm_retry_health *h); /* accepts NULL */

struct sm_retry {
	unsigned min_attempts;
	unsigned budget_ms;
	unsigned base_ms;
	unsigned cap_ms;
	struct sm_retry_health *health; /* NULL: only min_attempts */
};

/* After attempt number `attempt` (1-based) of an operation whose first
 * attempt began at `t0_ns` failed with `err`: true when another attempt is
 * worth it (then sleep sm_retry_backoff() before it). */
bool sm_retry_should(const struct sm_retry *p, enum sm_err err, int attempt, uint64_t t0_ns);
void sm_retry_backoff(const struct sm_retry *p, int attempt);

#endif
