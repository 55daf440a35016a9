/* Errors: one enum for every layer, one diagnostic filled where the cause is known. */
#ifndef SM_ERR_H
#define SM_ERR_H

#include <stdbool.h>

enum sm_err {
	SM_OK = 0,
	SM_EOF,       /* end of a stream or listing: not a failure */
	SM_ENOENT,    /* no such key or path */
	SM_EEXIST,    /* exists already */
	SM_EACCES,    /* permission denied or read-only */
	SM_EINVAL,    /* bad argument or bad input */
	SM_ENOSPC,    /* out of space or quota */
	SM_EIO,       /* permanent I/O error */
	SM_EAGAIN,    /* transient: worth retrying */
	SM_ENOMEM,    /* out of memory */
	SM_EORDER,    /* a listing returned keys out of order */
	SM_ECHANGED,  /* the source changed while it was copied */
	SM_EUNSAFE,   /* the key would escape the store's root */
	SM_ENOTSUP,   /* operation not supported by this store */
	SM_EISDIR,    /* a directory is in the way */
	SM_ENOTDIR,   /* a non-directory is in the way */
	SM_EDIFFER,   /* verification found different contents */
	SM_ENOTEMPTY, /* directory not empty */
	SM_ECANCELED, /* the run is stopping (interrupted, --max-failure): not retried */
	SM_EFATAL     /* the store cannot go on for the rest of the run (an SSH host key
	               * changed, authentication refused): the run stops, once */
};

#define SM_DIAG_MAX 2048 /* a server's reason is never cut short */

/* Native code and one readable message, written by the function that knows
 * the cause. Callers add context only in debug traces. */
struct sm_diag {
	enum sm_err err;
	int native;
	char msg[SM_DIAG_MAX];
};

/* True for errors that a later attempt may not see again. */
bool sm_err_retryable(enum sm_err e);
const char *sm_err_str(enum sm_err e);

/* Fill `d` (may be NULL) and return `e`. */
enum sm_err sm_diag_set(struct sm_diag *d, enum sm_err e, int native, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
/* Put "WHAT: " before d's message (WHAT from fmt); returns d->err. */
enum sm_err sm_diag_prefix(struct sm_diag *d, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));
/* After a failure (err is neither SM_OK nor SM_EOF), put "LABEL: " before
 * d's message unless it has a side's label already ("SRC: ", "DST: ");
 * NULL label or d: nothing. Returns err. */
enum sm_err sm_diag_label(struct sm_diag *d, enum sm_err err, const char *label);
/* Map errno `errnum` to an sm_err, fill `d` with "FMT: strerror", return it. */
enum sm_err sm_diag_errno(struct sm_diag *d, int errnum, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
enum sm_err sm_err_from_errno(int errnum);
void sm_diag_clear(struct sm_diag *d);

#endif
