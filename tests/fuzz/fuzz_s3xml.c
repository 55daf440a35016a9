/*
 * libFuzzer target for the S3 reply parsers (peer data): the input is fed
 * to the ListObjectsV2, <Error>, DeleteObjects and ListMultipartUploads
 * parsers in turn.
 * Build: CC=clang meson setup build-fuzz -Dfuzz=true -Db_sanitize=address,undefined
 * Run:   build-fuzz/tests/fuzz_s3xml -max_total_time=30 tests/fuzz/corpus/s3xml
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "../../common/store/xml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool fuzz_del_cb(void *arg, const char *key, const struct sm_s3_error *e)
{
	size_t *n = arg;
	*n += strlen(key) + strlen(e->code) + strlen(e->message);
	return key[0] != '!'; /* sometimes "not asked for" */
}

static bool fuzz_upload_cb(void *arg, const char *key, const char *id, int64_t initiated)
{
	size_t *n = arg;
	*n += strlen(key) + strlen(id) + (size_t)(initiated & 1);
	return key[0] != '!';
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 1 << 20)
		return 0;
	struct sm_diag d;
	struct sm_s3_list_page pg;
	if (sm_s3_parse_list(data, size, &pg, &d) == SM_OK) {
		for (size_t i = 0; i < pg.n; i++)
			if (!pg.objs[i].key)
				__builtin_trap(); /* the parser promises a key for every object */
		for (size_t i = 0; i < pg.n_prefixes; i++)
			if (!pg.prefixes[i] || pg.n_prefixes > pg.cap_prefixes)
				__builtin_trap(); /* and a string for every common prefix */
		sm_s3_list_page_release(&pg);
	}
	struct sm_s3_error e;
	(void)sm_s3_parse_error(data, size, &e);
	size_t n = 0;
	(void)sm_s3_parse_delete(data, size, fuzz_del_cb, &n, &d);
	struct sm_s3_uploads_page up;
	(void)sm_s3_parse_uploads(data, size, fuzz_upload_cb, &n, &up, &d);
	return 0;
}
