/* Small helpers shared by both roles: strings, keys, numbers, time. */
#ifndef SM_UTIL_H
#define SM_UTIL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

/* Copy at most size-1 bytes and always terminate; returns strlen(src). */
size_t sm_strlcpy(char *dst, const char *src, size_t size);
/* strdup that returns NULL on NULL input or out of memory. */
char *sm_strdup(const char *s);
char *sm_strndup(const char *s, size_t n);
/* realpath() of `path`, or of its nearest existing ancestor plus the rest
 * (a DST not made yet); malloc'd, NULL on failure. */
char *sm_realpath_loose(const char *path);
/* malloc'd concatenation of a and b; NULL when out of memory. */
char *sm_strcat2(const char *a, const char *b);

/* A growable byte buffer with a hard cap (STYLE: every buffer has one). */
struct sm_buf {
	char *p;
	size_t len;
	size_t cap;
	size_t limit; /* 0 = SM_BUF_DEFAULT_LIMIT */
};
#define SM_BUF_DEFAULT_LIMIT (64u << 20)
enum sm_err sm_buf_append(struct sm_buf *b, const void *data, size_t n);
enum sm_err sm_buf_appendz(struct sm_buf *b, const char *s); /* keeps a NUL after len */
void sm_buf_release(struct sm_buf *b);

/* Byte-wise key order (directories end in '/'): <0, 0, >0 like strcmp. */
int sm_key_cmp(const char *a, const char *b);
/* True when the key is a directory key (ends in '/'). */
bool sm_key_is_dir(const char *key);
/* Refuse keys that would land outside a root: empty, absolute, a "." or ".."
 * component, an empty component, or longer than PATH_MAX. */
enum sm_err sm_key_check(const char *key, struct sm_diag *d);
/* Number of '/'-separated components (a trailing '/' does not add one). */
int sm_key_depth(const char *key);

/* "1.5 MiB", "512 B": binary units like juicefs' humanize.IBytes. */
void sm_fmt_size(char *buf, size_t n, uint64_t bytes);
/* "1h02m03s" / "12s" */
void sm_fmt_duration(char *buf, size_t n, double seconds);

/* Strict decimal parsing; false on garbage, overflow or out of [min, max]. */
bool sm_parse_i64(const char *s, int64_t min, int64_t max, int64_t *out);

/* Monotonic clock in nanoseconds / seconds. */
uint64_t sm_now_ns(void);
double sm_now_s(void);
void sm_sleep_ms(unsigned ms);

/* Condition variables that wait on the monotonic clock (a change of the
 * wall clock moves no deadline). sm_cond_init_mono() initialises `cv` so;
 * sm_cond_wait_ms() waits on it for at most `ms` (0 when it timed out). */
void sm_cond_init_mono(pthread_cond_t *cv);
int sm_cond_wait_ms(pthread_cond_t *cv, pthread_mutex_t *mu, unsigned ms);
/* The same with an absolute deadline in sm_now_ns() terms. */
int sm_cond_wait_until(pthread_cond_t *cv, pthread_mutex_t *mu, uint64_t deadline_ns);

/* Seconds and nanoseconds since the epoch as int64 nanoseconds, which hold
 * 1677-09-21 to 2262-04-11: a time outside is kept as the nearest limit
 * (SM_NS_MIN, SM_NS_MAX) and *clamp (may be NULL) set to -1 or 1, else 0. */
#define SM_NS_MAX INT64_MAX
#define SM_NS_MIN (-9223372035000000000LL)
int64_t sm_time_ns(int64_t sec, int64_t nsec, int8_t *clamp);

/* The process's umask, without changing it (/proc/self/status; where that
 * is missing, set and set back). */
unsigned sm_umask(void);

/* Uniform random 64-bit value (getrandom, falling back to a time-seeded PRNG). */
uint64_t sm_rand64(void);

#endif
