#include "wire.h"

#include <stdlib.h>
#include <string.h>

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
}

uint8_t *sm_wire_pack_request(const Syncmgr__Request *m, size_t *len)
{
	size_t n = syncmgr__request__get_packed_size(m);
	if (n > SM_WIRE_MAX_MSG)
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
	if (n > SM_WIRE_MAX_MSG)
		return NULL;
	uint8_t *buf = malloc(n + 2); /* room for the appended allow_delete field */
	if (!buf)
		return NULL;
	*len = syncmgr__reply__pack(m, buf);
	return buf;
}
