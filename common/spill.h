/*
 * Spill: sort any number of byte strings in bounded memory. Records are
 * gathered in memory up to a budget; each full batch is sorted and written
 * as a run to an unnamed temporary file in TMPDIR (O_TMPFILE: gone with the
 * process however it ends), and the runs are merged when read back. Memory
 * stays about `budget` plus a read buffer per run, whatever the count.
 *
 *   sm_spill_new → sm_spill_add... → sm_spill_sort → sm_spill_next... → sm_spill_free
 *
 * Equal records all come out (in no defined order among themselves).
 */
#ifndef SM_SPILL_H
#define SM_SPILL_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

/* Order of two records: <0, 0, >0 like memcmp. */
typedef int (*sm_spill_cmp_fn)(const void *a, size_t alen, const void *b, size_t blen, void *arg);

struct sm_spill;

/* `budget`: bytes of records (plus 16 per record) kept in memory before a
 * run is written. `cmp` NULL: byte order (shorter first on a tie). */
enum sm_err sm_spill_new(size_t budget, sm_spill_cmp_fn cmp, void *arg, struct sm_spill **out,
                         struct sm_diag *d);
/* Add one record (copied), at most UINT32_MAX bytes. Not after sort. */
enum sm_err sm_spill_add(struct sm_spill *s, const void *rec, size_t len, struct sm_diag *d);
/* No more records: sort what is in memory, start the merge. */
enum sm_err sm_spill_sort(struct sm_spill *s, struct sm_diag *d);
/* The next record in order, borrowed until the next call; SM_EOF at the end. */
enum sm_err sm_spill_next(struct sm_spill *s, const void **rec, size_t *len, struct sm_diag *d);
/* Records added; runs written to disk and their bytes (for -v). */
uint64_t sm_spill_count(const struct sm_spill *s);
unsigned sm_spill_runs(const struct sm_spill *s);
uint64_t sm_spill_disk_bytes(const struct sm_spill *s);
void sm_spill_free(struct sm_spill *s); /* accepts NULL; removes the temp file */

#endif
