#include "wire.h"

#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "../common/util.h"

static size_t wire_max = SM_WIRE_MAX_MSG;
static pthread_once_t wire_once = PTHREAD_ONCE_INIT;

static void wire_max_init(void)
{
	int64_t v = 0;
	const char *env = getenv("SYNCMGR_TEST_MSG_MAX");
	if (env && sm_parse_i64(env, 65536, SM_WIRE_MAX_MSG, &v))
		wire_max = (size_t)v;
}

size_t sm_wire_max_msg(void)
{
	pthread_once(&wire_once, wire_max_init);
	return wire_max;
}

bool sm_wire_del_batch_full(size_t n, size_t key_bytes)
{
	/* a key's attributes and framing take at most 64 bytes more */
	return n >= SM_DEL_MSG_KEYS || key_bytes + 64 * n >= sm_wire_max_msg() / 4;
}

void sm_wire_stats_to_pb(const struct sm_stats *s, Syncmgr__Stats *pb)
{
	syncmgr__stats__init(pb);
#define SM_WIRE_TO(f) pb->f = s->f;
	SM_STATS_FIELDS(SM_WIRE_TO)
#undef SM_WIRE_TO
}

void sm_wire_stats_from_pb(const Syncmgr__Stats *pb, struct sm_stats *s)
{
	memset(s, 0, sizeof(*s));
	if (!pb)
		return;
#define SM_WIRE_FROM(f) s->f = pb->f;
	SM_STATS_FIELDS(SM_WIRE_FROM)
#undef SM_WIRE_FROM
}

void sm_wire_entry_to_pb(const struct sm_entry *e, Syncmgr__Entry *pb)
{
	syncmgr__entry__init(pb);
	pb->key.data = (uint8_t *)e->key;
	pb->key.len = strlen(e->key);
	pb->size = e->size;
	pb->mtime_ns = e->mtime_ns;
	pb->mode = e->mode;
	pb->uid = e->uid;
	pb->gid = e->gid;
	if (e->link) {
		pb->link.data = (uint8_t *)e->link;
		pb->link.len = strlen(e->link);
	}
	pb->excluded = e->excluded;
	pb->mtime_bound = e->mtime_bound;
}

uint8_t *sm_wire_pack_request(const Syncmgr__Request *m, size_t *len)
{
	size_t n = syncmgr__request__get_packed_size(m);
	if (n > sm_wire_max_msg())
		return NULL;
	uint8_t *buf = malloc(n ? n : 1);
	if (!buf)
		return NULL;
	*len = syncmgr__request__pack(m, buf);
	return buf;
}

uint8_t *sm_wire_pack_reply(const Syncmgr__Reply *m, size_t *len)
{
	size_t n = syncmgr__reply__get_packed_size(m);
	if (n + SM_WIRE_REPLY_ROOM > sm_wire_max_msg())
		return NULL;
	uint8_t *buf = malloc(n + SM_WIRE_REPLY_ROOM); /* allow_delete, attempt appended */
	if (!buf)
		return NULL;
	*len = syncmgr__reply__pack(m, buf);
	return buf;
}

size_t sm_wire_append_varint(uint8_t *buf, size_t len, unsigned field, uint64_t v)
{
	buf[len++] = (uint8_t)(field << 3); /* wire type 0: varint; field < 16 */
	/* proto3 may leave a zero field out; appending it is the same */
	do {
		uint8_t b = v & 0x7f;
		v >>= 7;
		buf[len++] = v ? (b | 0x80) : b;
	} while (v);
	return len;
}

#define WIRE_CHUNK (64u << 10)

struct sm_wire_chunk {
	struct sm_wire_chunk *next;
	size_t size;
	size_t used;
	max_align_t data[];
};

static void *wire_arena_alloc(void *arg, size_t n)
{
	struct sm_wire_arena *a = arg;
	n = (n + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t);
	struct sm_wire_chunk *c = a->head;
	if (!c || c->size - c->used < n) {
		size_t size = n > WIRE_CHUNK ? n : WIRE_CHUNK;
		if (a->total + size > a->limit)
			return NULL;
		c = malloc(sizeof(*c) + size);
		if (!c)
			return NULL;
		c->size = size;
		c->used = 0;
		c->next = a->head;
		a->head = c;
		a->total += size;
	}
	void *p = (char *)c->data + c->used;
	c->used += n;
	return p;
}

static void wire_arena_free(void *arg, void *p)
{
	(void)arg; /* everything goes at sm_wire_arena_reset() */
	(void)p;
}

void sm_wire_arena_init(struct sm_wire_arena *a, size_t limit)
{
	a->alloc.alloc = wire_arena_alloc;
	a->alloc.free = wire_arena_free;
	a->alloc.allocator_data = a;
	a->head = NULL;
	a->total = 0;
	a->limit = limit;
}

void sm_wire_arena_reset(struct sm_wire_arena *a)
{
	struct sm_wire_chunk *keep = NULL;
	for (struct sm_wire_chunk *c = a->head; c;) {
		struct sm_wire_chunk *next = c->next;
		if (!keep && c->size == WIRE_CHUNK) {
			keep = c;
			keep->next = NULL;
			keep->used = 0;
		} else {
			free(c);
		}
		c = next;
	}
	a->head = keep;
	a->total = keep ? keep->size : 0;
}

void sm_wire_arena_release(struct sm_wire_arena *a)
{
	sm_wire_arena_reset(a);
	free(a->head);
	a->head = NULL;
	a->total = 0;
}
