/*
 * An SFTP version 3 client engine: one SFTP channel on one SSH connection,
 * shared by many threads, with many requests in flight.
 *
 * libssh2's own SFTP calls wait for each reply in turn and cannot be used
 * from two threads at once, so every small file cost several round trips
 * and the server woke once per request. Here an I/O thread owns the SSH
 * session (non-blocking): callers build requests, submit them (several at
 * once where they do not depend on each other) and wait for their replies;
 * the thread writes whatever is queued in as few SSH packets as fit and
 * hands each reply to its request by id. The server sees batches of
 * requests, and one connection serves several transfer slots.
 *
 * A failure of the link (reset, EOF, no reply within the I/O timeout, a
 * malformed reply) completes every pending request with SM_SFTPC_LINK and
 * marks the connection broken; later submits complete at once the same way.
 */
#ifndef SM_SFTPC_H
#define SM_SFTPC_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../err.h"
#include "../util.h"

struct sm_ssh_conn;
struct sm_ssh_ops;
struct sm_sftpc;

/* Request types (draft-ietf-secsh-filexfer-02). */
enum {
	SM_SFTPC_OPEN = 3,
	SM_SFTPC_CLOSE = 4,
	SM_SFTPC_READ = 5,
	SM_SFTPC_WRITE = 6,
	SM_SFTPC_LSTAT = 7,
	SM_SFTPC_FSTAT = 8,
	SM_SFTPC_SETSTAT = 9,
	SM_SFTPC_FSETSTAT = 10,
	SM_SFTPC_OPENDIR = 11,
	SM_SFTPC_READDIR = 12,
	SM_SFTPC_REMOVE = 13,
	SM_SFTPC_MKDIR = 14,
	SM_SFTPC_RMDIR = 15,
	SM_SFTPC_REALPATH = 16,
	SM_SFTPC_STAT = 17,
	SM_SFTPC_RENAME = 18,
	SM_SFTPC_READLINK = 19,
	SM_SFTPC_SYMLINK = 20,
	SM_SFTPC_EXTENDED = 200,
};

/* Reply types. */
enum {
	SM_SFTPC_R_STATUS = 101,
	SM_SFTPC_R_HANDLE = 102,
	SM_SFTPC_R_DATA = 103,
	SM_SFTPC_R_NAME = 104,
	SM_SFTPC_R_ATTRS = 105,
	SM_SFTPC_R_EXTENDED = 201,
};

/* Results of sm_sftpc_wait(): 0, a server's SSH_FX_* status code (> 0),
 * or one of these. */
enum {
	SM_SFTPC_FX_EOF = 1,
	SM_SFTPC_FX_NO_SUCH_FILE = 2,
	SM_SFTPC_FX_PERMISSION_DENIED = 3,
	SM_SFTPC_FX_FAILURE = 4,
	SM_SFTPC_FX_OP_UNSUPPORTED = 8,
	SM_SFTPC_LINK = -1, /* the connection failed (sm_sftpc_why says how) */
};

/* Open flags. */
enum {
	SM_SFTPC_FXF_READ = 0x01,
	SM_SFTPC_FXF_WRITE = 0x02,
	SM_SFTPC_FXF_CREAT = 0x08,
	SM_SFTPC_FXF_TRUNC = 0x10,
	SM_SFTPC_FXF_EXCL = 0x20,
};

/* Attribute flags. */
enum {
	SM_SFTPC_A_SIZE = 0x01,
	SM_SFTPC_A_UIDGID = 0x02,
	SM_SFTPC_A_PERM = 0x04,
	SM_SFTPC_A_TIME = 0x08,
	SM_SFTPC_A_EXTENDED = 0x80000000u,
};

struct sm_sftpc_attrs {
	uint32_t flags;
	uint64_t size;
	uint32_t uid, gid;
	uint32_t perm; /* S_IFMT bits + permission bits */
	uint32_t atime, mtime;
};

#define SM_SFTPC_HANDLE_MAX 256 /* the draft's limit on handle strings */
struct sm_sftpc_handle {
	uint32_t len;
	char b[SM_SFTPC_HANDLE_MAX];
};

/*
 * One request and, once waited for, its reply. A request struct may be
 * reused for another request after sm_sftpc_wait() returned; it must not
 * go away while submitted and not waited for.
 */
struct sm_sftpc_req {
	struct sm_buf out; /* the request being built */
	uint8_t want;      /* the reply type that means success */
	/* set by the engine */
	uint32_t id;
	int rc;             /* what sm_sftpc_wait() returns */
	struct sm_buf body; /* the reply after its id (capped) */
	char *dst;          /* optional: a DATA reply's bytes go here ... */
	size_t dst_cap;     /* ... up to this many */
	size_t dst_len;     /* ... and this many came */
	bool done;
	bool detached; /* freed by the engine on reply (sm_sftpc_submit_detached) */
	/* Optional: called with the reply instead of waking a waiter, on the
	 * engine's thread (or the submitter's, when the link is down): it must
	 * not wait for replies itself; it may submit more requests. */
	void (*cb)(struct sm_sftpc *c, struct sm_sftpc_req *q);
	void *arg; /* for cb */
	pthread_cond_t cv;
	bool cv_init;
	struct sm_sftpc_req *next; /* the engine's pending list */
};

