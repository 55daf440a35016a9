#include "wire.h"

#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "../common/log.h"
#include "../common/store/sigv4.h"
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

/* ---- the Hello ---- */

static ProtobufCBinaryData wire_bytes(const char *s)
{
	ProtobufCBinaryData b = { .len = s ? strlen(s) : 0, .data = (uint8_t *)s };
	return b;
}

static void wire_store_to_pb(const struct sm_wire_store *ws, Syncmgr__StoreCfg *pb)
{
	syncmgr__store_cfg__init(pb);
	pb->scheme = ws->url->scheme;
	pb->path = wire_bytes(ws->url->path);
	pb->display = wire_bytes(ws->url->display);
	pb->trailing = ws->url->trailing;
	pb->label = (char *)(ws->cfg->label ? ws->cfg->label : "");
	pb->follow_links = ws->cfg->follow_links;
	pb->read_links = ws->cfg->read_links;
	pb->must_exist = ws->cfg->must_exist;
	pb->no_https = ws->cfg->no_https;
	pb->storage_class = (char *)(ws->cfg->storage_class ? ws->cfg->storage_class : "");
	pb->list_cache = ws->cfg->list_cache;
	pb->one = ws->cfg->one;
	pb->fault = (char *)(ws->fault ? ws->fault : "");
}

uint8_t *sm_wire_hello_pack(const struct sm_wire_hello *h, size_t *len, char hash[SM_WIRE_HASH_HEX],
                            struct sm_diag *d)
{
	const struct sm_opts *o = h->o;
	uint8_t *buf = NULL;
	Syncmgr__Rule *rules = calloc(o->filter.n ? o->filter.n : 1, sizeof(*rules));
	Syncmgr__Rule **rulep = calloc(o->filter.n ? o->filter.n : 1, sizeof(*rulep));
	size_t nfiles = o->sel.files ? o->sel.files->n : 0;
	ProtobufCBinaryData *files = calloc(nfiles ? nfiles : 1, sizeof(*files));
	if (!rules || !rulep || !files) {
		sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
		goto out;
	}
	Syncmgr__Options op = SYNCMGR__OPTIONS__INIT;
	op.update = o->update;
	op.force_update = o->force_update;
	op.existing = o->existing;
	op.ignore_existing = o->ignore_existing;
	op.check_all = o->check_all;
	op.check_new = o->check_new;
	op.check_change = o->check_change;
	op.dirs = o->dirs;
	op.perms = o->perms;
	op.links = o->links;
	op.inplace = o->inplace;
	op.fsync = o->fsync;
	op.delete_dst = o->delete_dst;
	op.delete_src = o->delete_src;
	op.delete_src_after = o->delete_src_after;
	op.dry = o->dry;
	op.max_failure = o->max_failure;
	op.log_level = o->log_level;
	op.debug = o->debug;
	op.verbose = o->verbose;
	op.json = o->json;
	for (size_t i = 0; i < o->filter.n; i++) {
		syncmgr__rule__init(&rules[i]);
		bool include = false;
		rules[i].pattern = wire_bytes(sm_filter_rule(&o->filter, i, &include));
		rules[i].include = include;
		rulep[i] = &rules[i];
	}
	op.n_rules = o->filter.n;
	op.rules = rulep;
	op.match_full_path = o->filter.full_path;
	op.has_start = o->sel.start != NULL;
	op.start = wire_bytes(o->sel.start);
	op.has_end = o->sel.end != NULL;
	op.end = wire_bytes(o->sel.end);
	op.has_min_size = o->sel.has_min_size;
	op.min_size = o->sel.min_size;
	op.has_max_size = o->sel.has_max_size;
	op.max_size = o->sel.max_size;
	op.has_min_mtime = o->sel.has_min_mtime;
	op.min_mtime_ns = o->sel.min_mtime_ns;
	op.has_max_mtime = o->sel.has_max_mtime;
	op.max_mtime_ns = o->sel.max_mtime_ns;
	op.has_files_from = o->sel.files != NULL;
	for (size_t i = 0; i < nfiles; i++)
		files[i] = wire_bytes(o->sel.files->keys[i]);
	op.n_files_from = nfiles;
	op.files_from = files;

