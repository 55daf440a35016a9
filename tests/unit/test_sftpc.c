/* The SFTP engine's wire format: requests and attributes compared byte
 * for byte with the layout of draft-ietf-secsh-filexfer-02 written out by
 * hand, hand-written replies decoded, attributes and names decoded back,
 * VERSION extensions, handles, and short or malformed replies refused. */
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

/* The request built so far must be exactly `want`; on a mismatch, the
 * first differing offset and both bytes. */
static void assert_out(const char *what, const struct sm_sftpc_req *q, const unsigned char *want,
                       size_t n)
{
	const unsigned char *p = (const unsigned char *)q->out.p;
	assert_int_equal(q->rc, 0);
	for (size_t i = 0; i < n && i < q->out.len; i++)
		if (p[i] != want[i])
			fail_msg("%s: byte %zu is 0x%02x, want 0x%02x", what, i, p[i], want[i]);
	if (q->out.len != n)
		fail_msg("%s: %zu bytes, want %zu", what, q->out.len, n);
}

/*
 * Whole requests against the layout of draft-ietf-secsh-filexfer-02,
 * written out byte by byte: uint32 length, byte type, uint32 request id,
 * then the fields; strings are uint32 length + bytes, uint64 big-endian.
 * The length and the id are 0 here: the engine fills them in at submit
 * (length = everything after the length field).
 */
static void test_request_bytes(void **state)
{
	(void)state;
	struct sm_sftpc_req q;
	sm_sftpc_req_init(&q);

	/* SSH_FXP_OPEN: string filename, uint32 pflags, ATTRS attrs */
	static const unsigned char open_req[] = {
		0, 0, 0, 0,                        /* length (at submit) */
		3,                                 /* SSH_FXP_OPEN */
		0, 0, 0, 0,                        /* id (at submit) */
		0, 0, 0, 4,    '/', 'a', '/', 'b', /* filename */
		0, 0, 0, 0x1a,                     /* WRITE | CREAT | TRUNC */
		0, 0, 0, 4,                        /* attrs: flags PERMISSIONS */
		0, 0, 1, 0xa0,                     /* 0640 */
	};
	sm_sftpc_begin(&q, SM_SFTPC_OPEN);
	sm_sftpc_cstr(&q, "/a/b");
	sm_sftpc_u32(&q, SM_SFTPC_FXF_WRITE | SM_SFTPC_FXF_CREAT | SM_SFTPC_FXF_TRUNC);
	struct sm_sftpc_attrs a = { .flags = SM_SFTPC_A_PERM, .perm = 0640 };
	sm_sftpc_attrs(&q, &a);
	assert_out("open", &q, open_req, sizeof(open_req));

	/* SSH_FXP_WRITE: string handle, uint64 offset, string data */
	static const unsigned char write_req[] = {
		0, 0, 0, 0, 6,   0,   0,   0,    0, /* header, SSH_FXP_WRITE */
		0, 0, 0, 4, 'h', 0,   1,   0xff,    /* handle "h\0\1\xff" */
		0, 0, 0, 1, 0,   0,   0,   2,       /* offset 0x100000002 */
		0, 0, 0, 3, 'x', 'y', 'z',          /* data */
	};
	struct sm_sftpc_handle h = { .len = 4, .b = { 'h', 0, 1, (char)0xff } };
	sm_sftpc_begin(&q, SM_SFTPC_WRITE);
	sm_sftpc_handle(&q, &h);
	sm_sftpc_u64(&q, 0x100000002ull);
	sm_sftpc_str(&q, "xyz", 3);
	assert_out("write", &q, write_req, sizeof(write_req));

	/* SSH_FXP_READ: string handle, uint64 offset, uint32 len */
	static const unsigned char read_req[] = {
		0,    0,    0,    0,    5,    0,    0,    0,    0, /* header, SSH_FXP_READ */
		0,    0,    0,    4,    'h',  0,    1,    0xff,    /* handle */
		0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef,    /* offset */
		0,    0x10, 0,    0,                               /* len 1 MiB */
	};
	sm_sftpc_begin(&q, SM_SFTPC_READ);
	sm_sftpc_handle(&q, &h);
	sm_sftpc_u64(&q, 0x0123456789abcdefull);
	sm_sftpc_u32(&q, 1u << 20);
	assert_out("read", &q, read_req, sizeof(read_req));

	/* SSH_FXP_SETSTAT with every attribute: string path, ATTRS */
	static const unsigned char setstat_req[] = {
		0,    0,    0,    0,    9,    0,    0,    0,    0, /* header */
		0,    0,    0,    2,    '/',  'p',                 /* path */
		0,    0,    0,    0x0f,                            /* flags */
		0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,    /* uint64 size */
		0x11, 0x12, 0x13, 0x14,                            /* uid */
		0x21, 0x22, 0x23, 0x24,                            /* gid */
		0,    0,    0x81, 0xa4,                            /* 0100644 */
		0x31, 0x32, 0x33, 0x34,                            /* atime */
		0x41, 0x42, 0x43, 0x44,                            /* mtime */
	};
	struct sm_sftpc_attrs all = { .flags = 0x0f,
		                      .size = 0x0102030405060708ull,
		                      .uid = 0x11121314,
		                      .gid = 0x21222324,
		                      .perm = 0100644,
		                      .atime = 0x31323334,
		                      .mtime = 0x41424344 };
	sm_sftpc_begin(&q, SM_SFTPC_SETSTAT);
	sm_sftpc_cstr(&q, "/p");
	sm_sftpc_attrs(&q, &all);
	assert_out("setstat", &q, setstat_req, sizeof(setstat_req));

	/* SSH_FXP_EXTENDED: string extended-request, then its own fields */
	static const unsigned char ext_req[] = {
		0,   0,   0,   0,   200, 0,   0,   0,   0, /* header, SSH_FXP_EXTENDED */
		0,   0,   0,   24,  'p', 'o', 's', 'i', 'x', '-', 'r', 'e', 'n', 'a',
		'm', 'e', '@', 'o', 'p', 'e', 'n', 's', 's', 'h', '.', 'c', 'o', 'm', /* the name */
		0,   0,   0,   1,   'a', 0,   0,   0,   1,   'b', /* oldpath, newpath */
	};
	sm_sftpc_begin_ext(&q, "posix-rename@openssh.com", SM_SFTPC_R_STATUS);
	sm_sftpc_cstr(&q, "a");
	sm_sftpc_cstr(&q, "b");
	assert_out("posix-rename", &q, ext_req, sizeof(ext_req));

	/* a string of 0 bytes is its length alone */
	static const unsigned char stat_req[] = { 0, 0, 0, 0, 17, 0, 0, 0, 0, 0, 0, 0, 0 };
	sm_sftpc_begin(&q, SM_SFTPC_STAT);
	sm_sftpc_cstr(&q, "");
	assert_out("stat", &q, stat_req, sizeof(stat_req));
	sm_sftpc_req_release(&q);
}

