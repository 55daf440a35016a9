#include "select.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "filter.h"
#include "store/store.h"
#include "util.h"

#define SELECT_FILES_MAX (64u << 20) /* keys in --files-from */

void sm_select_release(struct sm_select *s)
{
	free(s->start);
	free(s->end);
	sm_fileset_free(s->files);
	memset(s, 0, sizeof(*s));
}

bool sm_select_active(const struct sm_select *s)
{
	return s->start || s->end || s->has_min_size || s->has_max_size || s->has_min_mtime ||
	       s->has_max_mtime || s->files;
}

static int cmp_keyp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Index of the first listed key >= key. */
static size_t fileset_lower(const struct sm_fileset *fs, const char *key)
{
	size_t lo = 0, hi = fs->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (strcmp(fs->keys[mid], key) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

bool sm_fileset_has(const struct sm_fileset *fs, const char *key)
{
	size_t i = fileset_lower(fs, key);
	return i < fs->n && strcmp(fs->keys[i], key) == 0;
}

static bool fileset_match(const struct sm_fileset *fs, const char *key)
{
	if (sm_fileset_has(fs, key))
		return true;
	/* under a listed prefix: one of its ancestors "a/", "a/b/" is listed */
	char buf[PATH_MAX];
	size_t n = strlen(key);
	if (n >= sizeof(buf))
		return false;
	for (size_t i = 0; i + 1 < n; i++) {
		if (key[i] != '/')
			continue;
		memcpy(buf, key, i + 1);
		buf[i + 1] = '\0';
		if (sm_fileset_has(fs, buf))
			return true;
	}
	/* a directory on the way to a listed key */
	if (n && key[n - 1] == '/') {
		size_t i = fileset_lower(fs, key);
		if (i < fs->n && strncmp(fs->keys[i], key, n) == 0)
			return true;
	}
	return false;
}

bool sm_select_path(const struct sm_select *s, const char *key)
{
	if (s->start && strcmp(key, s->start) < 0)
		return false;
	if (s->end && strcmp(key, s->end) > 0)
		return false;
	return !s->files || fileset_match(s->files, key);
}

bool sm_select_key(const struct sm_filter *f, const struct sm_select *s, const char *key,
                   bool *by_rules, bool *prune)
{
	bool rules_keep = sm_filter_keep(f, key, NULL);
	bool in_range = sm_select_path(s, key);
	*by_rules = !rules_keep;
	*prune = false;
	if (rules_keep && in_range)
		return true;
	size_t n = strlen(key);
	if (n && key[n - 1] == '/')
		*prune = (!rules_keep && !f->full_path) ||
		         (s->files && !in_range && (!s->start || strcmp(key, s->start) >= 0));
	return false;
}

bool sm_select_attr(const struct sm_select *s, const struct sm_entry *e)
{
	if (S_ISDIR(e->mode) || S_ISLNK(e->mode))
		return true;
	if (s->has_min_size && e->size < s->min_size)
		return false;
	if (s->has_max_size && e->size > s->max_size)
		return false;
	if (s->has_min_mtime && e->mtime_ns < s->min_mtime_ns)
		return false;
	if (s->has_max_mtime && e->mtime_ns > s->max_mtime_ns)
		return false;
	return true;
}

/* A non-negative decimal number (digits, optional fraction) at *p. */
static bool parse_number(const char **p, double *out)
{
	const char *s = *p;
	if (!(*s >= '0' && *s <= '9') && !(*s == '.' && s[1] >= '0' && s[1] <= '9'))
		return false;
	char *end = NULL;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || !isfinite(v) || v < 0)
		return false;
	/* strtod also takes exponents, hex and "inf": allow digits and '.' only */
	for (const char *c = s; c < end; c++)
		if (!((*c >= '0' && *c <= '9') || *c == '.'))
			return false;
	*p = end;
	*out = v;
	return true;
}

bool sm_parse_size(const char *s, uint64_t *out)
{
	const char *p = s;
	double v;
	if (!parse_number(&p, &v))
		return false;
	double mul = 1;
	switch (*p) {
	case 'k':
	case 'K':
		mul = 1024.0;
		p++;
		break;
	case 'm':
	case 'M':
		mul = 1024.0 * 1024;
		p++;
		break;
	case 'g':
	case 'G':
		mul = 1024.0 * 1024 * 1024;
		p++;
		break;
	case 't':
	case 'T':
		mul = 1024.0 * 1024 * 1024 * 1024;
		p++;
		break;
	default: break;
	}
	if (mul > 1 && (*p == 'i' || *p == 'I') && (p[1] == 'b' || p[1] == 'B'))
		p += 2;
	else if (*p == 'b' || *p == 'B')
		p++;
	if (*p)
		return false;
	double bytes = v * mul;
	if (bytes >= 18446744073709551615.0 || (mul == 1 && v != floor(v)))
		return false;
	*out = (uint64_t)bytes;
	return true;
}

bool sm_parse_duration(const char *s, int64_t *out_ns)
{
	const char *p = s;
	double total = 0;
	bool any = false;
	while (*p) {
		double v;
		if (!parse_number(&p, &v))
			return false;
		double unit;
		switch (*p) {
		case 'w':
			unit = 7 * 86400.0;
			p++;
			break;
		case 'd':
			unit = 86400.0;
			p++;
			break;
		case 'h':
			unit = 3600.0;
			p++;
			break;
		case 'm':
			unit = 60.0;
			p++;
			break;
		case 's':
			unit = 1.0;
			p++;
			break;
		case '\0':
			if (any)
				return false; /* "1h30": a unit is needed after the first */
			unit = 1.0;
			break;
		default: return false;
		}
		total += v * unit;
		any = true;
	}
	if (!any || total > 9.0e9)
		return false;
	*out_ns = (int64_t)(total * 1e9);
	return true;
}

/* Parse digits of exactly `n` chars into *v. */
static bool fixed_digits(const char **p, int n, int *v)
{
	int x = 0;
	for (int i = 0; i < n; i++) {
		char c = (*p)[i];
		if (c < '0' || c > '9')
			return false;
		x = x * 10 + (c - '0');
	}
	*p += n;
	*v = x;
	return true;
}

bool sm_parse_time(const char *s, int64_t *out_ns)
{
	const char *p = s;
	struct tm tm = { 0 };
	int y, mo, d, h = 0, mi = 0, sec = 0;
	if (!fixed_digits(&p, 4, &y) || *p++ != '-' || !fixed_digits(&p, 2, &mo) || *p++ != '-' ||
	    !fixed_digits(&p, 2, &d))
		return false;
	bool has_time = false, utc_offset = false;
	long offset = 0;
	double frac = 0;
	if (*p == ' ' || *p == 'T' || *p == 't') {
		p++;
		if (!fixed_digits(&p, 2, &h) || *p++ != ':' || !fixed_digits(&p, 2, &mi) ||
		    *p++ != ':' || !fixed_digits(&p, 2, &sec))
			return false;
		has_time = true;
		if (*p == '.') {
			const char *f = p;
			p++;
			if (*p < '0' || *p > '9')
				return false;
			while (*p >= '0' && *p <= '9')
				p++;
			frac = strtod(f, NULL);
		}
		if (*p == 'Z' || *p == 'z') {
			utc_offset = true;
			p++;
		} else if (*p == '+' || *p == '-') {
			int oh, om;
			int sign = *p == '-' ? -1 : 1;
			p++;
			if (!fixed_digits(&p, 2, &oh) || *p++ != ':' || !fixed_digits(&p, 2, &om))
				return false;
			utc_offset = true;
			offset = sign * (oh * 3600L + om * 60L);
		}
	}
	(void)has_time;
	if (*p)
		return false;
	if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
		return false;
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	tm.tm_isdst = -1;
	time_t t;
	if (utc_offset) {
		t = timegm(&tm);
		t -= offset;
	} else {
		t = mktime(&tm); /* local time, like juicefs sync */
	}
	if (t == (time_t)-1 && !(y == 1969 && mo == 12 && d == 31))
		return false;
	/* reject dates mktime normalized (Feb 30 -> Mar 2) */
	if (!utc_offset && (tm.tm_mday != d || tm.tm_mon != mo - 1))
		return false;
	/* nanoseconds since the epoch fit in int64 for 1677-09-21 .. 2262-04-11 */
	if (t < INT64_MIN / 1000000000 + 1 || t > INT64_MAX / 1000000000 - 1)
		return false;
	*out_ns = (int64_t)t * 1000000000 + (int64_t)(frac * 1e9);
	return true;
}

void sm_fileset_free(struct sm_fileset *fs)
{
	if (!fs)
		return;
	for (size_t i = 0; i < fs->n; i++)
		free(fs->keys[i]);
	free(fs->keys);
	free(fs);
}

enum sm_err sm_fileset_load(const char *path, struct sm_fileset **out, struct sm_diag *d)
{
	FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
	if (!f)
		return sm_diag_errno(d, errno, "--files-from '%s'", path);
	struct sm_fileset *fs = calloc(1, sizeof(*fs));
	size_t cap = 0;
	char *line = NULL;
	size_t lcap = 0;
	enum sm_err err = SM_OK;
	if (!fs) {
		err = sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
		goto out;
	}
	ssize_t n;
	while ((n = getline(&line, &lcap, f)) >= 0) {
		while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			line[--n] = '\0';
		char *k = line;
		for (;;) {
			if (k[0] == '.' && k[1] == '/')
				k += 2;
			else if (k[0] == '/')
				k++;
			else
				break;
		}
		if (!*k || strcmp(k, ".") == 0)
			continue;
		if (memchr(line, '\0', (size_t)n)) {
			err = sm_diag_set(d, SM_EINVAL, 0,
			                  "--files-from '%s': a line holds a NUL byte", path);
			goto out;
		}
		if (fs->n == SELECT_FILES_MAX) {
			err = sm_diag_set(d, SM_EINVAL, 0, "--files-from '%s': more than %u keys",
			                  path, SELECT_FILES_MAX);
			goto out;
		}
		if (fs->n == cap) {
			cap = cap ? cap * 2 : 64;
			char **nk = realloc(fs->keys, cap * sizeof(*nk));
			if (!nk) {
				err = sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
				goto out;
			}
			fs->keys = nk;
		}
		if (!(fs->keys[fs->n] = strdup(k))) {
			err = sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
			goto out;
		}
		fs->n++;
	}
	if (ferror(f)) {
		err = sm_diag_errno(d, errno, "--files-from '%s'", path);
		goto out;
	}
	if (fs->n)
		qsort(fs->keys, fs->n, sizeof(*fs->keys), cmp_keyp);
	size_t w = 0; /* drop duplicates */
	for (size_t i = 0; i < fs->n; i++) {
		if (w && strcmp(fs->keys[w - 1], fs->keys[i]) == 0)
			free(fs->keys[i]);
		else
			fs->keys[w++] = fs->keys[i];
	}
	fs->n = w;
	*out = fs;
	fs = NULL;
out:
	free(line);
	sm_fileset_free(fs);
	if (f != stdin)
		fclose(f);
	return err;
}
