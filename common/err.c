#include "err.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "util.h"

bool sm_err_retryable(enum sm_err e)
{
	return e == SM_EAGAIN;
}

const char *sm_err_str(enum sm_err e)
{
	switch (e) {
	case SM_OK: return "ok";
	case SM_EOF: return "end of stream";
	case SM_ENOENT: return "no such file or key";
	case SM_EEXIST: return "already exists";
	case SM_EACCES: return "permission denied";
	case SM_EINVAL: return "invalid argument";
	case SM_ENOSPC: return "no space left";
	case SM_EIO: return "i/o error";
	case SM_EAGAIN: return "temporary failure";
	case SM_ENOMEM: return "out of memory";
	case SM_EORDER: return "listing out of order";
	case SM_ECHANGED: return "source changed during copy";
	case SM_EUNSAFE: return "key escapes the root";
	case SM_ENOTSUP: return "not supported";
	case SM_EISDIR: return "is a directory";
	case SM_ENOTDIR: return "not a directory";
	case SM_EDIFFER: return "contents differ";
	case SM_ECANCELED: return "stopped";
	case SM_ENOTEMPTY: return "directory not empty";
	case SM_EFATAL: return "cannot go on";
	}
	return "unknown error";
}

enum sm_err sm_err_from_errno(int errnum)
{
	switch (errnum) {
	case 0: return SM_OK;
	case ENOENT: return SM_ENOENT;
	case EEXIST: return SM_EEXIST;
	case EACCES:
	case EPERM:
	case EROFS: return SM_EACCES;
	case EINVAL:
	case ENAMETOOLONG:
	case ELOOP: return SM_EINVAL;
	case ENOSPC:
	case EDQUOT: return SM_ENOSPC;
	case EFBIG: return SM_EIO; /* one file too big for DST: that key fails */
	case EAGAIN:
	case EINTR:
	case EBUSY:
	case ETIMEDOUT:
	case ECONNRESET:
	case ESTALE: return SM_EAGAIN;
	case ENOMEM: return SM_ENOMEM;
	case EISDIR: return SM_EISDIR;
	case ENOTDIR: return SM_ENOTDIR;
	case ENOTEMPTY: return SM_ENOTEMPTY;
	case EOPNOTSUPP: return SM_ENOTSUP;
	default: return SM_EIO;
	}
}

static void diag_vfill(struct sm_diag *d, enum sm_err e, int native, const char *suffix,
                       const char *fmt, va_list ap)
{
	d->err = e;
	d->native = native;
	int n = vsnprintf(d->msg, sizeof(d->msg), fmt, ap);
	if (n < 0)
		d->msg[0] = '\0';
	if (suffix && n >= 0 && (size_t)n < sizeof(d->msg))
		snprintf(d->msg + n, sizeof(d->msg) - (size_t)n, ": %s", suffix);
}

enum sm_err sm_diag_set(struct sm_diag *d, enum sm_err e, int native, const char *fmt, ...)
{
	if (!d)
		return e;
	va_list ap;
	va_start(ap, fmt);
	diag_vfill(d, e, native, NULL, fmt, ap);
	va_end(ap);
	return e;
}

enum sm_err sm_diag_prefix(struct sm_diag *d, const char *fmt, ...)
{
	char what[512], msg[sizeof(d->msg)];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	sm_strlcpy(msg, d->msg, sizeof(msg));
	return sm_diag_set(d, d->err, d->native, "%s: %s", what, msg);
}

enum sm_err sm_diag_label(struct sm_diag *d, enum sm_err err, const char *label)
{
	if (err == SM_OK || err == SM_EOF || !d || !label)
		return err;
	if (strncmp(d->msg, "SRC: ", 5) == 0 || strncmp(d->msg, "DST: ", 5) == 0)
		return err;
	sm_diag_prefix(d, "%s", label);
	return err;
}

enum sm_err sm_diag_errno(struct sm_diag *d, int errnum, const char *fmt, ...)
{
	enum sm_err e = sm_err_from_errno(errnum);
	if (!d)
		return e;
	char buf[128];
	const char *s = strerror_r(errnum, buf, sizeof(buf));
	char lower[128];
	size_t i = 0;
	/* Messages are lowercase, like the rest of ours. */
	for (; s[i] && i + 1 < sizeof(lower); i++)
		lower[i] = (char)((s[i] >= 'A' && s[i] <= 'Z' && i == 0) ? s[i] + 32 : s[i]);
	lower[i] = '\0';
	va_list ap;
	va_start(ap, fmt);
	diag_vfill(d, e, errnum, lower, fmt, ap);
	va_end(ap);
	return e;
}

void sm_diag_clear(struct sm_diag *d)
{
	if (!d)
		return;
	d->err = SM_OK;
	d->native = 0;
	d->msg[0] = '\0';
}
