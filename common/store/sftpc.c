/*
 * The SFTP client engine (see sftpc.h): request encoding, reply decoding,
 * and the I/O thread that owns one SSH session.
 */
#include "sftpc.h"

#include <errno.h>
#include <inttypes.h>
#include <libssh2.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "../log.h"
#include "sshlink.h"

#define SFTPC_VERSION 3
#define SFTPC_PACKET_MAX (512u << 10) /* a reply longer than this is refused */
#define SFTPC_RBUF (SFTPC_PACKET_MAX + 4)
#define SFTPC_BODY_MAX SFTPC_PACKET_MAX
#define SFTPC_WINDOW (8u << 20)      /* our channel window: replies in flight */
#define SFTPC_IO_DEFAULT (32u << 10) /* READ/WRITE length without limits@openssh.com */
#define SFTPC_IO_MAX (64u << 10)     /* and at most, with it */
#define SFTPC_EXTS_MAX 4096

struct sm_sftpc {
	const struct sm_ssh_ops *ops;
	struct sm_ssh_conn *ssh;
	LIBSSH2_SESSION *s;
	LIBSSH2_CHANNEL *ch;
	int fd;
	int efd; /* wakes the I/O thread */
	long io_ms;
	pthread_t th;
	bool th_started;
	pthread_mutex_t mu;
	bool mu_init;
	/* under mu */
	struct sm_buf outq;               /* framed requests the I/O thread has not taken */
	struct sm_sftpc_req *head, *tail; /* pending, in submit order */
	uint32_t next_id;
	bool broken;
	bool stop;
	bool sleeping;
	char why[256];
	/* set before the thread starts */
	char exts[SFTPC_EXTS_MAX]; /* extension names, each followed by NUL */
	size_t exts_len;
	size_t max_read, max_write;
};

static uint32_t sftpc_be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void sftpc_put32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

/* ---- requests ---- */

void sm_sftpc_req_init(struct sm_sftpc_req *q)
{
	memset(q, 0, sizeof(*q));
	q->body.limit = SFTPC_BODY_MAX + 1;
	q->out.limit = SFTPC_PACKET_MAX + 4;
}

void sm_sftpc_req_release(struct sm_sftpc_req *q)
{
	if (!q)
		return;
	sm_buf_release(&q->out);
	sm_buf_release(&q->body);
	if (q->cv_init)
		pthread_cond_destroy(&q->cv);
	q->cv_init = false;
}

/* Bytes of a request past its cap make the request fail when it is
 * submitted (out.p stays as it was; `rc` remembers). */
static void sftpc_add(struct sm_sftpc_req *q, const void *p, size_t n)
{
	if (q->rc == 0 && sm_buf_append(&q->out, p, n) != SM_OK)
		q->rc = SM_SFTPC_LINK;
}

static uint8_t sftpc_want(uint8_t type)
{
	switch (type) {
	case SM_SFTPC_OPEN:
	case SM_SFTPC_OPENDIR: return SM_SFTPC_R_HANDLE;
	case SM_SFTPC_READ: return SM_SFTPC_R_DATA;
	case SM_SFTPC_READDIR:
	case SM_SFTPC_REALPATH:
	case SM_SFTPC_READLINK: return SM_SFTPC_R_NAME;
	case SM_SFTPC_STAT:
	case SM_SFTPC_LSTAT:
	case SM_SFTPC_FSTAT: return SM_SFTPC_R_ATTRS;
	default: return SM_SFTPC_R_STATUS;
	}
}

void sm_sftpc_begin(struct sm_sftpc_req *q, uint8_t type)
{
	q->out.len = 0;
	q->rc = 0;
	q->want = sftpc_want(type);
	q->dst = NULL;
	q->dst_cap = q->dst_len = 0;
	unsigned char hdr[9] = { 0 };
	hdr[4] = type; /* length and id are filled in at submit */
	sftpc_add(q, hdr, sizeof(hdr));
}

void sm_sftpc_begin_ext(struct sm_sftpc_req *q, const char *name, uint8_t want)
{
	sm_sftpc_begin(q, SM_SFTPC_EXTENDED);
	q->want = want;
	sm_sftpc_cstr(q, name);
}

