#include "retry.h"

#include "util.h"

void sm_retry_health_init(struct sm_retry_health *h)
{
	atomic_init(&h->last_ok_ns, sm_now_ns());
}

void sm_retry_ok(struct sm_retry_health *h)
{
	if (h)
		atomic_store_explicit(&h->last_ok_ns, sm_now_ns(), memory_order_relaxed);
}

bool sm_retry_should(const struct sm_retry *p, enum sm_err err, int attempt, uint64_t t0_ns)
{
	if (!sm_err_retryable(err))
		return false;
	if (attempt >= (int)p->min_attempts) {
		uint64_t now = sm_now_ns();
		if (!p->health || now - t0_ns >= (uint64_t)p->budget_ms * 1000000u)
			return false;
		uint64_t ok = atomic_load_explicit(&p->health->last_ok_ns, memory_order_relaxed);
		if (now > ok && now - ok >= (uint64_t)SM_RETRY_SICK_MS * 1000000u)
			return false; /* down for a while: no more waiting per key */
	}
	return true;
}

void sm_retry_backoff(const struct sm_retry *p, int attempt)
{
	unsigned ms = p->base_ms;
	for (int i = 1; i < attempt && ms < p->cap_ms; i++)
		ms *= 2;
	if (ms > p->cap_ms)
		ms = p->cap_ms;
	ms += (unsigned)(sm_rand64() % (ms / 2 + 1));
	sm_sleep_ms(ms);
}
