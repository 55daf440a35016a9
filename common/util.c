#include "util.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>

size_t sm_strlcpy(char *dst, const char *src, size_t size)
{
	size_t n = strlen(src);
	if (size) {
		size_t c = n < size - 1 ? n : size - 1;
		memcpy(dst, src, c);
		dst[c] = '\0';
	}
	return n;
}

char *sm_strdup(const char *s)
{
	return s ? strdup(s) : NULL;
}

char *sm_strndup(const char *s, size_t n)
{
	char *p = malloc(n + 1);
	if (!p)
		return NULL;
	if (n) /* s may be NULL when n == 0 (an empty protobuf bytes field) */
		memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

char *sm_strcat2(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	char *p = malloc(la + lb + 1);
	if (!p)
		return NULL;
	memcpy(p, a, la);
	memcpy(p + la, b, lb + 1);
	return p;
}

enum sm_err sm_buf_append(struct sm_buf *b, const void *data, size_t n)
{
	size_t limit = b->limit ? b->limit : SM_BUF_DEFAULT_LIMIT;
	if (n > limit || b->len > limit - n)
		return SM_ENOMEM;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap < b->len + n + 1)
			cap *= 2;
		char *p = realloc(b->p, cap);
		if (!p)
			return SM_ENOMEM;
		b->p = p;
		b->cap = cap;
	}
	if (n)
		memcpy(b->p + b->len, data, n);
	b->len += n;
	b->p[b->len] = '\0';
	return SM_OK;
}

enum sm_err sm_buf_appendz(struct sm_buf *b, const char *s)
{
	return sm_buf_append(b, s, strlen(s));
}

void sm_buf_release(struct sm_buf *b)
{
	if (!b)
		return;
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
}

int sm_key_cmp(const char *a, const char *b)
{
	return strcmp(a, b); /* C requires unsigned char comparison */
}

bool sm_key_is_dir(const char *key)
{
	size_t n = strlen(key);
	return n > 0 && key[n - 1] == '/';
}

enum sm_err sm_key_check(const char *key, struct sm_diag *d)
{
	size_t n = strlen(key);
	if (n == 0)
		return sm_diag_set(d, SM_EUNSAFE, 0, "empty key refused");
	if (n >= PATH_MAX)
		return sm_diag_set(d, SM_EUNSAFE, 0, "key '%.64s...' is too long", key);
	if (key[0] == '/')
		return sm_diag_set(d, SM_EUNSAFE, 0, "absolute key '%s' refused", key);
	const char *c = key;
	while (*c) {
		const char *e = strchr(c, '/');
		size_t len = e ? (size_t)(e - c) : strlen(c);
		if (len == 0)
			return sm_diag_set(d, SM_EUNSAFE, 0, "key '%s' has an empty component",
			                   key);
		if (len == 1 && c[0] == '.')
			return sm_diag_set(d, SM_EUNSAFE, 0, "key '%s' has a '.' component", key);
		if (len == 2 && c[0] == '.' && c[1] == '.')
			return sm_diag_set(
			        d, SM_EUNSAFE, 0,
			        "key '%s' has a '..' component (it would leave the root)", key);
		if (!e)
			break;
		c = e + 1;
	}
	return SM_OK;
}

int sm_key_depth(const char *key)
{
	int depth = 0;
	const char *p = key;
	while (*p) {
		depth++;
		const char *e = strchr(p, '/');
		if (!e)
			break;
		p = e + 1;
	}
	return depth;
}

