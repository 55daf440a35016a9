/* The SFTP engine's wire format: requests as the draft lays them out,
 * attributes and names decoded back, VERSION extensions, handles, and
 * short or malformed replies refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "../../common/store/sftpc.h"

static uint32_t be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* A reply body for the decoders, as the engine stores it. */
static void body_set(struct sm_sftpc_req *q, const void *p, size_t n)
{
	q->body.len = 0;
	assert_int_equal(sm_buf_append(&q->body, p, n), SM_OK);
}

static void test_request_layout(void **state)
{
	(void)state;
	struct sm_sftpc_req q;
	sm_sftpc_req_init(&q);
	sm_sftpc_begin(&q, SM_SFTPC_OPEN);
	sm_sftpc_cstr(&q, "/a/b");
	sm_sftpc_u32(&q, SM_SFTPC_FXF_WRITE | SM_SFTPC_FXF_CREAT);
	struct sm_sftpc_attrs a = { .flags = SM_SFTPC_A_PERM, .perm = 0640 };
	sm_sftpc_attrs(&q, &a);
	const unsigned char *p = (const unsigned char *)q.out.p;
	/* length and id are filled in at submit; type, then the fields */
	assert_int_equal(q.out.len, 4 + 1 + 4 + 4 + 4 + 4 + 4 + 4);
	assert_int_equal(p[4], SM_SFTPC_OPEN);
	assert_int_equal(be32(p + 9), 4);
	assert_memory_equal(p + 13, "/a/b", 4);
	assert_int_equal(be32(p + 17), SM_SFTPC_FXF_WRITE | SM_SFTPC_FXF_CREAT);
	assert_int_equal(be32(p + 21), SM_SFTPC_A_PERM);
	assert_int_equal(be32(p + 25), 0640);
	assert_int_equal(q.want, SM_SFTPC_R_HANDLE);
	/* the success reply follows from the type */
	sm_sftpc_begin(&q, SM_SFTPC_READ);
	assert_int_equal(q.want, SM_SFTPC_R_DATA);
	sm_sftpc_begin(&q, SM_SFTPC_LSTAT);
	assert_int_equal(q.want, SM_SFTPC_R_ATTRS);
	sm_sftpc_begin(&q, SM_SFTPC_REALPATH);
	assert_int_equal(q.want, SM_SFTPC_R_NAME);
	sm_sftpc_begin(&q, SM_SFTPC_REMOVE);
	assert_int_equal(q.want, SM_SFTPC_R_STATUS);
	sm_sftpc_begin_ext(&q, "statvfs@openssh.com", SM_SFTPC_R_EXTENDED);
	p = (const unsigned char *)q.out.p;
	assert_int_equal(p[4], SM_SFTPC_EXTENDED);
	assert_int_equal(be32(p + 9), strlen("statvfs@openssh.com"));
	assert_int_equal(q.want, SM_SFTPC_R_EXTENDED);
	sm_sftpc_req_release(&q);
}

