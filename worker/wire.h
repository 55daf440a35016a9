/* Conversions between our structs and the protobuf messages of proto/. */
#ifndef SM_WIRE_H
#define SM_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../common/opts.h"
#include "../common/stats.h"
#include "../common/store/store.h"
#include "../common/url.h"
#include "syncmgr.pb-c.h"

/* Hard cap on any message between manager and worker: a task (at most
 * 1000 keys and 1 MiB of names), a batch of deletes, a Done with its failed
 * keys, a batch of log lines are all cut to fit. A message above it is not
 * read: the manager answers an Error; above twice it, the transport drops
 * the connection. */
#define SM_WIRE_MAX_MSG (4u << 20)
/* The cap in force: SM_WIRE_MAX_MSG, or SYNCMGR_TEST_MSG_MAX (tests only,
 * at least 64 KiB) read once. */
size_t sm_wire_max_msg(void);
/* The protocol's version: a worker of another one is refused. */
#define SM_WIRE_VERSION 2
/* A config hash: hex SHA-256 and its NUL. */
#define SM_WIRE_HASH_HEX 65
/* Bytes a packed Reply has spare for fields appended at hand-out:
 * allow_delete (2), attempt and run_id (1 + a varint of up to 10 each). */
#define SM_WIRE_REPLY_ROOM 32
/* Keys of one Deletes message at most; a batch is also sent once its keys
 * reach a quarter of sm_wire_max_msg(). */
#define SM_DEL_MSG_KEYS 1000
/* Is a batch of `n` keys of `key_bytes` bytes (their names) full? Its
 * message then stays within half the cap. */
bool sm_wire_del_batch_full(size_t n, size_t key_bytes);

/* A Hello (the whole configuration of a worker) is at most this big: it
 * holds the --files-from list, and travels as bytes (in process) or on the
 * worker's SSH standard input, not on the dispatch channel. */
#define SM_WIRE_MAX_HELLO (256u << 20)

/* One store as the Hello describes it. */
struct sm_wire_store {
	const struct sm_url *url;       /* as the manager opened it */
	const struct sm_store_cfg *cfg; /* its settings (pool, ssh: the worker's own) */
	const char *fault;              /* tests: a --test-fault spec, or NULL */
};
/* Everything a Hello carries. */
struct sm_wire_hello {
	uint64_t run_id;
	const char *url;    /* the manager's dispatch address */
	const char *worker; /* the worker's name */
	unsigned threads;
	unsigned lease_ms;
	unsigned stall_ms;
	uint64_t pool_budget;
	const struct sm_opts *o;
	struct sm_wire_store src;
	struct sm_wire_store dst;
};
/* Pack a Hello into a malloc'd buffer (*len bytes) and write its config
 * hash (hex SHA-256, NUL-terminated) to `hash`; NULL (d filled) when out
 * of memory or above SM_WIRE_MAX_HELLO. Borrows `h` for the call. */
uint8_t *sm_wire_hello_pack(const struct sm_wire_hello *h, size_t *len, char hash[SM_WIRE_HASH_HEX],
                            struct sm_diag *d);
/* A worker's own options from a Hello's: the rules compiled, the
 * selection and its --files-from set rebuilt. `o` is set to defaults
 * first; release it with sm_opts_release(). */
enum sm_err sm_wire_opts_from_pb(const Syncmgr__Options *pb, struct sm_opts *o, struct sm_diag *d);

/* Append a varint field (tag, wire type 0) to a packed message; returns the
 * new length. `buf` must have room for 11 more bytes. */
size_t sm_wire_append_varint(uint8_t *buf, size_t len, unsigned field, uint64_t v);

void sm_wire_stats_to_pb(const struct sm_stats *s, Syncmgr__Stats *pb);
void sm_wire_stats_from_pb(const Syncmgr__Stats *pb, struct sm_stats *s);

/* Fill `pb` from `e`; borrows e's strings until pb is packed. */
void sm_wire_entry_to_pb(const struct sm_entry *e, Syncmgr__Entry *pb);

/*
 * A bump allocator for unpacking messages: a few large chunks instead of a
 * malloc per field (a task of 1000 entries would otherwise make 2000 small
 * allocations on one thread and free them on another), all released at once
 * by sm_wire_arena_reset(). Unpack with `&arena.alloc` and never call
 * ..._free_unpacked() on the result. Bounded by `limit` bytes.
 */
struct sm_wire_chunk;
struct sm_wire_arena {
	ProtobufCAllocator alloc;
	struct sm_wire_chunk *head;
	size_t total;
	size_t limit;
};
void sm_wire_arena_init(struct sm_wire_arena *a, size_t limit);
/* Free everything unpacked so far (keeps one small chunk for reuse). */
void sm_wire_arena_reset(struct sm_wire_arena *a);
void sm_wire_arena_release(struct sm_wire_arena *a);

/* Pack a message into a malloc'd buffer; NULL when out of memory or too big. */
uint8_t *sm_wire_pack_request(const Syncmgr__Request *m, size_t *len);
uint8_t *sm_wire_pack_reply(const Syncmgr__Reply *m, size_t *len);

#endif