void sm_sftpc_u32(struct sm_sftpc_req *q, uint32_t v)
{
	unsigned char b[4];
	sftpc_put32(b, v);
	sftpc_add(q, b, 4);
}

void sm_sftpc_u64(struct sm_sftpc_req *q, uint64_t v)
{
	sm_sftpc_u32(q, (uint32_t)(v >> 32));
	sm_sftpc_u32(q, (uint32_t)v);
}

void sm_sftpc_str(struct sm_sftpc_req *q, const void *s, size_t n)
{
	sm_sftpc_u32(q, (uint32_t)n);
	sftpc_add(q, s, n);
}

void sm_sftpc_cstr(struct sm_sftpc_req *q, const char *s)
{
	sm_sftpc_str(q, s, strlen(s));
}

void sm_sftpc_handle(struct sm_sftpc_req *q, const struct sm_sftpc_handle *h)
{
	sm_sftpc_str(q, h->b, h->len);
}

void sm_sftpc_attrs(struct sm_sftpc_req *q, const struct sm_sftpc_attrs *a)
{
	uint32_t f = a->flags & ~SM_SFTPC_A_EXTENDED;
	sm_sftpc_u32(q, f);
	if (f & SM_SFTPC_A_SIZE)
		sm_sftpc_u64(q, a->size);
	if (f & SM_SFTPC_A_UIDGID) {
		sm_sftpc_u32(q, a->uid);
		sm_sftpc_u32(q, a->gid);
	}
	if (f & SM_SFTPC_A_PERM)
		sm_sftpc_u32(q, a->perm);
	if (f & SM_SFTPC_A_TIME) {
		sm_sftpc_u32(q, a->atime);
		sm_sftpc_u32(q, a->mtime);
	}
}

/* ---- replies ---- */

void sm_sftpc_rd_init(struct sm_sftpc_rd *r, const struct sm_sftpc_req *q)
{
	r->p = (const unsigned char *)q->body.p;
	r->n = q->body.len;
	r->bad = false;
}

static const unsigned char *sftpc_take(struct sm_sftpc_rd *r, size_t n)
{
	if (r->bad || r->n < n) {
		r->bad = true;
		return NULL;
	}
	const unsigned char *p = r->p;
	r->p += n;
	r->n -= n;
	return p;
}

uint32_t sm_sftpc_get_u32(struct sm_sftpc_rd *r)
{
	const unsigned char *p = sftpc_take(r, 4);
	return p ? sftpc_be32(p) : 0;
}

uint64_t sm_sftpc_get_u64(struct sm_sftpc_rd *r)
{
	uint64_t hi = sm_sftpc_get_u32(r);
	return hi << 32 | sm_sftpc_get_u32(r);
}

const char *sm_sftpc_get_str(struct sm_sftpc_rd *r, size_t *n)
{
	uint32_t len = sm_sftpc_get_u32(r);
	const unsigned char *p = sftpc_take(r, len);
	*n = p ? len : 0;
	return p ? (const char *)p : "";
}

void sm_sftpc_get_attrs(struct sm_sftpc_rd *r, struct sm_sftpc_attrs *a)
{
	memset(a, 0, sizeof(*a));
	a->flags = sm_sftpc_get_u32(r);
	if (a->flags & SM_SFTPC_A_SIZE)
		a->size = sm_sftpc_get_u64(r);
	if (a->flags & SM_SFTPC_A_UIDGID) {
		a->uid = sm_sftpc_get_u32(r);
		a->gid = sm_sftpc_get_u32(r);
	}
	if (a->flags & SM_SFTPC_A_PERM)
		a->perm = sm_sftpc_get_u32(r);
	if (a->flags & SM_SFTPC_A_TIME) {
		a->atime = sm_sftpc_get_u32(r);
		a->mtime = sm_sftpc_get_u32(r);
	}
	if (a->flags & SM_SFTPC_A_EXTENDED) {
		uint32_t n = sm_sftpc_get_u32(r);
		for (uint32_t i = 0; i < n && !r->bad; i++) {
			size_t l;
			sm_sftpc_get_str(r, &l);
			sm_sftpc_get_str(r, &l);
		}
	}
}