	Syncmgr__StoreCfg src, dst;
	wire_store_to_pb(&h->src, &src);
	wire_store_to_pb(&h->dst, &dst);
	Syncmgr__Hello hello = SYNCMGR__HELLO__INIT;
	hello.version = SM_WIRE_VERSION;
	hello.run_id = h->run_id;
	hello.url = wire_bytes(h->url);
	hello.worker = (char *)(h->worker ? h->worker : "");
	hello.threads = h->threads;
	hello.lease_ms = h->lease_ms;
	hello.stall_ms = h->stall_ms;
	hello.max_msg = (uint32_t)sm_wire_max_msg();
	hello.pool_budget = h->pool_budget;
	hello.options = &op;
	hello.src = &src;
	hello.dst = &dst;
	size_t n = syncmgr__hello__get_packed_size(&hello);
	if (n > SM_WIRE_MAX_HELLO) {
		sm_diag_set(d, SM_EINVAL, 0,
		            "the workers' configuration takes %zu bytes (at most %u): "
		            "--files-from too long?",
		            n, SM_WIRE_MAX_HELLO);
		goto out;
	}
	buf = malloc(n ? n : 1);
	if (!buf) {
		sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
		goto out;
	}
	*len = syncmgr__hello__pack(&hello, buf);
	sm_sha256_hex(buf, *len, hash);
out:
	free(rules);
	free(rulep);
	free(files);
	return buf;
}

/* A NUL-terminated copy of bytes that must hold no NUL. */
static enum sm_err wire_str(ProtobufCBinaryData b, const char *what, char **out, struct sm_diag *d)
{
	if (memchr(b.data, '\0', b.len))
		return sm_diag_set(d, SM_EINVAL, 0, "configuration: %s holds a NUL byte", what);
	*out = sm_strndup((const char *)b.data, b.len);
	if (!*out)
		return sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
	return SM_OK;
}

enum sm_err sm_wire_opts_from_pb(const Syncmgr__Options *pb, struct sm_opts *o, struct sm_diag *d)
{
	sm_opts_defaults(o);
	if (!pb)
		return sm_diag_set(d, SM_EINVAL, 0, "configuration without options");
	o->update = pb->update;
	o->force_update = pb->force_update;
	o->existing = pb->existing;
	o->ignore_existing = pb->ignore_existing;
	o->check_all = pb->check_all;
	o->check_new = pb->check_new;
	o->check_change = pb->check_change;
	o->dirs = pb->dirs;
	o->perms = pb->perms;
	o->links = pb->links;
	o->inplace = pb->inplace;
	o->fsync = pb->fsync;
	o->delete_dst = pb->delete_dst;
	o->delete_src = pb->delete_src;
	o->delete_src_after = pb->delete_src_after;
	o->dry = pb->dry;
	o->max_failure = pb->max_failure;
	o->log_level = pb->log_level;
	o->debug = pb->debug;
	o->verbose = pb->verbose;
	o->json = pb->json;
	o->filter.full_path = pb->match_full_path;
	enum sm_err err = SM_OK;
	for (size_t i = 0; i < pb->n_rules && err == SM_OK; i++) {
		char *pat = NULL;
		err = wire_str(pb->rules[i]->pattern, "a rule", &pat, d);
		if (err == SM_OK)
			err = sm_filter_add(&o->filter, pat, pb->rules[i]->include, d);
		free(pat);
	}
	if (err == SM_OK && pb->has_start)
		err = wire_str(pb->start, "--start", &o->sel.start, d);
	if (err == SM_OK && pb->has_end)
		err = wire_str(pb->end, "--end", &o->sel.end, d);
	o->sel.has_min_size = pb->has_min_size;
	o->sel.min_size = pb->min_size;
	o->sel.has_max_size = pb->has_max_size;
	o->sel.max_size = pb->max_size;
	o->sel.has_min_mtime = pb->has_min_mtime;
	o->sel.min_mtime_ns = pb->min_mtime_ns;
	o->sel.has_max_mtime = pb->has_max_mtime;
	o->sel.max_mtime_ns = pb->max_mtime_ns;
	if (err == SM_OK && pb->has_files_from) {
		struct sm_fileset *fs = calloc(1, sizeof(*fs));
		if (fs)
			fs->keys =
			        calloc(pb->n_files_from ? pb->n_files_from : 1, sizeof(*fs->keys));
		if (!fs || !fs->keys) {
			free(fs);
			err = sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
		} else {
			o->sel.files = fs;
		}
		for (size_t i = 0; err == SM_OK && i < pb->n_files_from; i++) {
			err = wire_str(pb->files_from[i], "--files-from", &fs->keys[i], d);
			if (err == SM_OK)
				fs->n++;
			/* the manager sent them sorted: a set out of order is no set */
			if (err == SM_OK && i > 0 && strcmp(fs->keys[i - 1], fs->keys[i]) >= 0)
				err = sm_diag_set(d, SM_EINVAL, 0,
				                  "configuration: --files-from out of order");
		}
	}
	if (err != SM_OK)
		sm_opts_release(o);
	return err;
}