void sm_sftpc_req_init(struct sm_sftpc_req *q);
void sm_sftpc_req_release(struct sm_sftpc_req *q); /* accepts NULL; not while submitted */

/* Start a request of `type` (the success reply follows from the type;
 * sm_sftpc_begin_ext for an extension), then add its fields in order. */
void sm_sftpc_begin(struct sm_sftpc_req *q, uint8_t type);
void sm_sftpc_begin_ext(struct sm_sftpc_req *q, const char *name, uint8_t want);
void sm_sftpc_u32(struct sm_sftpc_req *q, uint32_t v);
void sm_sftpc_u64(struct sm_sftpc_req *q, uint64_t v);
void sm_sftpc_str(struct sm_sftpc_req *q, const void *s, size_t n);
void sm_sftpc_cstr(struct sm_sftpc_req *q, const char *s);
void sm_sftpc_handle(struct sm_sftpc_req *q, const struct sm_sftpc_handle *h);
void sm_sftpc_attrs(struct sm_sftpc_req *q, const struct sm_sftpc_attrs *a);

/* Reading a reply body. A short or malformed body sets `bad`; the getters
 * then return zeroes. */
struct sm_sftpc_rd {
	const unsigned char *p;
	size_t n;
	bool bad;
};
void sm_sftpc_rd_init(struct sm_sftpc_rd *r, const struct sm_sftpc_req *q);
uint32_t sm_sftpc_get_u32(struct sm_sftpc_rd *r);
uint64_t sm_sftpc_get_u64(struct sm_sftpc_rd *r);
/* A string borrowed from the reply (not NUL-terminated). */
const char *sm_sftpc_get_str(struct sm_sftpc_rd *r, size_t *n);
void sm_sftpc_get_attrs(struct sm_sftpc_rd *r, struct sm_sftpc_attrs *a);
/* The next entry of a NAME reply (after its count): the name (borrowed,
 * not NUL-terminated), the long name skipped, the attributes; false (and
 * r->bad) when it is malformed. */
bool sm_sftpc_get_name(struct sm_sftpc_rd *r, const char **name, size_t *n,
                       struct sm_sftpc_attrs *a);
/* A VERSION message p[0..n) after its type byte: the version, and the
 * extension names (each followed by NUL) into exts[0..cap), *len bytes;
 * names that do not fit, and a cut last one, are left out. False when
 * even the version is missing. */
bool sm_sftpc_parse_version(const void *p, size_t n, uint32_t *version, char *exts, size_t cap,
                            size_t *len);
/* The handle of a HANDLE reply; false when it is malformed. */
bool sm_sftpc_get_handle(const struct sm_sftpc_req *q, struct sm_sftpc_handle *h);

struct sm_sftpc;

/* Open the SFTP subsystem on `ssh` (taken over: closed with the engine,
 * also when this fails) and start the engine. *out only on success. */
enum sm_err sm_sftpc_start(const struct sm_ssh_ops *ops, struct sm_ssh_conn *ssh,
                           struct sm_sftpc **out, struct sm_diag *d);
/* Stop the engine and close the connection. Accepts NULL. No request may
 * be pending. */
void sm_sftpc_stop(struct sm_sftpc *c);

/* Queue q on c. Never fails: a failure is the reply. */
void sm_sftpc_submit(struct sm_sftpc *c, struct sm_sftpc_req *q);
/* Queue a request nobody waits for (closing a handle): q comes from
 * malloc, is built like any other, and is freed by the engine. */
void sm_sftpc_submit_detached(struct sm_sftpc *c, struct sm_sftpc_req *q);
/* Wait for q's reply: 0 when it is the success reply, a server's status
 * code, or SM_SFTPC_LINK. */
int sm_sftpc_wait(struct sm_sftpc *c, struct sm_sftpc_req *q);
/* Submit and wait. */
int sm_sftpc_call(struct sm_sftpc *c, struct sm_sftpc_req *q);
/* A request used only to wait for an outcome that callbacks report with
 * sm_sftpc_post() (a chain of requests run by callbacks): prepare it,
 * start the chain, then sm_sftpc_wait() on it. */
void sm_sftpc_prepare(struct sm_sftpc_req *q);
void sm_sftpc_post(struct sm_sftpc *c, struct sm_sftpc_req *q, int rc);

bool sm_sftpc_broken(struct sm_sftpc *c);
/* Why the link failed, for messages ("" while it has not). */
const char *sm_sftpc_why(struct sm_sftpc *c);
/* Mark the connection broken (a reply made no sense to the caller). */
void sm_sftpc_fail(struct sm_sftpc *c, const char *why);
/* "user@host:port", for messages. */
const char *sm_sftpc_name(struct sm_sftpc *c);
const char *sm_sftpc_typed_password(struct sm_sftpc *c);
/* Does the server offer this extension (from its VERSION)? */
bool sm_sftpc_has_ext(struct sm_sftpc *c, const char *name);
/* The largest READ and WRITE lengths to ask for. */
size_t sm_sftpc_max_read(struct sm_sftpc *c);
size_t sm_sftpc_max_write(struct sm_sftpc *c);

#endif
