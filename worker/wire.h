/* Conversions between our structs and the protobuf messages of proto/. */
#ifndef SM_WIRE_H
#define SM_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "../common/stats.h"
#include "../common/store/store.h"
#include "syncmgr.pb-c.h"

/* Hard cap on any message between manager and worker. */
#define SM_WIRE_MAX_MSG (64u << 20)
/* Bytes a packed Reply has spare for fields appended at hand-out: allow_delete
 * (2) and attempt (1 + a varint of up to 10). */
#define SM_WIRE_REPLY_ROOM 16
/* Keys of one Deletes message at most (each at most PATH_MAX bytes): far
 * below SM_WIRE_MAX_MSG. */
#define SM_DEL_MSG_KEYS 1000

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
