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

/* `budget`: bytes of records (plus 8 per record) kept in memory before a
 * run is written (at most 2 GiB). `cmp` NULL: byte order (shorter first on a tie). */
enum sm_err sm_spill_new(size_t budget, sm_spill_cmp_fn cmp, void *arg, struct sm_spill **out,
                         struct sm_diag *d);
/* Add one record (copied), at most UINT32_MAX bytes. Not after sort. */
enum sm_err sm_spill_add(struct sm_spill *s, const void *rec, size_t len, struct sm_diag *d);
/* Write the records in memory as a run now, whatever the budget (tests
 * spill small sets this way). Not after sort. */
enum sm_err sm_spill_flush(struct sm_spill *s, struct sm_diag *d);
/* No more records: sort, start the merge. When runs were written, the rest
 * goes to disk too and the merge holds a read buffer per run only; when
 * none was, the records stay in memory, trimmed to size, and can also be
 * read at random with sm_spill_at(). */
enum sm_err sm_spill_sort(struct sm_spill *s, struct sm_diag *d);
/* After sort, when sm_spill_runs() is 0: the i-th record in order (i below
 * sm_spill_count()), borrowed until sm_spill_free(). Thread-safe against
 * other sm_spill_at() calls (not against sm_spill_next()). */
void sm_spill_at(const struct sm_spill *s, size_t i, const void **rec, size_t *len);
/* The next record in order, borrowed until the next call; SM_EOF at the end. */
enum sm_err sm_spill_next(struct sm_spill *s, const void **rec, size_t *len, struct sm_diag *d);
/* Records added; runs written to disk and their bytes (for -v). */
uint64_t sm_spill_count(const struct sm_spill *s);
unsigned sm_spill_runs(const struct sm_spill *s);
uint64_t sm_spill_disk_bytes(const struct sm_spill *s);
/* Bytes of memory it holds now. */
size_t sm_spill_mem_bytes(const struct sm_spill *s);
void sm_spill_free(struct sm_spill *s); /* accepts NULL; removes the temp file */

/* For other sorted files: the directory temp files go to (TMPDIR, else
 * /tmp); a new unnamed file there, open read-write (O_TMPFILE: it has no
 * name, and goes with its last descriptor however the process ends; where
 * the file system lacks O_TMPFILE, a name unlinked at once). *out is
 * written only on success. */
const char *sm_spill_tmpdir(void);
enum sm_err sm_spill_tmpfile(int *out, struct sm_diag *d);
/* All n bytes at off, or an error naming the sort file. */
enum sm_err sm_spill_pwrite(int fd, uint64_t off, const void *buf, size_t n, struct sm_diag *d);
enum sm_err sm_spill_pread(int fd, uint64_t off, void *buf, size_t n, struct sm_diag *d);

#endif