/* ATTRS as the draft lays them out: uint32 flags, then only the fields
 * whose bit is set, in the order size (uint64), uid and gid, permissions,
 * atime and mtime (uint32 each). */
struct attrs_case {
	const char *name;
	struct sm_sftpc_attrs a;
	unsigned char bytes[40];
	size_t len;
};
static const struct attrs_case attrs_cases[] = {
	{ "none", { .flags = 0, .size = 9, .uid = 9, .perm = 9 }, { 0, 0, 0, 0 }, 4 },
	{ "size",
	  { .flags = SM_SFTPC_A_SIZE, .size = 0x123456789abcull, .uid = 7, .mtime = 7 },
	  { 0, 0, 0, 1, 0, 0, 0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc },
	  12 },
	{ "uid and gid",
	  { .flags = SM_SFTPC_A_UIDGID, .uid = 1000, .gid = 4294967295u, .size = 7 },
	  { 0, 0, 0, 2, 0, 0, 0x03, 0xe8, 0xff, 0xff, 0xff, 0xff },
	  12 },
	{ "permissions",
	  { .flags = SM_SFTPC_A_PERM, .perm = 040755, .atime = 7 },
	  { 0, 0, 0, 4, 0, 0, 0x41, 0xed },
	  8 },
	{ "times",
	  { .flags = SM_SFTPC_A_TIME, .atime = 1, .mtime = 4000000000u, .perm = 7 },
	  { 0, 0, 0, 8, 0, 0, 0, 1, 0xee, 0x6b, 0x28, 0x00 },
	  12 },
	{ "size and times, nothing between",
	  { .flags = SM_SFTPC_A_SIZE | SM_SFTPC_A_TIME, .size = 5, .atime = 6, .mtime = 7 },
	  { 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 6, 0, 0, 0, 7 },
	  20 },
	{ "all",
	  { .flags = 0x0f,
	    .size = 0x0102030405060708ull,
	    .uid = 0x11121314,
	    .gid = 0x21222324,
	    .perm = 0100644,
	    .atime = 0x31323334,
	    .mtime = 0x41424344 },
	  { 0,    0,    0,    0x0f, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07,
	    0x08, 0x11, 0x12, 0x13, 0x14, 0x21, 0x22, 0x23, 0x24, 0,    0,
	    0x81, 0xa4, 0x31, 0x32, 0x33, 0x34, 0x41, 0x42, 0x43, 0x44 },
	  32 },
	/* we send no extended pairs: the bit is not sent either */
	{ "extended bit dropped",
	  { .flags = SM_SFTPC_A_EXTENDED | SM_SFTPC_A_PERM, .perm = 0600 },
	  { 0, 0, 0, 4, 0, 0, 0x01, 0x80 },
	  8 },
};

