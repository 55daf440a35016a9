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

void sm_wire_stats_to_pb(const struct sm_stats *s, Syncmgr__Stats *pb);
void sm_wire_stats_from_pb(const Syncmgr__Stats *pb, struct sm_stats *s);

/* Fill `pb` from `e`; borrows e's strings until pb is packed. */
void sm_wire_entry_to_pb(const struct sm_entry *e, Syncmgr__Entry *pb);

/* Pack a message into a malloc'd buffer; NULL when out of memory or too big. */
uint8_t *sm_wire_pack_request(const Syncmgr__Request *m, size_t *len);
uint8_t *sm_wire_pack_reply(const Syncmgr__Reply *m, size_t *len);

#endif