bool sm_sftpc_get_name(struct sm_sftpc_rd *r, const char **name, size_t *n,
                       struct sm_sftpc_attrs *a)
{
	size_t ln;
	*name = sm_sftpc_get_str(r, n);
	sm_sftpc_get_str(r, &ln); /* the long name, for humans */
	sm_sftpc_get_attrs(r, a);
	return !r->bad;
}

bool sm_sftpc_parse_version(const void *p, size_t n, uint32_t *version, char *exts, size_t cap,
                            size_t *len)
{
	struct sm_sftpc_rd r = { .p = p, .n = n };
	*version = sm_sftpc_get_u32(&r);
	*len = 0;
	if (r.bad)
		return false;
	/* the extensions: as many as are whole (a cut list loses its tail) */
	while (r.n && !r.bad) {
		size_t nl, dl;
		const char *name = sm_sftpc_get_str(&r, &nl);
		sm_sftpc_get_str(&r, &dl); /* its data */
		if (r.bad)
			break;
		if (!nl || memchr(name, '\0', nl) || *len + nl + 1 > cap)
			continue;
		memcpy(exts + *len, name, nl);
		*len += nl;
		exts[(*len)++] = '\0';
	}
	return true;
}

bool sm_sftpc_get_handle(const struct sm_sftpc_req *q, struct sm_sftpc_handle *h)
{
	struct sm_sftpc_rd r;
	sm_sftpc_rd_init(&r, q);
	size_t n;
	const char *s = sm_sftpc_get_str(&r, &n);
	if (r.bad || !n || n > sizeof(h->b))
		return false;
	memcpy(h->b, s, n);
	h->len = (uint32_t)n;
	return true;
}

/* ---- the engine ---- */

static int64_t sftpc_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sftpc_wake(struct sm_sftpc *c)
{
	uint64_t one = 1;
	ssize_t w = write(c->efd, &one, sizeof(one));
	(void)w; /* a full counter already wakes it */
}

/* Complete q with rc (c->mu held; q has no callback). */
static void sftpc_complete(struct sm_sftpc_req *q, int rc)
{
	q->rc = rc;
	q->done = true;
	if (q->detached) {
		sm_sftpc_req_release(q);
		free(q);
		return;
	}
	pthread_cond_signal(&q->cv);
}

/* Complete q with rc (c->mu not held): its callback, or its waiter. */
static void sftpc_finish(struct sm_sftpc *c, struct sm_sftpc_req *q, int rc)
{
	if (q->cb) {
		q->rc = rc;
		q->done = true;
		q->cb(c, q);
		return;
	}
	pthread_mutex_lock(&c->mu);
	sftpc_complete(q, rc);
	pthread_mutex_unlock(&c->mu);
}

/* The link is gone: mark it, and take the pending list (c->mu held); the
 * caller fails them with sftpc_fail_list() after unlocking. */
static struct sm_sftpc_req *sftpc_fail_locked(struct sm_sftpc *c, const char *why)
{
	if (!c->broken) {
		c->broken = true;
		snprintf(c->why, sizeof(c->why), "%s", why);
		sm_log(SM_LOG_DEBUG, "sftp: %s: %s", c->ops->name(c->ssh), why);
	}
	struct sm_sftpc_req *q = c->head;
	c->head = c->tail = NULL;
	c->outq.len = 0;
	return q;
}

static void sftpc_fail_list(struct sm_sftpc *c, struct sm_sftpc_req *q)
{
	while (q) {
		struct sm_sftpc_req *next = q->next;
		sftpc_finish(c, q, SM_SFTPC_LINK);
		q = next;
	}
}

static void sftpc_failf(struct sm_sftpc *c, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));
static void sftpc_failf(struct sm_sftpc *c, const char *fmt, ...)
{
	char why[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&c->mu);
	struct sm_sftpc_req *q = sftpc_fail_locked(c, why);
	pthread_mutex_unlock(&c->mu);
	sftpc_fail_list(c, q);
}

void sm_sftpc_fail(struct sm_sftpc *c, const char *why)
{
	sftpc_failf(c, "%s", why);
}