static void test_attrs_roundtrip(void **state)
{
	(void)state;
	static const struct sm_sftpc_attrs cases[] = {
		{ 0 },
		{ .flags = SM_SFTPC_A_SIZE, .size = 0x123456789abcULL },
		{ .flags = SM_SFTPC_A_UIDGID, .uid = 1000, .gid = 4294967295u },
		{ .flags = SM_SFTPC_A_PERM | SM_SFTPC_A_TIME,
		  .perm = 0100755,
		  .atime = 1,
		  .mtime = 4000000000u },
		{ .flags = 0x0f,
		  .size = 1,
		  .uid = 2,
		  .gid = 3,
		  .perm = 040700,
		  .atime = 5,
		  .mtime = 6 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct sm_sftpc_req q, r;
		sm_sftpc_req_init(&q);
		sm_sftpc_req_init(&r);
		sm_sftpc_begin(&q, SM_SFTPC_SETSTAT);
		sm_sftpc_attrs(&q, &cases[i]);
		body_set(&r, q.out.p + 9, q.out.len - 9);
		struct sm_sftpc_rd rd;
		sm_sftpc_rd_init(&rd, &r);
		struct sm_sftpc_attrs got;
		sm_sftpc_get_attrs(&rd, &got);
		assert_false(rd.bad);
		assert_int_equal(rd.n, 0);
		assert_memory_equal(&got, &cases[i], sizeof(got));
		/* one byte short: refused */
		rd.p = (const unsigned char *)r.body.p;
		rd.n = r.body.len - 1;
		rd.bad = false;
		sm_sftpc_get_attrs(&rd, &got);
		assert_true(rd.bad);
		sm_sftpc_req_release(&q);
		sm_sftpc_req_release(&r);
	}
}

static void test_names_and_extended_attrs(void **state)
{
	(void)state;
	/* count 2: "a.txt" with size and extended attributes, "sub" a dir */
	static const unsigned char name[] = {
		0,    0,   0,   2,                                     /* count */
		0,    0,   0,   5, 'a', '.', 't',  'x',  't',          /* name */
		0,    0,   0,   1, 'L',                                /* long name */
		0x80, 0,   0,   1, 0,   0,   0,    0,    0,   0, 0, 9, /* flags, size 9 */
		0,    0,   0,   1, 0,   0,   0,    1,    'k', 0, 0, 0,
		2,    'v', 'v',                                     /* 1 extended pair */
		0,    0,   0,   3, 's', 'u', 'b',  0,    0,   0, 0, /* name, empty long name */
		0,    0,   0,   4, 0,   0,   0x41, 0xed,            /* perm 040755 */
	};
	struct sm_sftpc_req q;
	sm_sftpc_req_init(&q);
	body_set(&q, name, sizeof(name));
	struct sm_sftpc_rd r;
	sm_sftpc_rd_init(&r, &q);
	assert_int_equal(sm_sftpc_get_u32(&r), 2);
	const char *n;
	size_t len;
	struct sm_sftpc_attrs a;
	assert_true(sm_sftpc_get_name(&r, &n, &len, &a));
	assert_int_equal(len, 5);
	assert_memory_equal(n, "a.txt", 5);
	assert_int_equal(a.size, 9);
	assert_true(sm_sftpc_get_name(&r, &n, &len, &a));
	assert_int_equal(len, 3);
	assert_int_equal(a.perm, 040755);
	assert_int_equal(r.n, 0);
	assert_false(sm_sftpc_get_name(&r, &n, &len, &a)); /* nothing left */
	assert_true(r.bad);
	/* a string longer than the body */
	static const unsigned char bad[] = { 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xf0, 'x' };
	body_set(&q, bad, sizeof(bad));
	sm_sftpc_rd_init(&r, &q);
	sm_sftpc_get_u32(&r);
	assert_false(sm_sftpc_get_name(&r, &n, &len, &a));
	assert_int_equal(len, 0);
	sm_sftpc_req_release(&q);
}

static void test_version_and_handle(void **state)
{
	(void)state;
	static const unsigned char v[] = {
		0, 0, 0, 3,                                                    /* version */
		0, 0, 0, 6, 'a', '@', 'b', '.', 'c', 'o', 0,   0,   0, 1, '1', /* a@b.co "1" */
		0, 0, 0, 0, 0,   0,   0,   0,                       /* an empty name: left out */
		0, 0, 0, 3, 'x', 0,   'y', 0,   0,   0,   0,        /* a NUL inside: left out */
		0, 0, 0, 2, 'z', 'z', 0,   0,   0,   2,   'd', 'd', /* zz */
	};
	uint32_t ver;
	char exts[64];
	size_t len;
	assert_true(sm_sftpc_parse_version(v, sizeof(v), &ver, exts, sizeof(exts), &len));
	assert_int_equal(ver, 3);
	assert_int_equal(len, 7 + 3);
	assert_memory_equal(exts, "a@b.co\0zz\0", 10);
	/* names that do not fit are left out, the rest still read */
	assert_true(sm_sftpc_parse_version(v, sizeof(v), &ver, exts, 5, &len));
	assert_int_equal(len, 3);
	assert_memory_equal(exts, "zz\0", 3);
	/* a cut list keeps what is whole; a cut version is refused */
	assert_true(sm_sftpc_parse_version(v, 20, &ver, exts, sizeof(exts), &len));
	assert_int_equal(len, 7);
	assert_false(sm_sftpc_parse_version(v, 3, &ver, exts, sizeof(exts), &len));

	struct sm_sftpc_req q;
	sm_sftpc_req_init(&q);
	struct sm_sftpc_handle h;
	static const unsigned char hb[] = { 0, 0, 0, 4, 0, 0, 0, 7 };
	body_set(&q, hb, sizeof(hb));
	assert_true(sm_sftpc_get_handle(&q, &h));
	assert_int_equal(h.len, 4);
	static const unsigned char empty[] = { 0, 0, 0, 0 };
	body_set(&q, empty, sizeof(empty));
	assert_false(sm_sftpc_get_handle(&q, &h)); /* an empty handle */
	unsigned char big[4 + SM_SFTPC_HANDLE_MAX + 1] = { 0, 0, 1, 1 };
	body_set(&q, big, sizeof(big));
	assert_false(sm_sftpc_get_handle(&q, &h)); /* over the draft's 256 bytes */
	sm_sftpc_req_release(&q);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_request_layout),
		cmocka_unit_test(test_attrs_roundtrip),
		cmocka_unit_test(test_names_and_extended_attrs),
		cmocka_unit_test(test_version_and_handle),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
