/*
 * libFuzzer target for the rule parser and the matcher. Input: lines; a
 * line starting with '+' or '-' is a rule (its pattern follows), "F" turns
 * full-path mode on, any other line is a key to decide (in both modes).
 * Build: CC=clang meson setup build-fuzz -Dfuzz=true -Db_sanitize=address,undefined
 * Run:   build-fuzz/tests/fuzz_filter -max_total_time=30 tests/fuzz/corpus/filter
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/filter.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 64 * 1024)
		return 0;
	char *buf = malloc(size + 1);
	if (!buf)
		return 0;
	memcpy(buf, data, size);
	buf[size] = '\0';
	struct sm_filter f;
	sm_filter_init(&f);
	char *keys[64];
	int nkeys = 0;
	for (char *line = buf, *next; line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		if (line[0] == '+' || line[0] == '-') {
			struct sm_diag d;
			(void)sm_filter_add(&f, line + 1, line[0] == '+', &d);
		} else if (line[0] == 'F' && !line[1]) {
			f.full_path = true;
		} else if (*line && nkeys < 64) {
			keys[nkeys++] = line;
		}
	}
	for (int i = 0; i < nkeys; i++) {
		struct sm_filter_why why;
		char reason[512];
		for (int mode = 0; mode < 2; mode++) {
			f.full_path = mode;
			bool keep = sm_filter_keep(&f, keys[i], &why);
			sm_filter_explain(&f, keys[i], &why, reason, sizeof(reason));
			if (keep && why.rule >= 0 && !why.include && mode)
				abort(); /* full path: a deciding exclude excludes */
		}
	}
	sm_filter_release(&f);
	free(buf);
	return 0;
}