static void test_attrs_bytes(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(attrs_cases) / sizeof(attrs_cases[0]); i++) {
		const struct attrs_case *c = &attrs_cases[i];
		/* encoded: exactly the bytes */
		struct sm_sftpc_req q;
		sm_sftpc_req_init(&q);
		sm_sftpc_begin(&q, SM_SFTPC_FSETSTAT);
		sm_sftpc_attrs(&q, &c->a);
		unsigned char want[9 + sizeof(c->bytes)] = { 0, 0, 0, 0, SM_SFTPC_FSETSTAT };
		memcpy(want + 9, c->bytes, c->len);
		assert_out(c->name, &q, want, 9 + c->len);
		/* decoded from the hand-written bytes: the flagged fields, zeroes
		 * elsewhere, and nothing left over */
		body_set(&q, c->bytes, c->len);
		struct sm_sftpc_rd rd;
		sm_sftpc_rd_init(&rd, &q);
		struct sm_sftpc_attrs got;
		sm_sftpc_get_attrs(&rd, &got);
		if (rd.bad || rd.n != 0)
			fail_msg("%s: decoding left %zu bytes (bad %d)", c->name, rd.n, rd.bad);
		uint32_t f = c->a.flags & ~SM_SFTPC_A_EXTENDED;
		assert_int_equal(got.flags, f);
		assert_int_equal(got.size, f & SM_SFTPC_A_SIZE ? c->a.size : 0);
		assert_int_equal(got.uid, f & SM_SFTPC_A_UIDGID ? c->a.uid : 0);
		assert_int_equal(got.gid, f & SM_SFTPC_A_UIDGID ? c->a.gid : 0);
		assert_int_equal(got.perm, f & SM_SFTPC_A_PERM ? c->a.perm : 0);
		assert_int_equal(got.atime, f & SM_SFTPC_A_TIME ? c->a.atime : 0);
		assert_int_equal(got.mtime, f & SM_SFTPC_A_TIME ? c->a.mtime : 0);
		/* any byte short: refused */
		for (size_t cut = 0; cut < c->len; cut++) {
			body_set(&q, c->bytes, cut);
			sm_sftpc_rd_init(&rd, &q);
			sm_sftpc_get_attrs(&rd, &got);
			if (!rd.bad)
				fail_msg("%s: %zu of %zu bytes were taken", c->name, cut, c->len);
		}
		sm_sftpc_req_release(&q);
	}
}

