/*
 * Matcher benchmark: time per match of patterns that make backtracking
 * matchers explode, against a 255-byte key. The NFA is linear in key x
 * pattern, so these stay in the microseconds.
 *   build/tests/filter_bench [iterations]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/filter.h"
#include "../../common/util.h"

int main(int argc, char **argv)
{
	long iters = argc > 1 ? strtol(argv[1], NULL, 10) : 100000;
	static const char *const patterns[] = {
		"**a**a**a**a**b",
		"*a*a*a*a*a*a*a*a*b",
		"**/**/**/**/**b",
		"[a-z]*[a-z]*[a-z]*b",
	};
	char key[256];
	memset(key, 'a', 255);
	key[255] = '\0';
	printf("%-24s %12s %14s\n", "pattern (255-byte key)", "matches", "us per match");
	for (size_t i = 0; i < sizeof(patterns) / sizeof(patterns[0]); i++) {
		struct sm_filter f;
		struct sm_diag d;
		sm_filter_init(&f);
		f.full_path = true;
		if (sm_filter_add(&f, patterns[i], false, &d) != SM_OK) {
			fprintf(stderr, "%s\n", d.msg);
			return 1;
		}
		double t0 = sm_now_s();
		long kept = 0;
		for (long n = 0; n < iters; n++)
			kept += sm_filter_keep(&f, key, NULL);
		double us = (sm_now_s() - t0) * 1e6 / (double)iters;
		printf("%-24s %12ld %14.3f\n", patterns[i], iters - kept, us);
		sm_filter_release(&f);
	}
	return 0;
}