static void sftpc_libssh2_fail(struct sm_sftpc *c, const char *what)
{
	char *msg = NULL;
	libssh2_session_last_error(c->s, &msg, NULL, 0);
	sftpc_failf(c, "%s: %s", what, msg && *msg ? msg : "unknown error");
}

/* One reply packet p[0..n) (after its length). False: a protocol error. */
static bool sftpc_dispatch(struct sm_sftpc *c, const unsigned char *p, size_t n)
{
	if (n < 5)
		return false;
	uint8_t type = p[0];
	uint32_t id = sftpc_be32(p + 1);
	pthread_mutex_lock(&c->mu);
	struct sm_sftpc_req *q = c->head, *prev = NULL;
	while (q && q->id != id) {
		prev = q;
		q = q->next;
	}
	if (q) {
		if (prev)
			prev->next = q->next;
		else
			c->head = q->next;
		if (c->tail == q)
			c->tail = prev;
	}
	pthread_mutex_unlock(&c->mu);
	if (!q)
		return false;
	/* q is ours now: nobody else touches it until it is completed */
	const unsigned char *b = p + 5;
	size_t bn = n - 5;
	int rc = 0;
	q->body.len = 0;
	if (type == SM_SFTPC_R_DATA && q->dst && type == q->want) {
		uint32_t len = bn >= 4 ? sftpc_be32(b) : UINT32_MAX;
		if (len > bn - 4 || len > q->dst_cap)
			rc = SM_SFTPC_LINK;
		else
			memcpy(q->dst, b + 4, len), q->dst_len = len;
	} else if (sm_buf_append(&q->body, b, bn) != SM_OK) {
		rc = SM_SFTPC_LINK;
	}
	if (rc == 0 && type == SM_SFTPC_R_STATUS) {
		uint32_t code = bn >= 4 ? sftpc_be32(b) : UINT32_MAX;
		if (code > INT32_MAX || (code == 0 && q->want != SM_SFTPC_R_STATUS))
			rc = SM_SFTPC_LINK;
		else
			rc = (int)code;
	} else if (rc == 0 && type != q->want) {
		rc = SM_SFTPC_LINK;
	}
	/* a reply that makes no sense: the stream cannot be trusted (the
	 * caller fails the connection) */
	sftpc_finish(c, q, rc);
	return rc != SM_SFTPC_LINK;
}

/* A STAT of the login directory, nobody waiting: the idle link's
 * keepalive, answered by the SFTP server itself (so a server whose SFTP
 * process hangs is noticed too, not only a dead TCP link). */
static void sftpc_ping(struct sm_sftpc *c)
{
	struct sm_sftpc_req *q = malloc(sizeof(*q));
	if (!q)
		return;
	sm_sftpc_req_init(q);
	sm_sftpc_begin(q, SM_SFTPC_STAT);
	sm_sftpc_cstr(q, ".");
	sm_sftpc_submit_detached(c, q);
}

/*
 * A packet that libssh2 could send only in part (the socket was full) is
 * kept by libssh2, which then refuses to send any other
 * (LIBSSH2_ERROR_BAD_USE) until the call that made it is repeated: our
 * channel_write, channel_read's window adjust, or one of libssh2's own
 * replies, which any read of the transport resumes. So while libssh2 holds
 * such a packet ("stuck"), every round first pumps the transport
 * (libssh2_channel_wait_eof only reads packets), then repeats both calls;
 * BAD_USE just means the packet is another call's.
 */
#define SFTPC_PACKETS_PER_ROUND 4 /* up to 128 KiB sent between reads */
#define SFTPC_STUCK_ROUNDS 10000  /* writable rounds without any progress: give up */

static bool sftpc_outbound(struct sm_sftpc *c)
{
	return libssh2_session_block_directions(c->s) & LIBSSH2_SESSION_BLOCK_OUTBOUND;
}

