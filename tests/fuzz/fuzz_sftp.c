/*
 * libFuzzer target for the SFTP reply decoders (peer data): the input is
 * read as a VERSION message, as the body of a NAME reply (every entry
 * walked), as ATTRS, as a HANDLE and as a STATUS, in turn.
 * Build: CC=clang meson setup build-fuzz -Dfuzz=true -Db_sanitize=address,undefined
 * Run:   build-fuzz/tests/fuzz_sftp -max_total_time=30 tests/fuzz/corpus/sftp
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "../../common/store/sftpc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_touch(const char *p, size_t n, size_t *sum)
{
	for (size_t i = 0; i < n; i++)
		*sum += (unsigned char)p[i]; /* ASan sees every byte read */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 1 << 20)
		return 0;
	size_t sum = 0;
	uint32_t ver;
	char exts[256];
	size_t len;
	if (sm_sftpc_parse_version(data, size, &ver, exts, sizeof(exts), &len)) {
		if (len > sizeof(exts) || (len && exts[len - 1] != '\0'))
			__builtin_trap(); /* names must fit, each NUL-terminated */
		fuzz_touch(exts, len, &sum);
	}
	struct sm_sftpc_rd r = { .p = data, .n = size };
	uint32_t count = sm_sftpc_get_u32(&r);
	for (uint32_t i = 0; i < count && !r.bad; i++) {
		const char *name;
		size_t n;
		struct sm_sftpc_attrs a;
		if (sm_sftpc_get_name(&r, &name, &n, &a))
			fuzz_touch(name, n, &sum);
	}
	r = (struct sm_sftpc_rd){ .p = data, .n = size };
	struct sm_sftpc_attrs a;
	sm_sftpc_get_attrs(&r, &a);
	struct sm_sftpc_req q;
	sm_sftpc_req_init(&q);
	q.body.p = (char *)data;
	q.body.len = size;
	struct sm_sftpc_handle h;
	if (sm_sftpc_get_handle(&q, &h)) {
		if (!h.len || h.len > sizeof(h.b))
			__builtin_trap();
		fuzz_touch(h.b, h.len, &sum);
	}
	sm_sftpc_rd_init(&r, &q); /* STATUS: code, message, language */
	size_t mn, ln;
	sm_sftpc_get_u32(&r);
	const char *msg = sm_sftpc_get_str(&r, &mn);
	const char *lang = sm_sftpc_get_str(&r, &ln);
	fuzz_touch(msg, mn, &sum);
	fuzz_touch(lang, ln, &sum);
	return sum == 1 ? 1 : 0;
}
