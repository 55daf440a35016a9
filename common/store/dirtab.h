/*
 * A directory's names in listing order, in bounded memory: the table a
 * file-like store (file.c, sftp.c) reads one directory into before its
 * cursors walk it.
 *
 * A record is a name, whether it is a directory, and an opaque payload of
 * the backend's (nothing for file.c; the attributes, link target and error
 * for sftp.c). Records sort by their key: the name with '/' appended for a
 * directory, in byte order, so "a.b/" sorts before "a/" and "a/" before
 * "a0", as keys do on every store.
 *
 * Up to a memory budget (DIRTAB_MEM_MAX in dirtab.c, 8 MiB: ~300k local
 * names, ~100k SFTP names with their attributes) the table is sorted in
 * memory, as before it existed. Past
 * it, the records are sorted in runs spilled to an unnamed temporary file
 * in TMPDIR and merged (common/spill.c), so the memory a directory takes
 * no longer grows with it:
 *  - a table for one reader (a cursor's own) is read straight from the
 *    merge: one read buffer per run;
 *  - a shared table (the store's listing cache: many cursors, each anywhere
 *    in it) writes the merge once more into a second unnamed file and keeps
 *    a sparse index in memory (the offset and key of the first record of
 *    every DIRTAB_BLOCK bytes): a reader seeks by a binary search over the
 *    index and a short scan, and reads on through a small window of its
 *    own (pread: readers run in parallel).
 * The temporary files have no name (O_TMPFILE): nothing is left in TMPDIR
 * however the process ends. SYNCMGR_TEST_DIR_SPILL=N (tests only) spills a
 * run every N records.
 *
 *   sm_dirtab_new → sm_dirtab_add... → sm_dirtab_finish → iterators → sm_dirtab_free
 */
#ifndef SM_DIRTAB_H
#define SM_DIRTAB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../err.h"

struct sm_dirtab;

/* One record, borrowed from the table or an iterator (see there). */
struct sm_dirtab_rec {
	const char *key; /* the name, '/' appended for a directory; NUL-terminated */
	size_t klen;
	size_t nlen; /* the name's bytes: klen without the '/' */
	bool dir;
	const void *data; /* the payload, unaligned */
	size_t dlen;
};

/* The key of a name (name[0..len), '/' appended when dir) against
 * s[0..slen): <0, 0, >0 in the table's order. */
int sm_dirtab_name_cmp(const char *name, size_t len, bool dir, const char *s, size_t slen);

#define SM_DIRTAB_DATA_MAX (64u << 10)

/* *out is written only on success. */
enum sm_err sm_dirtab_new(struct sm_dirtab **out, struct sm_diag *d);
/* Add a name (1 to 65535 bytes; the caller sees that it holds no '/' and
 * no NUL) with its payload (at most SM_DIRTAB_DATA_MAX bytes), both copied.
 * Not after finish. */
enum sm_err sm_dirtab_add(struct sm_dirtab *t, const char *name, size_t len, bool dir,
                          const void *data, size_t dlen, struct sm_diag *d);
/* No more names: sort them. `shared`: the table will be read by many
 * iterators at once, anywhere (a listing cache's); else by one iterator
 * that seeks forward only. */
enum sm_err sm_dirtab_finish(struct sm_dirtab *t, bool shared, struct sm_diag *d);
void sm_dirtab_free(struct sm_dirtab *t); /* accepts NULL */

size_t sm_dirtab_count(const struct sm_dirtab *t);
/* The most bytes its temporary files held at once (0: sorted in memory). */
uint64_t sm_dirtab_disk_bytes(const struct sm_dirtab *t);
/* Bytes of memory it holds now. */
size_t sm_dirtab_mem_bytes(const struct sm_dirtab *t);
/* When the table was spilled: "'<where>': N names sorted on disk (SIZE in
 * 'TMPDIR')" at `level` (-v: SM_LOG_INFO). `where` names the directory. */
void sm_dirtab_log(const struct sm_dirtab *t, int level, const char *where);
/* What a listing cache charges for keeping the table: its memory, and an
 * eighth of its disk bytes, so that a cache keeps a few huge directories'
 * sort files in TMPDIR (which may be a tmpfs), not hundreds. */
size_t sm_dirtab_cache_bytes(const struct sm_dirtab *t);

/*
 * A position in a finished table, for one thread. Records an iterator gives
 * are borrowed until its next peek, seek or release. Many iterators may read
 * a shared table at once; a table for one reader has one iterator at most.
 */
struct sm_dirtab_it {
	struct sm_dirtab *t;
	size_t i;     /* in memory: the next record's index */
	uint64_t off; /* in a file: the next record's offset */
	char *buf;    /* in a file: a window of it, [bstart, bstart + blen) */
	size_t bcap, blen;
	uint64_t bstart;
	size_t plen; /* bytes the last peek's record takes (0: none peeked) */
	struct sm_dirtab_rec cur;
};

/* At the first record. */
void sm_dirtab_it_init(struct sm_dirtab_it *it, struct sm_dirtab *t);
void sm_dirtab_it_release(struct sm_dirtab_it *it);
/* The record at the position, not moving on; SM_EOF past the last. An
 * error (the temporary file unreadable) leaves the position where it is. */
enum sm_err sm_dirtab_it_peek(struct sm_dirtab_it *it, struct sm_dirtab_rec *out,
                              struct sm_diag *d);
/* Past the record the last peek gave (which stays borrowed until the next
 * peek). */
void sm_dirtab_it_advance(struct sm_dirtab_it *it);
/* To the first record whose key is not below s[0..slen) (byte order,
 * shorter first). A table for one reader seeks forward only. */
enum sm_err sm_dirtab_it_seek(struct sm_dirtab_it *it, const char *s, size_t slen,
                              struct sm_diag *d);

#endif
