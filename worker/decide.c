#include "decide.h"

#include <string.h>
#include <sys/stat.h>

const char *sm_act_name(enum sm_act a)
{
	switch (a) {
	case SM_ACT_SKIP: return "skip";
	case SM_ACT_COPY: return "copy";
	case SM_ACT_CHECK: return "check";
	case SM_ACT_ATTR: return "chmod";
	case SM_ACT_DELETE: return "delete";
	case SM_ACT_EXTRA: return "extra";
	case SM_ACT_IGNORE: return "ignore";
	}
	return "?";
}

static struct sm_decision dec(enum sm_act act, const char *why, bool same)
{
	return (struct sm_decision){ .act = act, .why = why, .same = same };
}

/* A key type this run handles at all. */
static bool decide_wanted(const struct sm_entry *e, const struct sm_opts *o)
{
	if (S_ISDIR(e->mode))
		return o->dirs;
	if (S_ISLNK(e->mode))
		return true; /* on SRC only with --links; on DST always a key */
	return S_ISREG(e->mode);
}

static bool decide_mode_differs(const struct sm_entry *s, const struct sm_entry *d,
                                const struct sm_opts *o)
{
	return o->perms && !S_ISLNK(s->mode) && (s->mode & 07777) != (d->mode & 07777);
}

/* SRC's mtime against DST's in whole seconds (as rsync: not every store
 * keeps nanoseconds): <0, 0, >0. A DST time at the limit of what its store
 * holds (mtime_clamp) stands for every time past that limit, so a key
 * copied with a time the store could not keep is not copied again. */
static int decide_mtime_cmp(const struct sm_entry *src, const struct sm_entry *dst)
{
	int64_t ss = src->mtime_ns / 1000000000, ds = dst->mtime_ns / 1000000000;
	if ((dst->mtime_clamp > 0 && ss > ds) || (dst->mtime_clamp < 0 && ss < ds))
		return 0;
	return ss > ds ? 1 : ss < ds ? -1 : 0;
}

bool sm_mtime_differs(int64_t src_ns, const struct sm_entry *dst)
{
	if (dst->mtime_ns % 1000000000 != 0)
		return src_ns != dst->mtime_ns;
	struct sm_entry s = { .mtime_ns = src_ns };
	return decide_mtime_cmp(&s, dst) != 0;
}

struct sm_decision sm_decide(const struct sm_entry *src, const struct sm_entry *dst,
                             const struct sm_opts *o)
{
	/* a FIFO, socket or device on DST is a DST key: deleted with
	 * --delete-dst, replaced by SRC's key of the same name (a special file
	 * on SRC travels excluded: its DST key stays as it is) */
	bool dspecial = dst && !S_ISDIR(dst->mode) && !decide_wanted(dst, o);
	if (src && !decide_wanted(src, o))
		src = NULL;
	if (dst && !decide_wanted(dst, o) && !dspecial)
		dst = NULL;
	if (!src && !dst)
		return dec(SM_ACT_IGNORE, "not a regular file, directory or symlink of this run",
		           false);
	if (!src)
		return o->delete_dst ? dec(SM_ACT_DELETE, "not on SRC", false)
		                     : dec(SM_ACT_EXTRA, "not on SRC", false);
	if (!dst)
		return o->existing ? dec(SM_ACT_SKIP, "not on DST (--existing)", false)
		                   : dec(SM_ACT_COPY, "not on DST", false);
	if (o->ignore_existing)
		return dec(SM_ACT_SKIP, "exists on DST (--ignore-existing)", false);

	bool sdir = S_ISDIR(src->mode), slink = S_ISLNK(src->mode);
	bool ddir = S_ISDIR(dst->mode), dlink = S_ISLNK(dst->mode);
	if (sdir != ddir || slink != dlink || dspecial)
		return dec(SM_ACT_COPY, "type differs", false);
	if (sdir) {
		struct sm_decision r = dec(SM_ACT_SKIP, "directory exists", true);
		if (decide_mode_differs(src, dst, o)) {
			r.why = "directory exists, mode differs: set at the end";
			r.fix_dir = true;
		} else if (o->dirs && sm_mtime_differs(src->mtime_ns, dst)) {
			r.why = "directory exists, mtime differs: set at the end";
			r.fix_dir = true;
		}
		return r;
	}
	if (o->force_update)
		return dec(SM_ACT_COPY, "--force-update", false);
	if (slink) {
		if (!src->link || !dst->link || strcmp(src->link, dst->link) != 0)
			return dec(SM_ACT_COPY, "symlink target differs", false);
		return dec(SM_ACT_SKIP, "same symlink", true);
	}
	if (o->update) {
		int c = decide_mtime_cmp(src, dst);
		if (c > 0)
			return dec(SM_ACT_COPY, "newer on SRC", false);
		if (c < 0)
			return dec(SM_ACT_SKIP, "newer on DST (--update)", false);
	}
	if (src->size != dst->size)
		return dec(SM_ACT_COPY, "size differs", false);
	if (o->check_all)
		return dec(SM_ACT_CHECK, "same size: comparing contents", true);
	/* Deleting SRC needs the strongest evidence the run has: the same size
	 * and mtime (whole seconds, as not every store keeps more), else the
	 * key is copied first. */
	if (o->delete_src && decide_mtime_cmp(src, dst) != 0)
		return dec(SM_ACT_COPY, "same size, other mtime: copied before SRC is deleted",
		           false);
	if (decide_mode_differs(src, dst, o))
		return dec(SM_ACT_ATTR, "mode differs", true);
	return dec(SM_ACT_SKIP, "same size", true);
}