static void *sftpc_io(void *arg)
{
	struct sm_sftpc *c = arg;
	struct sm_buf w = { .limit = c->outq.limit };
	size_t wpos = 0;
	unsigned char *rb = malloc(SFTPC_RBUF);
	size_t rlen = 0;
	bool stuck = false;
	int stuck_rounds = 0;
	/* the link counts as dead when requests wait io_ms without a byte
	 * coming back; an idle one is pinged every ping_ms */
	long ping_ms = c->io_ms / 4 > 250 ? c->io_ms / 4 : 250;
	int64_t last_rx = sftpc_now_ms();
	bool was_waiting = false;
	if (!rb)
		sftpc_failf(c, "out of memory");
	for (;;) {
		pthread_mutex_lock(&c->mu);
		if (c->stop || c->broken) {
			pthread_mutex_unlock(&c->mu);
			break;
		}
		if (wpos == w.len && c->outq.len) {
			struct sm_buf t = w;
			w = c->outq;
			c->outq = t;
			c->outq.len = 0;
			wpos = 0;
		}
		bool waiting = c->head != NULL;
		pthread_mutex_unlock(&c->mu);
		int64_t now = sftpc_now_ms();
		if (waiting && !was_waiting)
			last_rx = now; /* the clock starts with the first request */
		was_waiting = waiting;
		if (!waiting && now - last_rx >= ping_ms) {
			sftpc_ping(c);
			last_rx = now;
			continue;
		}
		bool progress = false;
		bool blocked = false; /* this round left a packet with libssh2 */
		if (stuck) {
			int pr = libssh2_channel_wait_eof(c->ch);
			if (pr < 0 && pr != LIBSSH2_ERROR_EAGAIN && pr != LIBSSH2_ERROR_BAD_USE) {
				sftpc_libssh2_fail(c, "receive");
				goto out;
			}
		}
		/* a few packets per round, so that replies are read in between */
		for (int n = 0; n < SFTPC_PACKETS_PER_ROUND && wpos < w.len; n++) {
			ssize_t k = libssh2_channel_write(c->ch, w.p + wpos, w.len - wpos);
			if (k == LIBSSH2_ERROR_BAD_USE) {
				blocked = true;
				break;
			}
			if (k == LIBSSH2_ERROR_EAGAIN) {
				blocked = sftpc_outbound(c);
				break;
			}
			if (k < 0) {
				sftpc_libssh2_fail(c, "send");
				goto out;
			}
			if (k == 0)
				break; /* the server's window is full: its adjust comes in */
			wpos += (size_t)k;
			progress = true;
		}
		if (wpos == w.len)
			w.len = wpos = 0;
		for (;;) {
			ssize_t k =
			        libssh2_channel_read(c->ch, (char *)rb + rlen, SFTPC_RBUF - rlen);
			if (k == LIBSSH2_ERROR_BAD_USE) {
				blocked = true;
				break;
			}
			if (k == LIBSSH2_ERROR_EAGAIN) {
				blocked = blocked || sftpc_outbound(c);
				break;
			}
			if (k < 0) {
				sftpc_libssh2_fail(c, "receive");
				goto out;
			}
			if (k == 0) {
				if (libssh2_channel_eof(c->ch)) {
					sftpc_failf(c, "the server closed the SFTP channel");
					goto out;
				}
				break;
			}
			rlen += (size_t)k;
			last_rx = sftpc_now_ms();
			progress = true;
			size_t pos = 0;
			while (rlen - pos >= 4) {
				uint32_t len = sftpc_be32(rb + pos);
				if (len > SFTPC_PACKET_MAX) {
					sftpc_failf(
					        c, "a reply of %" PRIu32 " bytes is over the limit",
					        len);
					goto out;
				}
				if (rlen - pos - 4 < len)
					break;
				if (!sftpc_dispatch(c, rb + pos + 4, len)) {
					sftpc_failf(c, "malformed reply from the server");
					goto out;
				}
				pos += 4 + (size_t)len;
			}
			memmove(rb, rb + pos, rlen - pos);
			rlen -= pos;
		}
		stuck = blocked;
		stuck_rounds = progress || !stuck ? 0 : stuck_rounds + 1;
		if (stuck_rounds > SFTPC_STUCK_ROUNDS) {
			sftpc_failf(c, "the SSH layer cannot finish a packet it began");
			goto out;
		}
		if (progress)
			continue;
		now = sftpc_now_ms();
		if (waiting && now - last_rx > c->io_ms) {
			sftpc_failf(c, "no reply for %ld s", c->io_ms / 1000);
			goto out;
		}
		pthread_mutex_lock(&c->mu);
		bool more = c->outq.len && wpos == w.len;
		if (!more && !c->stop)
			c->sleeping = true;
		pthread_mutex_unlock(&c->mu);
		if (more)
			continue;
		/* a packet sent in part waits for room in the socket; else
		 * replies (or window adjusts) come in */
		struct pollfd pf[2] = {
			{ .fd = c->fd, .events = stuck ? POLLOUT : POLLIN },
			{ .fd = c->efd, .events = POLLIN },
		};
		int64_t due = waiting ? last_rx + c->io_ms + 1 : last_rx + ping_ms;
		int tmo = due - now < 1 ? 1 : due - now > 1000 ? 1000 : (int)(due - now);
		if (poll(pf, 2, tmo) < 0 && errno != EINTR) {
			sftpc_failf(c, "poll: %s", strerror(errno));
			goto out;
		}
		if (pf[1].revents & POLLIN) {
			uint64_t v;
			ssize_t r = read(c->efd, &v, sizeof(v));
			(void)r;
		}
		pthread_mutex_lock(&c->mu);
		c->sleeping = false;
		pthread_mutex_unlock(&c->mu);
	}
out:
	free(rb);
	sm_buf_release(&w);
	return NULL;
}