/* Replies as a server writes them, decoded. */
static void test_decode_replies(void **state)
{
	(void)state;
	struct sm_sftpc_req q;
	sm_sftpc_req_init(&q);
	struct sm_sftpc_rd rd;
	struct sm_sftpc_attrs a;

	/* ATTRS with extended pairs (flag 0x80000000: uint32 count, then
	 * count pairs of strings), which are read past */
	static const unsigned char ext[] = {
		0x80, 0,    0,    0x05,                       /* EXTENDED | PERMISSIONS | SIZE */
		0,    0,    0,    0,    0,   0,   0x10, 0x00, /* size 4096 */
		0,    0,    0x81, 0xed,                       /* 0100755 */
		0,    0,    0,    2,                          /* 2 pairs */
		0,    0,    0,    1,    'a', 0,   0,    0,    1, '1', /* "a" "1" */
		0,    0,    0,    2,    'b', 'b', 0,    0,    0, 0,   /* "bb" "" */
		0xde, 0xad,                                           /* not part of the ATTRS */
	};
	body_set(&q, ext, sizeof(ext));
	sm_sftpc_rd_init(&rd, &q);
	sm_sftpc_get_attrs(&rd, &a);
	assert_false(rd.bad);
	assert_int_equal(a.flags, 0x80000005u);
	assert_int_equal(a.size, 4096);
	assert_int_equal(a.perm, 0100755);
	assert_int_equal(a.uid, 0);
	assert_int_equal(a.mtime, 0);
	assert_int_equal(rd.n, 2); /* the ATTRS ended where the draft says */
	assert_int_equal(sm_sftpc_get_u32(&rd), 0);
	assert_true(rd.bad); /* 2 bytes are not a uint32 */
	/* the last pair cut short: refused */
	body_set(&q, ext, sizeof(ext) - 3);
	sm_sftpc_rd_init(&rd, &q);
	sm_sftpc_get_attrs(&rd, &a);
	assert_true(rd.bad);

	/* STATUS: uint32 code, string message, string language */
	static const unsigned char status[] = {
		0, 0, 0, 2,                                                /* NO_SUCH_FILE */
		0, 0, 0, 7, 'n', 'o', ' ', 'f', 'i', 'l', 'e', 0, 0, 0, 0, /* "no file" "" */
	};
	body_set(&q, status, sizeof(status));
	sm_sftpc_rd_init(&rd, &q);
	assert_int_equal(sm_sftpc_get_u32(&rd), SM_SFTPC_FX_NO_SUCH_FILE);
	size_t n;
	const char *msg = sm_sftpc_get_str(&rd, &n);
	assert_int_equal(n, 7);
	assert_memory_equal(msg, "no file", 7);
	sm_sftpc_get_str(&rd, &n);
	assert_int_equal(n, 0);
	assert_false(rd.bad);
	assert_int_equal(rd.n, 0);

	/* uint64 big-endian */
	static const unsigned char u64[] = { 0xfe, 0xdc, 0xba, 0x98, 0x76, 0x54, 0x32, 0x10 };
	body_set(&q, u64, sizeof(u64));
	sm_sftpc_rd_init(&rd, &q);
	assert_true(sm_sftpc_get_u64(&rd) == 0xfedcba9876543210ull);
	assert_false(rd.bad);

	/* NAME (after its count): filename, longname, ATTRS */
	static const unsigned char name[] = {
		0, 0, 0, 3,    'f', '\n', 'g',                                  /* filename */
		0, 0, 0, 5,    '-', 'r',  'w',  '-',  '-',                      /* longname */
		0, 0, 0, 0x0c, 0,   0,    0xa1, 0xff, 0,   0, 0, 1, 0, 0, 0, 2, /* PERM|TIME */
	};
	body_set(&q, name, sizeof(name));
	sm_sftpc_rd_init(&rd, &q);
	const char *fn;
	assert_true(sm_sftpc_get_name(&rd, &fn, &n, &a));
	assert_int_equal(n, 3);
	assert_memory_equal(fn, "f\ng", 3);
	assert_int_equal(a.flags, SM_SFTPC_A_PERM | SM_SFTPC_A_TIME);
	assert_int_equal(a.perm, 0120777);
	assert_int_equal(a.atime, 1);
	assert_int_equal(a.mtime, 2);
	assert_int_equal(rd.n, 0);

	/* HANDLE: string handle (bytes, not text) */
	static const unsigned char handle[] = { 0, 0, 0, 3, 0, 'x', 0xff };
	body_set(&q, handle, sizeof(handle));
	struct sm_sftpc_handle h;
	assert_true(sm_sftpc_get_handle(&q, &h));
	assert_int_equal(h.len, 3);
	assert_memory_equal(h.b, "\0x\xff", 3);
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
		cmocka_unit_test(test_request_bytes),
		cmocka_unit_test(test_attrs_bytes),
		cmocka_unit_test(test_decode_replies),
		cmocka_unit_test(test_attrs_roundtrip),
		cmocka_unit_test(test_names_and_extended_attrs),
		cmocka_unit_test(test_version_and_handle),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
