/*
 * Object metadata: what an object store keeps beside an object's bytes and
 * a copy into another object store carries along (issue 21). These are the
 * HTTP headers a writer sets (Content-Type, Cache-Control,
 * Content-Encoding, Content-Disposition, Content-Language, Expires) and the
 * user metadata (S3's x-amz-meta-NAME), x-amz-meta-mtime excepted: every
 * copy writes its own from the SRC mtime. Names are kept lower-case,
 * values as the server sent them (blanks around them dropped).
 *
 * Bounded, in place: SM_META_FIELDS fields of SM_META_TEXT bytes in all
 * (names and values), four times the 2 KiB of user metadata AWS allows.
 * A field that does not fit is left out and counted in `lost`.
 */
#ifndef SM_META_H
#define SM_META_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SM_META_FIELDS 48
#define SM_META_TEXT 8192

struct sm_meta {
	size_t n;                       /* fields kept */
	uint16_t name[SM_META_FIELDS];  /* offsets into text: NUL-terminated names */
	uint16_t value[SM_META_FIELDS]; /* ... and values */
	size_t used;                    /* bytes of text in use */
	unsigned lost;                  /* fields left out: beyond the bounds */
	char text[SM_META_TEXT];
};

void sm_meta_clear(struct sm_meta *m);

/* One header of a reply, `name` (nlen bytes) and `value` (vlen bytes, not
 * NUL-terminated, blanks and CR/LF around it allowed): kept when it is
 * metadata (see above) and not there yet. True when it was metadata, kept
 * or counted in `lost`. */
bool sm_meta_header(struct sm_meta *m, const char *name, size_t nlen, const char *value,
                    size_t vlen);

/* The value of field `name` (lower-case), or NULL. Borrowed from m. */
const char *sm_meta_get(const struct sm_meta *m, const char *name);

/* Field i (< m->n): its name and value, borrowed from m. */
const char *sm_meta_name(const struct sm_meta *m, size_t i);
const char *sm_meta_value(const struct sm_meta *m, size_t i);

#endif