void sm_sftpc_submit(struct sm_sftpc *c, struct sm_sftpc_req *q)
{
	if (!q->cv_init) {
		pthread_cond_init(&q->cv, NULL);
		q->cv_init = true;
	}
	q->done = false;
	q->next = NULL;
	bool wake = false;
	pthread_mutex_lock(&c->mu);
	if (c->broken || q->rc != 0 || q->out.len < 9) {
		pthread_mutex_unlock(&c->mu);
		sftpc_finish(c, q, SM_SFTPC_LINK);
		return;
	}
	q->id = c->next_id++;
	unsigned char *h = (unsigned char *)q->out.p;
	sftpc_put32(h, (uint32_t)(q->out.len - 4));
	sftpc_put32(h + 5, q->id);
	if (sm_buf_append(&c->outq, q->out.p, q->out.len) != SM_OK) {
		pthread_mutex_unlock(&c->mu);
		sftpc_finish(c, q, SM_SFTPC_LINK);
		return;
	}
	if (c->tail)
		c->tail->next = q;
	else
		c->head = q;
	c->tail = q;
	if (c->sleeping) {
		c->sleeping = false;
		wake = true;
	}
	pthread_mutex_unlock(&c->mu);
	if (wake)
		sftpc_wake(c);
}

void sm_sftpc_submit_detached(struct sm_sftpc *c, struct sm_sftpc_req *q)
{
	q->detached = true;
	sm_sftpc_submit(c, q);
}

int sm_sftpc_wait(struct sm_sftpc *c, struct sm_sftpc_req *q)
{
	pthread_mutex_lock(&c->mu);
	while (!q->done)
		pthread_cond_wait(&q->cv, &c->mu);
	int rc = q->rc;
	pthread_mutex_unlock(&c->mu);
	return rc;
}

void sm_sftpc_prepare(struct sm_sftpc_req *q)
{
	if (!q->cv_init) {
		pthread_cond_init(&q->cv, NULL);
		q->cv_init = true;
	}
	q->done = false;
	q->cb = NULL;
}

void sm_sftpc_post(struct sm_sftpc *c, struct sm_sftpc_req *q, int rc)
{
	pthread_mutex_lock(&c->mu);
	sftpc_complete(q, rc);
	pthread_mutex_unlock(&c->mu);
}

int sm_sftpc_call(struct sm_sftpc *c, struct sm_sftpc_req *q)
{
	sm_sftpc_submit(c, q);
	return sm_sftpc_wait(c, q);
}

bool sm_sftpc_broken(struct sm_sftpc *c)
{
	pthread_mutex_lock(&c->mu);
	bool b = c->broken;
	pthread_mutex_unlock(&c->mu);
	return b;
}

const char *sm_sftpc_why(struct sm_sftpc *c)
{
	/* written once, when broken is set, and never again */
	return sm_sftpc_broken(c) ? c->why : "";
}

const char *sm_sftpc_name(struct sm_sftpc *c)
{
	return c->ops->name(c->ssh);
}