void sm_fmt_size(char *buf, size_t n, uint64_t bytes)
{
	static const char *const unit[] = { "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
	if (bytes < 1024) {
		snprintf(buf, n, "%" PRIu64 " B", bytes);
		return;
	}
	double v = (double)bytes / 1024.0;
	int u = 0;
	while (v >= 1024.0 && u < 5) {
		v /= 1024.0;
		u++;
	}
	snprintf(buf, n, v < 10 ? "%.1f %s" : "%.0f %s", v, unit[u]);
}

void sm_fmt_duration(char *buf, size_t n, double seconds)
{
	if (seconds < 0 || seconds > 1e9) {
		snprintf(buf, n, "--");
		return;
	}
	uint64_t s = (uint64_t)(seconds + 0.5);
	if (s >= 3600)
		snprintf(buf, n, "%" PRIu64 "h%02" PRIu64 "m%02" PRIu64 "s", s / 3600, s / 60 % 60,
		         s % 60);
	else if (s >= 60)
		snprintf(buf, n, "%" PRIu64 "m%02" PRIu64 "s", s / 60, s % 60);
	else
		snprintf(buf, n, "%" PRIu64 "s", s);
}

bool sm_parse_i64(const char *s, int64_t min, int64_t max, int64_t *out)
{
	if (!s || !*s)
		return false;
	char *end = NULL;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || *end || end == s || v < min || v > max)
		return false;
	*out = v;
	return true;
}

int64_t sm_time_ns(int64_t sec, int64_t nsec, int8_t *clamp)
{
	int8_t c = sec > 9223372035 ? 1 : sec < -9223372035 ? -1 : 0;
	if (clamp)
		*clamp = c;
	if (c)
		return c > 0 ? SM_NS_MAX : SM_NS_MIN;
	return sec * 1000000000 + nsec;
}

unsigned sm_umask(void)
{
	FILE *f = fopen("/proc/self/status", "re");
	char line[256];
	unsigned um = 0;
	bool found = false;
	while (f && !found && fgets(line, sizeof(line), f))
		found = sscanf(line, "Umask: %o", &um) == 1;
	if (f)
		fclose(f);
	if (!found) {
		mode_t m = umask(022);
		umask(m);
		um = (unsigned)m;
	}
	return um & 0777;
}

uint64_t sm_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

double sm_now_s(void)
{
	return (double)sm_now_ns() / 1e9;
}

void sm_sleep_ms(unsigned ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

void sm_cond_init_mono(pthread_cond_t *cv)
{
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(cv, &ca);
	pthread_condattr_destroy(&ca);
}

int sm_cond_wait_until(pthread_cond_t *cv, pthread_mutex_t *mu, uint64_t deadline_ns)
{
	struct timespec ts = { .tv_sec = (time_t)(deadline_ns / 1000000000u),
		               .tv_nsec = (long)(deadline_ns % 1000000000u) };
	return pthread_cond_timedwait(cv, mu, &ts) == ETIMEDOUT ? 0 : 1;
}

int sm_cond_wait_ms(pthread_cond_t *cv, pthread_mutex_t *mu, unsigned ms)
{
	return sm_cond_wait_until(cv, mu, sm_now_ns() + (uint64_t)ms * 1000000u);
}

uint64_t sm_rand64(void)
{
	uint64_t v;
	if (getrandom(&v, sizeof(v), GRND_NONBLOCK) == (ssize_t)sizeof(v))
		return v;
	/* splitmix64 over the clock: only used when the kernel pool is not ready. */
	static _Thread_local uint64_t state;
	state += sm_now_ns() + 0x9e3779b97f4a7c15ull;
	uint64_t z = state;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* realpath() of `path`, or of its nearest existing ancestor plus the rest. */
char *sm_realpath_loose(const char *path)
{
	char buf[PATH_MAX];
	if (realpath(path, buf))
		return strdup(buf);
	char tmp[PATH_MAX];
	if (sm_strlcpy(tmp, path, sizeof(tmp)) >= sizeof(tmp))
		return NULL;
	size_t n = strlen(tmp);
	while (n > 1 && tmp[n - 1] == '/')
		tmp[--n] = '\0';
	char *slash = strrchr(tmp, '/');
	const char *rest = slash ? slash + 1 : tmp;
	char *parent = slash ? (slash == tmp ? strdup("/") : sm_strndup(tmp, (size_t)(slash - tmp)))
	                     : strdup(".");
	if (!parent)
		return NULL;
	char *rp = sm_realpath_loose(parent);
	free(parent);
	if (!rp)
		return NULL;
	char out[PATH_MAX];
	snprintf(out, sizeof(out), "%s%s%s", rp, strcmp(rp, "/") ? "/" : "", rest);
	free(rp);
	return strdup(out);
}