const char *sm_sftpc_typed_password(struct sm_sftpc *c)
{
	return c->ops->typed_password(c->ssh);
}

bool sm_sftpc_has_ext(struct sm_sftpc *c, const char *name)
{
	for (size_t i = 0; i < c->exts_len; i += strlen(c->exts + i) + 1)
		if (strcmp(c->exts + i, name) == 0)
			return true;
	return false;
}

size_t sm_sftpc_max_read(struct sm_sftpc *c)
{
	return c->max_read;
}

size_t sm_sftpc_max_write(struct sm_sftpc *c)
{
	return c->max_write;
}

/* ---- start and stop ---- */

/* Blocking writes and reads of the handshake, before the thread runs. */
static bool sftpc_write_all(struct sm_sftpc *c, const void *p, size_t n)
{
	const char *b = p;
	while (n) {
		ssize_t k = libssh2_channel_write(c->ch, b, n);
		if (k < 0)
			return false;
		b += k;
		n -= (size_t)k;
	}
	return true;
}

static bool sftpc_read_all(struct sm_sftpc *c, void *p, size_t n)
{
	char *b = p;
	while (n) {
		ssize_t k = libssh2_channel_read(c->ch, b, n);
		if (k <= 0)
			return false;
		b += k;
		n -= (size_t)k;
	}
	return true;
}

/* INIT / VERSION: the server's version and its extensions. */
static enum sm_err sftpc_hello(struct sm_sftpc *c, struct sm_diag *d)
{
	unsigned char init[9];
	sftpc_put32(init, 5);
	init[4] = 1; /* SSH_FXP_INIT */
	sftpc_put32(init + 5, SFTPC_VERSION);
	unsigned char lb[4];
	if (!sftpc_write_all(c, init, sizeof(init)) || !sftpc_read_all(c, lb, 4)) {
		char *msg = NULL;
		libssh2_session_last_error(c->s, &msg, NULL, 0);
		return sm_diag_set(d, SM_EAGAIN, 0, "sftp: %s: no SFTP greeting: %s",
		                   c->ops->name(c->ssh), msg && *msg ? msg : "channel closed");
	}
	uint32_t len = sftpc_be32(lb);
	if (len < 5 || len > 65536)
		return sm_diag_set(d, SM_EIO, 0, "sftp: %s: bad SFTP greeting (%" PRIu32 " bytes)",
		                   c->ops->name(c->ssh), len);
	unsigned char *p = malloc(len);
	if (!p)
		return sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
	enum sm_err err = SM_OK;
	if (!sftpc_read_all(c, p, len) || p[0] != 2 /* SSH_FXP_VERSION */) {
		err = sm_diag_set(d, SM_EIO, 0, "sftp: %s: bad SFTP greeting",
		                  c->ops->name(c->ssh));
		goto out;
	}
	uint32_t ver;
	if (!sm_sftpc_parse_version(p + 1, len - 1, &ver, c->exts, sizeof(c->exts), &c->exts_len)) {
		err = sm_diag_set(d, SM_EIO, 0, "sftp: %s: bad SFTP greeting",
		                  c->ops->name(c->ssh));
		goto out;
	}
	if (ver < SFTPC_VERSION)
		err = sm_diag_set(d, SM_ENOTSUP, 0,
		                  "sftp: %s speaks SFTP version %" PRIu32 ", 3 is needed",
		                  c->ops->name(c->ssh), ver);
out:
	free(p);
	return err;
}

/* limits@openssh.com: the server's READ and WRITE limits. */
static void sftpc_limits(struct sm_sftpc *c)
{
	c->max_read = c->max_write = SFTPC_IO_DEFAULT;
	if (!sm_sftpc_has_ext(c, "limits@openssh.com"))
		return;
	struct sm_sftpc_req q;
	sm_sftpc_req_init(&q);
	sm_sftpc_begin_ext(&q, "limits@openssh.com", SM_SFTPC_R_EXTENDED);
	if (sm_sftpc_call(c, &q) == 0) {
		struct sm_sftpc_rd r;
		sm_sftpc_rd_init(&r, &q);
		uint64_t pkt = sm_sftpc_get_u64(&r);
		uint64_t rd = sm_sftpc_get_u64(&r);
		uint64_t wr = sm_sftpc_get_u64(&r);
		if (!r.bad) {
			/* 0 = no limit; a WRITE carries ~40 bytes beside its data */
			uint64_t cap = pkt > 1024 ? pkt - 1024 : SFTPC_IO_MAX;
			rd = rd ? rd : cap;
			wr = wr ? wr : cap;
			rd = rd < cap ? rd : cap;
			wr = wr < cap ? wr : cap;
			c->max_read = rd > SFTPC_IO_MAX ? SFTPC_IO_MAX
			              : rd < 512        ? 512
			                                : (size_t)rd;
			c->max_write = wr > SFTPC_IO_MAX ? SFTPC_IO_MAX
			               : wr < 512        ? 512
			                                 : (size_t)wr;
		}
	}
	sm_sftpc_req_release(&q);
}

enum sm_err sm_sftpc_start(const struct sm_ssh_ops *ops, struct sm_ssh_conn *ssh,
                           struct sm_sftpc **out, struct sm_diag *d)
{
	struct sm_sftpc *c = calloc(1, sizeof(*c));
	if (!c) {
		ops->close(ssh);
		return sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
	}
	c->ops = ops;
	c->ssh = ssh;
	c->s = ops->session(ssh);
	c->fd = ops->fd(ssh);
	c->io_ms = ops->io_timeout_ms(ssh);
	c->efd = -1;
	c->outq.limit = 256u << 20;
	enum sm_err err = SM_OK;
	pthread_mutex_init(&c->mu, NULL);
	c->mu_init = true;
	c->ch = libssh2_channel_open_ex(c->s, "session", 7, SFTPC_WINDOW,
	                                LIBSSH2_CHANNEL_PACKET_DEFAULT, NULL, 0);
	if (!c->ch || libssh2_channel_subsystem(c->ch, "sftp") != 0) {
		char *msg = NULL;
		libssh2_session_last_error(c->s, &msg, NULL, 0);
		err = sm_diag_set(d, SM_EIO, 0, "sftp: %s: cannot start the SFTP subsystem: %s",
		                  ops->name(ssh), msg && *msg ? msg : "?");
		goto fail;
	}
	libssh2_channel_handle_extended_data2(c->ch, LIBSSH2_CHANNEL_EXTENDED_DATA_IGNORE);
	err = sftpc_hello(c, d);
	if (err != SM_OK)
		goto fail;
	c->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (c->efd < 0) {
		err = sm_diag_set(d, SM_EIO, errno, "eventfd: %s", strerror(errno));
		goto fail;
	}
	libssh2_session_set_blocking(c->s, 0);
	if (pthread_create(&c->th, NULL, sftpc_io, c) != 0) {
		libssh2_session_set_blocking(c->s, 1);
		err = sm_diag_set(d, SM_ENOMEM, 0, "cannot start an SFTP thread");
		goto fail;
	}
	c->th_started = true;
	sftpc_limits(c);
	if (sm_sftpc_broken(c)) {
		err = sm_diag_set(d, SM_EAGAIN, 0, "sftp: %s: %s", ops->name(ssh), c->why);
		goto fail;
	}
	*out = c;
	return SM_OK;
fail:
	sm_sftpc_stop(c);
	return err;
}

void sm_sftpc_stop(struct sm_sftpc *c)
{
	if (!c)
		return;
	if (c->th_started) {
		pthread_mutex_lock(&c->mu);
		c->stop = true;
		pthread_mutex_unlock(&c->mu);
		sftpc_wake(c);
		pthread_join(c->th, NULL);
	}
	if (c->ch) {
		libssh2_session_set_blocking(c->s, 1);
		/* a dead link must not hold the run for the whole I/O timeout */
		libssh2_session_set_timeout(c->s, c->broken ? 1000 : 5000);
		libssh2_channel_free(c->ch);
	}
	if (c->mu_init) {
		sftpc_failf(c, "closed");
		pthread_mutex_destroy(&c->mu);
	}
	sm_buf_release(&c->outq);
	if (c->efd >= 0)
		close(c->efd);
	c->ops->close(c->ssh);
	free(c);
}
