/*
 * Local file system backend.
 *
 * Listing walks the tree depth-first; each directory's names are read with
 * getdents64 and sorted with '/' appended to subdirectory names, so the walk
 * yields the global byte order an object store lists in (dirtab.c: in
 * memory, or in runs spilled to TMPDIR for a huge directory). A range
 * cursor seeks by descending the components of its `after` key with binary
 * searches.
 * With cfg.list_cache (a run's DST) the sorted listings are kept in the
 * store's cache (dircache.c) and shared by all cursors: a directory is read
 * once per run, not once per range task in it (see file_frame_dir() for
 * why that is exact).
 *
 * Writes go to a temporary name in the target directory (".~sm" + 8 hex digits
 * + "." + name) that listings skip, and are renamed into place.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/openat2.h>

#include "../log.h"
#include "../util.h"
#include "../spill.h"
#include "dircache.h"
#include "dirtab.h"
#include "store.h"

#define FILE_COPY_BUF (64u << 10)
#define FILE_COPY_STEP (4u << 20) /* bytes per copy_file_range() */
#define FILE_DENTS_BUF (32u << 10)

struct file_store {
	char *root;
	atomic_int rootfd; /* -1 until the root exists */
	pthread_mutex_t root_mu;
	bool follow;
	bool read_links;
	mode_t umask;
	struct sm_dircache *dcache; /* listings kept for the run (cfg.list_cache), or NULL */
};

static void file_dir_free(void *p);
static enum sm_err file_open_one(struct sm_store *st, struct file_store *fs, const struct sm_url *u,
                                 int one, struct sm_diag *d);

static struct file_store *file_priv(struct sm_store *st)
{
	return st->priv;
}

/* ---- paths ---- */

/* `key` without its trailing '/', in `buf` (PATH_MAX); "" becomes ".". */
static enum sm_err file_path(const char *key, char *buf, struct sm_diag *d)
{
	size_t n = strlen(key);
	if (n && key[n - 1] == '/')
		n--;
	if (n >= PATH_MAX)
		return sm_diag_set(d, SM_EINVAL, ENAMETOOLONG, "key '%s' is too long", key);
	if (n == 0) {
		buf[0] = '.';
		buf[1] = '\0';
		return SM_OK;
	}
	memcpy(buf, key, n);
	buf[n] = '\0';
	return SM_OK;
}

/* mkdir -p of an absolute or cwd-relative path; the last directory, when
 * made, gets `mode` (& ~umask) and sets *made. */
static int file_mkdir_p(const char *path, mode_t mode, bool *made)
{
	char tmp[PATH_MAX];
	if (sm_strlcpy(tmp, path, sizeof(tmp)) >= sizeof(tmp)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, 0777) != 0 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	if (mkdir(tmp, mode) == 0)
		*made = true;
	else if (errno != EEXIST)
		return -1;
	return 0;
}

/* A write's p->made: tell it directory `dkey` (may be NULL: no one asks). */
static void file_made(const struct sm_put *p, const char *dkey)
{
	if (p && p->made)
		p->made(p->made_arg, dkey);
}

/* The mode of a directory a write makes on its way: private when someone
 * sets its attributes afterwards (p->made), else the default. */
static mode_t file_made_mode(const struct sm_put *p)
{
	return p && p->made ? 0700 : 0777;
}

/* The root's descriptor; creates the root first when `create` is set (for
 * the write `p`, which may be NULL). */
static int file_rootfd(struct file_store *fs, bool create, const struct sm_put *p,
                       struct sm_diag *d)
{
	int fd = atomic_load(&fs->rootfd);
	if (fd >= 0)
		return fd;
	pthread_mutex_lock(&fs->root_mu);
	fd = atomic_load(&fs->rootfd);
	bool made = false;
	if (fd < 0 && !create) {
		/* another store of the run (a worker's) may have made it since */
		fd = open(fs->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd >= 0)
			atomic_store(&fs->rootfd, fd);
		else
			errno = ENOENT;
	} else if (fd < 0) {
		if (file_mkdir_p(fs->root, file_made_mode(p), &made) != 0) {
			sm_diag_errno(d, errno, "cannot create '%s'", fs->root);
		} else {
			fd = open(fs->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
			if (fd < 0)
				sm_diag_errno(d, errno, "cannot open '%s'", fs->root);
			else
				atomic_store(&fs->rootfd, fd);
		}
	}
	pthread_mutex_unlock(&fs->root_mu);
	if (made)
		file_made(p, "");
	return fd;
}

/*
 * A key's parent directory, opened beneath the root, and its last component.
 * On a store that does not follow symlinks (a DST) no component of the
 * parent may be a symlink, so a write never lands outside the root: the
 * kernel checks it (openat2 RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS). When
 * creating, missing directories are made and a symlink standing where a
 * directory belongs is replaced by one (as rsync does); a file in the way is
 * an error.
 */
struct file_at {
	int dfd;
	bool own; /* dfd is ours to close (else it is the root's) */
	const char *base;
	char path[PATH_MAX];
};

static void file_at_close(struct file_at *at)
{
	if (at->own && at->dfd >= 0)
		close(at->dfd);
	at->dfd = -1;
	at->own = false;
}

/*
 * Open directory `path` below dirfd. Not following symlinks, the kernel
 * checks every component (openat2); where openat2 is missing (ENOSYS) or
 * filtered (EPERM) errno is set to ENOSYS and the caller walks one component
 * at a time, which O_NOFOLLOW then covers.
 */
static int file_openat2_dir(int dirfd, const char *path, bool follow)
{
	if (follow)
		return openat(dirfd, path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (!strchr(path, '/'))
		return openat(dirfd, path, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	struct open_how how = { .flags = O_PATH | O_DIRECTORY | O_CLOEXEC,
		                .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
		                           RESOLVE_NO_MAGICLINKS };
	int fd = (int)syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
	if (fd < 0 && (errno == ENOSYS || errno == EPERM))
		errno = ENOSYS;
	return fd;
}

/* Walk `dir` one component at a time, creating and repairing as we go. */
static enum sm_err file_at_walk(struct file_store *fs, int rootfd, char *dir, const char *key,
                                bool create, const struct sm_put *p, int *out, struct sm_diag *d)
{
	int cur = rootfd;
	char *save = NULL;
	for (char *comp = strtok_r(dir, "/", &save); comp; comp = strtok_r(NULL, "/", &save)) {
		int fd = -1;
		for (int attempt = 0; attempt < 3 && fd < 0; attempt++) {
			fd = file_openat2_dir(cur, comp, fs->follow);
			if (fd >= 0)
				break;
			int e = errno;
			struct stat sb;
			if (e == ENOENT && create) {
				if (mkdirat(cur, comp, file_made_mode(p)) == 0) {
					/* the key of what was made: "a/b/" */
					char dk[PATH_MAX];
					size_t n = (size_t)(comp - dir) + strlen(comp);
					snprintf(dk, sizeof(dk), "%.*s/", (int)n, key);
					file_made(p, dk);
					continue;
				}
				if (errno != EEXIST)
					e = errno;
				else
					continue;
			} else if (create && (e == ELOOP || e == ENOTDIR || e == EXDEV) &&
			           fstatat(cur, comp, &sb, AT_SYMLINK_NOFOLLOW) == 0 &&
			           S_ISLNK(sb.st_mode)) {
				sm_log(SM_LOG_INFO, "replacing symlink '%s' on DST by a directory",
				       comp);
				if (unlinkat(cur, comp, 0) == 0 || errno == ENOENT)
					continue;
				e = errno;
			} else if (e == ENOTDIR && create) {
				if (cur != rootfd)
					close(cur);
				*out = -1;
				return sm_diag_set(
				        d, SM_ENOTDIR, ENOTDIR,
				        "cannot write '%s': '%s' on DST is not a directory", key,
				        comp);
			}
			if (cur != rootfd)
				close(cur);
			*out = -1;
			return sm_diag_errno(d, e, "cannot write '%s'", key);
		}
		if (cur != rootfd)
			close(cur);
		if (fd < 0) {
			*out = -1;
			return sm_diag_set(d, SM_EIO, 0, "cannot create the directories of '%s'",
			                   key);
		}
		cur = fd;
	}
	*out = cur;
	return SM_OK;
}

static enum sm_err file_at_open(struct file_store *fs, const char *key, bool create,
                                const struct sm_put *p, struct file_at *at, struct sm_diag *d)
{
	at->dfd = -1;
	at->own = false;
	enum sm_err err = file_path(key, at->path, d);
	if (err != SM_OK)
		return err;
	int rootfd = file_rootfd(fs, create, p, d);
	if (rootfd < 0)
		return create ? (d ? d->err : SM_EIO)
		              : sm_diag_set(d, SM_ENOENT, ENOENT, "'%s': no such file", key);
	char *slash = strrchr(at->path, '/');
	if (!slash) {
		at->dfd = rootfd;
		at->base = at->path;
		return SM_OK;
	}
	at->base = slash + 1;
	*slash = '\0';
	int fd = file_openat2_dir(rootfd, at->path, fs->follow);
	if (fd < 0 && (errno == ENOSYS || (create && (errno == ENOENT || errno == ELOOP ||
	                                              errno == ENOTDIR || errno == EXDEV)))) {
		char dir[PATH_MAX];
		sm_strlcpy(dir, at->path, sizeof(dir));
		err = file_at_walk(fs, rootfd, dir, key, create, p, &fd, d);
		*slash = '/';
		if (err != SM_OK)
			return err;
	} else if (fd < 0) {
		int e = errno;
		*slash = '/';
		if (e == ELOOP || e == EXDEV)
			return sm_diag_set(d, SM_ENOENT, e, "'%s': a parent on DST is a symlink",
			                   key);
		return sm_diag_errno(d, e, "cannot open the directory of '%s'", key);
	}
	*slash = '/';
	at->dfd = fd;
	at->own = true;
	return SM_OK;
}

/* Nanoseconds since the epoch as a timespec (floor division: tv_nsec stays
 * in [0, 1e9) for times before 1970). */
static struct timespec file_timespec(int64_t ns)
{
	int64_t sec = ns / 1000000000, rem = ns % 1000000000;
	if (rem < 0) {
		rem += 1000000000;
		sec--;
	}
	return (struct timespec){ .tv_sec = (time_t)sec, .tv_nsec = (long)rem };
}

static void file_fill_entry(struct sm_entry *e, const struct stat *st)
{
	e->size = S_ISDIR(st->st_mode) ? 0 : (uint64_t)st->st_size;
	e->mtime_ns = sm_time_ns(st->st_mtim.tv_sec, st->st_mtim.tv_nsec, &e->mtime_clamp);
	e->mode = st->st_mode;
	e->uid = st->st_uid;
	e->gid = st->st_gid;
}

/* ---- open / close ---- */

static enum sm_err file_open(struct sm_store *st, const struct sm_url *u,
                             const struct sm_store_cfg *cfg, struct sm_diag *d)
{
	struct file_store *fs = file_priv(st);
	atomic_init(&fs->rootfd, -1);
	pthread_mutex_init(&fs->root_mu, NULL);
	fs->follow = cfg->follow_links;
	fs->read_links = cfg->read_links;
	mode_t um = umask(022);
	umask(um);
	fs->umask = um;
	fs->root = strdup(u->path);
	if (!fs->root)
		return sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
	if (cfg->list_cache &&
	    sm_dircache_new(cfg->list_cache, file_dir_free, &fs->dcache) != SM_OK)
		return sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
	enum sm_err err = file_open_one(st, fs, u, cfg->one, d);
	if (err != SM_OK)
		return err;
	char *real = sm_realpath_loose(fs->root);
	if (!real)
		return sm_diag_errno(d, errno, "'%s': cannot resolve the path", u->display);
	err = sm_store_set_where(st, "file", real, d);
	free(real);
	if (err != SM_OK)
		return err;
	int fd = open(fs->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT && !cfg->must_exist)
			return SM_OK; /* created on first write */
		if (errno == ENOTDIR)
			return sm_diag_set(d, SM_ENOTDIR, ENOTDIR, "'%s' is not a directory",
			                   u->display);
		return sm_diag_errno(d, errno, "'%s'", u->display);
	}
	atomic_store(&fs->rootfd, fd);
	return SM_OK;
}

/* cfg.one (store.h): a root that names one file becomes its parent, the
 * file's name goes to st->one. */
static enum sm_err file_open_one(struct sm_store *st, struct file_store *fs, const struct sm_url *u,
                                 int one, struct sm_diag *d)
{
	struct stat sb;
	if (one == SM_ONE_NO)
		return SM_OK;
	if (stat(fs->root, &sb) == 0 && S_ISDIR(sb.st_mode))
		return SM_OK;
	if (one == SM_ONE_SRC) {
		if (stat(fs->root, &sb) != 0)
			return sm_diag_errno(d, errno, "'%s'", u->display);
		if (!S_ISREG(sb.st_mode))
			return sm_diag_set(d, SM_ENOTDIR, 0,
			                   "'%s' is neither a directory nor a regular file",
			                   u->display);
	}
	char *parent = NULL, *name = NULL;
	enum sm_err err = sm_store_split_last(fs->root, &parent, &name, d);
	if (err != SM_OK)
		return err;
	free(fs->root);
	fs->root = *parent ? parent : strdup(".");
	if (!*parent)
		free(parent);
	st->one = name;
	return fs->root ? SM_OK : sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
}

/* The nearest existing ancestor of the root (the root itself if it exists)
 * must be writable: a run creates the rest. */
static enum sm_err file_writable(struct sm_store *st, struct sm_diag *d)
{
	struct file_store *fs = file_priv(st);
	char probe[PATH_MAX];
	if (sm_strlcpy(probe, st->where ? st->where : fs->root, sizeof(probe)) >= sizeof(probe))
		return sm_diag_set(d, SM_EINVAL, 0, "'%s': path too long", st->display);
	while (access(probe, F_OK) != 0 && strcmp(probe, "/") != 0) {
		size_t n = strlen(probe);
		while (n > 1 && probe[n - 1] == '/')
			probe[--n] = '\0';
		char *s = strrchr(probe, '/');
		if (!s)
			break;
		if (s == probe)
			s[1] = '\0';
		else
			*s = '\0';
	}
	if (access(probe, W_OK) != 0)
		return sm_diag_errno(d, errno, "'%s'", st->display);
	return SM_OK;
}

static void file_close(struct sm_store *st)
{
	struct file_store *fs = file_priv(st);
	if (!fs)
		return;
	int fd = atomic_load(&fs->rootfd);
	if (fd >= 0)
		close(fd);
	if (fs->root)
		pthread_mutex_destroy(&fs->root_mu);
	if (fs->dcache) {
		struct sm_dircache_stats ds;
		sm_dircache_stats(fs->dcache, &ds);
		sm_log(SM_LOG_DEBUG,
		       "'%s': listing cache: %lu directories read, %lu served again, %lu evicted",
		       fs->root, ds.loads, ds.hits, ds.evictions);
	}
	sm_dircache_free(fs->dcache);
	free(fs->root);
}

/* ---- listing ---- */

/* A directory's names, sorted (dirtab.c: in memory, or spilled to TMPDIR
 * when huge): a cursor's own, or shared read-only through the store's
 * listing cache. */
struct file_dir {
	struct sm_dirtab *tab;
	dev_t dev; /* of the directory read, to tell a different one at its path */
	ino_t ino;
};

struct file_ahead;

struct file_frame {
	int fd;
	size_t prefix_len; /* bytes of the cursor's key that name this directory */
	struct file_dir *dir;
	struct sm_dircache_ent *ent; /* dir's cache entry, or NULL: dir is the frame's */
	struct sm_dirtab_it it;      /* the next name to list */
	dev_t dev;
	ino_t ino;
	struct file_ahead *ahead; /* the thread that reads `it` for the cursor, or NULL */
	bool ahead_tried;
};

struct file_cursor {
	struct file_store *fs;
	struct file_frame *stack;
	int depth;
	int cap;
	struct sm_buf key;
	struct sm_entry ent;
	char *last;
	char *linkbuf;
	bool done;
	/* next() returned a directory (c->key, the name before the top
	 * frame's position): the next call opens and reads it first, unless
	 * list_skip() came between. Read only then, a directory a caller skips
	 * (parallel listing hands it to another cursor) is never read twice,
	 * and one that cannot be opened fails the call that goes into it,
	 * once: the call after that goes on after it. */
	bool descend;
	/* While seeking: the next directory loaded keeps only the names that do
	 * not sort below this bound (a component of `after`), so a task starting
	 * deep in a big tree does not sort whole ancestor directories. */
	const char *seek_lo;
	size_t seek_lolen;
	char *dents; /* getdents64 buffer, FILE_DENTS_BUF bytes, reused */
};

static void file_dir_free(void *p)
{
	struct file_dir *dir = p;
	if (!dir)
		return;
	sm_dirtab_free(dir->tab);
	free(dir);
}

static void file_ahead_stop(struct file_ahead *a);

static void file_frame_release(struct file_store *fs, struct file_frame *f)
{
	file_ahead_stop(f->ahead); /* before the iterator and fd it uses go */
	if (f->fd >= 0)
		close(f->fd);
	sm_dirtab_it_release(&f->it);
	if (f->ent)
		sm_dircache_release(fs->dcache, f->ent);
	else
		file_dir_free(f->dir);
	memset(f, 0, sizeof(*f));
	f->fd = -1;
}

/*
 * Read and sort the directory open at `fd` (borrowed) into *out (written
 * only on success, with what a cache is to charge for it in *bytes). `path`
 * names it in messages. `whole`: every name (a listing for the cache, which
 * serves any range); else the names this cursor can list only, which spares
 * a task starting deep in a big tree sorting whole ancestor directories.
 * `shared`: for the cache (many cursors read it at once).
 */
static enum sm_err file_dir_load(struct file_cursor *c, int fd, const char *path, bool whole,
                                 bool shared, struct file_dir **out, size_t *bytes,
                                 struct sm_diag *d)
{
	/* Names above the range's end at this depth are never listed: drop them
	 * too (the directory is on the path to `last`). */
	const char *hi = NULL;
	size_t hilen = 0;
	if (!whole && c->last && strncmp(c->last, c->key.p, c->key.len) == 0) {
		hi = c->last + c->key.len;
		const char *slash = strchr(hi, '/');
		hilen = slash ? (size_t)(slash - hi) + 1 : strlen(hi);
	}
	const char *lo = whole ? NULL : c->seek_lo;
	struct file_dir *dir = calloc(1, sizeof(*dir));
	if (!c->dents)
		c->dents = malloc(FILE_DENTS_BUF);
	char *dents = c->dents;
	enum sm_err err = SM_OK;
	if (!dir || !dents) {
		err = sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
		goto out;
	}
	err = sm_dirtab_new(&dir->tab, d);
	if (err != SM_OK)
		goto out;
	for (;;) {
		ssize_t nread = getdents64(fd, dents, FILE_DENTS_BUF);
		if (nread < 0) {
			err = sm_diag_errno(d, errno, "cannot list '%s'", path);
			goto out;
		}
		if (nread == 0)
			break;
		for (ssize_t off = 0; off < nread;) {
			struct dirent64 *de = (struct dirent64 *)(dents + off);
			off += de->d_reclen;
			const char *name = de->d_name;
			size_t len = strlen(name);
			if ((len == 1 && name[0] == '.') ||
			    (len == 2 && name[0] == '.' && name[1] == '.'))
				continue;
			if (sm_store_is_tmp_name(name, len) && !sm_store_is_debris_name(name, len))
				continue; /* this run's, in flight */
			bool isdir = de->d_type == DT_DIR;
			if (de->d_type == DT_UNKNOWN || (de->d_type == DT_LNK && c->fs->follow)) {
				struct stat st;
				int fl = c->fs->follow ? 0 : AT_SYMLINK_NOFOLLOW;
				isdir = fstatat(fd, name, &st, fl) == 0 && S_ISDIR(st.st_mode);
			}
			if (lo && sm_dirtab_name_cmp(name, len, isdir, lo, c->seek_lolen) < 0)
				continue; /* before the seek position: never listed */
			if (hi && sm_dirtab_name_cmp(name, len, isdir, hi, hilen) > 0)
				continue; /* after the range's end */
			err = sm_dirtab_add(dir->tab, name, len, isdir, NULL, 0, d);
			if (err != SM_OK)
				goto out;
		}
	}
	err = sm_dirtab_finish(dir->tab, shared, d);
	if (err != SM_OK)
		goto out;
	if (sm_dirtab_disk_bytes(dir->tab)) {
		/* -v: once per directory, but for the ancestors a cursor starting
		 * deep reads in part */
		size_t rl = strlen(c->fs->root);
		char where[PATH_MAX];
		snprintf(where, sizeof(where), "%s%s%s", c->fs->root,
		         rl && c->fs->root[rl - 1] == '/' ? "" : "/", c->key.p);
		sm_dirtab_log(dir->tab, lo || hi ? SM_LOG_DEBUG : SM_LOG_INFO, where);
	}
	*bytes = sizeof(*dir) + sm_dirtab_cache_bytes(dir->tab);
	*out = dir;
	dir = NULL;
out:
	file_dir_free(dir);
	return err;
}

/*
 * The sorted names of the directory open at `fd` (borrowed; `dev`/`ino`
 * from its fstat) for frame f: from the store's listing cache when it has
 * one (loaded into it on a miss), else read for this cursor alone.
 *
 * Why a listing read earlier in the run is exact where the cache serves
 * (the DST of a run, manager/run.c): a DST key in a task's range is
 * written only by that task (worker/task.c), after it listed the range,
 * and deletes wait for the end of the run (manager/journal.c), so what a
 * snapshot shows of a range is what a fresh read would show when the task
 * begins; this run's temp files are hidden from both. A task that runs
 * again (an expired lease) may see an older snapshot than its first try's
 * writes: it copies those keys again, which is harmless. A put's missing
 * parent directories (keys of other ranges) are made by mkdir as well,
 * which finds them; a symlink a put replaced by a directory is handled in
 * file_list_next().
 */
static enum sm_err file_frame_dir(struct file_cursor *c, struct file_frame *f, int fd,
                                  const char *path, struct sm_diag *d)
{
	struct sm_dircache *dc = c->fs->dcache;
	size_t bytes = 0;
	for (int attempt = 0; dc && attempt < 2; attempt++) {
		bool load = false;
		struct sm_dircache_ent *e =
		        sm_dircache_get(dc, c->key.len ? c->key.p : "", c->key.len, &load);
		if (!e)
			return sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
		if (load) {
			struct file_dir *dir = NULL;
			enum sm_err err = file_dir_load(c, fd, path, true, true, &dir, &bytes, d);
			if (err != SM_OK) {
				sm_dircache_abandon(dc, e); /* an error is never cached */
				return err;
			}
			dir->dev = f->dev;
			dir->ino = f->ino;
			sm_dircache_fill(dc, e, dir, bytes);
			f->dir = dir;
			f->ent = e;
			return SM_OK;
		}
		struct file_dir *dir = sm_dircache_val(e);
		if (dir->dev == f->dev && dir->ino == f->ino) {
			f->dir = dir;
			f->ent = e;
			return SM_OK;
		}
		/* another directory stands at this path now: read it anew */
		sm_dircache_stale(dc, e);
	}
	enum sm_err err = file_dir_load(c, fd, path, dc != NULL, false, &f->dir, &bytes, d);
	if (err == SM_OK) {
		f->dir->dev = f->dev;
		f->dir->ino = f->ino;
	}
	return err;
}

/* Push the directory `name` of the top frame (the cursor key already ends with
 * its "name/"). */
static enum sm_err file_push(struct file_cursor *c, int parentfd, const char *name,
                             struct sm_diag *d)
{
	int fl = O_RDONLY | O_DIRECTORY | O_CLOEXEC | (c->fs->follow ? 0 : O_NOFOLLOW);
	int fd = openat(parentfd, name, fl);
	if (fd < 0)
		return sm_diag_errno(d, errno, "cannot open directory '%s'", c->key.p);
	if (c->depth == c->cap) {
		int ncap = c->cap ? c->cap * 2 : 16;
		struct file_frame *ns = realloc(c->stack, (size_t)ncap * sizeof(*ns));
		if (!ns) {
			close(fd);
			return sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
		}
		c->stack = ns;
		c->cap = ncap;
	}
	struct file_frame *f = &c->stack[c->depth];
	memset(f, 0, sizeof(*f));
	struct stat dst;
	if (fstat(fd, &dst) != 0) {
		enum sm_err err = sm_diag_errno(d, errno, "cannot list '%s'",
		                                c->key.len ? c->key.p : c->fs->root);
		close(fd);
		return err;
	}
	f->dev = dst.st_dev;
	f->ino = dst.st_ino;
	enum sm_err err = file_frame_dir(c, f, fd, c->key.len ? c->key.p : c->fs->root, d);
	if (err != SM_OK) {
		close(fd);
		return err;
	}
	f->fd = fd;
	sm_dirtab_it_init(&f->it, f->dir->tab);
	/* Following symlinks can loop: refuse a directory that is its own ancestor. */
	for (int i = 0; c->fs->follow && i < c->depth; i++) {
		if (c->stack[i].dev == f->dev && c->stack[i].ino == f->ino) {
			file_frame_release(c->fs, f);
			return sm_diag_set(d, SM_EINVAL, ELOOP,
			                   "symlink loop at '%s': directory already being listed",
			                   c->key.p);
		}
	}
	f->prefix_len = c->key.len;
	c->depth++;
	return SM_OK;
}

static enum sm_err file_key_set(struct file_cursor *c, size_t prefix_len, const char *name,
                                size_t len, bool dir)
{
	c->key.len = prefix_len;
	if (sm_buf_append(&c->key, name, len) != SM_OK ||
	    (dir && sm_buf_append(&c->key, "/", 1) != SM_OK))
		return SM_ENOMEM;
	return SM_OK;
}

/* Set the load bound to the first component of `rest` ('/' included). */
static void file_seek_bound(struct file_cursor *c, const char *rest)
{
	const char *slash = strchr(rest, '/');
	c->seek_lo = *rest ? rest : NULL;
	c->seek_lolen = slash ? (size_t)(slash - rest) + 1 : strlen(rest);
}

/* Position the cursor at the first key after `after`. */
static enum sm_err file_seek(struct file_cursor *c, const char *after, struct sm_diag *d)
{
	const char *rest = after;
	while (c->depth > 0) {
		struct file_frame *f = &c->stack[c->depth - 1];
		const char *slash = strchr(rest, '/');
		size_t clen = slash ? (size_t)(slash - rest) + 1 : strlen(rest);
		struct sm_dirtab_rec nm;
		enum sm_err err = sm_dirtab_it_seek(&f->it, rest, clen, d);
		if (err == SM_OK)
			err = sm_dirtab_it_peek(&f->it, &nm, d);
		if (err == SM_EOF)
			return SM_OK;
		if (err != SM_OK)
			return err;
		if (nm.klen != clen || memcmp(nm.key, rest, clen) != 0)
			return SM_OK;         /* the first name after `after` is next */
		sm_dirtab_it_advance(&f->it); /* the key itself is not in the range */
		if (!slash)
			return SM_OK;
		/* a directory on the way to `after` (clen counts its '/') */
		if (file_key_set(c, f->prefix_len, nm.key, nm.nlen, true) != SM_OK)
			return sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
		char name[NAME_MAX + 1];
		memcpy(name, nm.key, nm.nlen);
		name[nm.nlen] = '\0';
		rest = slash + 1;
		file_seek_bound(c, rest);
		err = file_push(c, f->fd, name, d);
		c->seek_lo = NULL;
		if (err == SM_ENOENT || err == SM_ENOTDIR)
			return SM_OK; /* gone since: continue after it */
		if (err != SM_OK)
			return err;
		if (!*rest)
			return SM_OK;
	}
	return SM_OK;
}

/* ---- stat-ahead ----
 *
 * A cursor that lists without an end (the planner's walk of SRC) goes
 * through a big directory one fstatat() per name on one thread, while a
 * run's range tasks share the rest of the machine. For a directory of at
 * least FILE_AHEAD_MIN names such a cursor hands the directory's table to
 * FILE_AHEAD_THREADS threads of its own: one at a time reads a chunk of
 * names from the table, and any of them stats a chunk read; the chunks
 * stay in table order, and the cursor takes each, once stat'ed, with the
 * same names and results it would have got itself (a name stat'ed a
 * moment earlier: a listing is a snapshot either way). The frame's iterator
 * is the threads' alone until the frame goes, which stops and joins them
 * first.
 */
#define FILE_AHEAD_MIN 4096
#define FILE_AHEAD_CHUNK 256
#define FILE_AHEAD_QUEUE 8 /* chunks read and not yet taken, at most */
#define FILE_AHEAD_THREADS 2

struct file_aname {
	char key[NAME_MAX + 2]; /* the name, '/' after a directory's */
	size_t klen, nlen;
	bool dir;
	int err; /* fstatat()'s errno, or 0 */
	struct stat st;
};

enum { ACHUNK_NEW, ACHUNK_BUSY, ACHUNK_READY };

struct file_achunk {
	struct file_achunk *next;
	int state;
	size_t n;
	enum sm_err err; /* after the names: the table failed (SM_EOF: its end) */
	struct sm_diag diag;
	struct file_aname names[FILE_AHEAD_CHUNK];
};

struct file_ahead {
	pthread_t th[FILE_AHEAD_THREADS];
	int nth;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct file_achunk *head, *tail; /* in table order */
	size_t queued;
	bool reading; /* a thread reads the table */
	bool end;     /* the table gave its end (or an error) */
	bool stop;
	bool nomem;
	struct sm_dirtab_it *it; /* the frame's */
	int fd;
	int flags;
	struct file_achunk *cur; /* the cursor's: being given out */
	size_t i;
};

/* Read the next chunk of names from the table (the reading thread only). */
static struct file_achunk *file_ahead_read(struct file_ahead *a)
{
	struct file_achunk *ch = calloc(1, sizeof(*ch));
	if (!ch)
		return NULL;
	while (ch->n < FILE_AHEAD_CHUNK) {
		struct sm_dirtab_rec nm;
		enum sm_err err = sm_dirtab_it_peek(a->it, &nm, &ch->diag);
		if (err != SM_OK) {
			ch->err = err;
			break;
		}
		sm_dirtab_it_advance(a->it);
		if (nm.nlen > NAME_MAX)
			continue; /* no file system holds it: never read */
		struct file_aname *n = &ch->names[ch->n++];
		memcpy(n->key, nm.key, nm.klen);
		n->key[nm.klen] = '\0';
		n->klen = nm.klen;
		n->nlen = nm.nlen;
		n->dir = nm.dir;
	}
	return ch;
}

static void file_ahead_stat(struct file_ahead *a, struct file_achunk *ch)
{
	for (size_t i = 0; i < ch->n; i++) {
		struct file_aname *n = &ch->names[i];
		char name[NAME_MAX + 1];
		memcpy(name, n->key, n->nlen);
		name[n->nlen] = '\0';
		n->err = fstatat(a->fd, name, &n->st, a->flags) == 0 ? 0 : errno;
	}
}

static void *file_ahead_main(void *arg)
{
	struct file_ahead *a = arg;
	pthread_mutex_lock(&a->mu);
	while (!a->stop) {
		struct file_achunk *ch = a->head;
		while (ch && ch->state != ACHUNK_NEW)
			ch = ch->next;
		if (ch) {
			ch->state = ACHUNK_BUSY;
			pthread_mutex_unlock(&a->mu);
			file_ahead_stat(a, ch);
			pthread_mutex_lock(&a->mu);
			ch->state = ACHUNK_READY;
			pthread_cond_broadcast(&a->cv);
			continue;
		}
		if (!a->reading && !a->end && a->queued < FILE_AHEAD_QUEUE) {
			a->reading = true;
			pthread_mutex_unlock(&a->mu);
			ch = file_ahead_read(a);
			pthread_mutex_lock(&a->mu);
			a->reading = false;
			if (!ch) {
				a->nomem = a->end = true;
			} else {
				a->end = ch->err != SM_OK;
				ch->state = ACHUNK_NEW;
				if (a->tail)
					a->tail->next = ch;
				else
					a->head = ch;
				a->tail = ch;
				a->queued++;
			}
			pthread_cond_broadcast(&a->cv);
			continue;
		}
		pthread_cond_wait(&a->cv, &a->mu);
	}
	pthread_mutex_unlock(&a->mu);
	return NULL;
}

static void file_ahead_stop(struct file_ahead *a)
{
	if (!a)
		return;
	pthread_mutex_lock(&a->mu);
	a->stop = true;
	pthread_cond_broadcast(&a->cv);
	pthread_mutex_unlock(&a->mu);
	for (int i = 0; i < a->nth; i++)
		pthread_join(a->th[i], NULL);
	while (a->head) {
		struct file_achunk *n = a->head->next;
		free(a->head);
		a->head = n;
	}
	free(a->cur);
	pthread_cond_destroy(&a->cv);
	pthread_mutex_destroy(&a->mu);
	free(a);
}

/* Start stat-ahead on frame f (at its iterator's position), if the cursor
 * lists without an end and the directory is big. Best effort: without a
 * thread the cursor reads the frame itself. */
static void file_ahead_start(struct file_cursor *c, struct file_frame *f)
{
	if (c->last || sm_dirtab_count(f->dir->tab) < FILE_AHEAD_MIN)
		return;
	struct file_ahead *a = calloc(1, sizeof(*a));
	if (!a)
		return;
	a->it = &f->it;
	a->fd = f->fd;
	a->flags = c->fs->follow ? 0 : AT_SYMLINK_NOFOLLOW;
	pthread_mutex_init(&a->mu, NULL);
	pthread_cond_init(&a->cv, NULL);
	while (a->nth < FILE_AHEAD_THREADS &&
	       pthread_create(&a->th[a->nth], NULL, file_ahead_main, a) == 0)
		a->nth++;
	if (!a->nth) {
		pthread_cond_destroy(&a->cv);
		pthread_mutex_destroy(&a->mu);
		free(a);
		return;
	}
	f->ahead = a;
}

/* The frame's next name with its stat result: SM_OK, SM_EOF at the end of
 * the directory, or the table's error. */
static enum sm_err file_ahead_next(struct file_ahead *a, const struct file_aname **out,
                                   struct sm_diag *d)
{
	for (;;) {
		if (a->cur && a->i < a->cur->n) {
			*out = &a->cur->names[a->i++];
			return SM_OK;
		}
		if (a->cur && a->cur->err != SM_OK) {
			if (a->cur->err != SM_EOF)
				*d = a->cur->diag;
			return a->cur->err;
		}
		free(a->cur);
		a->cur = NULL;
		a->i = 0;
		pthread_mutex_lock(&a->mu);
		while (!(a->head && a->head->state == ACHUNK_READY) && !(a->end && !a->head))
			pthread_cond_wait(&a->cv, &a->mu);
		struct file_achunk *ch = NULL;
		if (a->head && a->head->state == ACHUNK_READY) {
			ch = a->head;
			a->head = ch->next;
			if (!a->head)
				a->tail = NULL;
			a->queued--;
			pthread_cond_broadcast(&a->cv);
		}
		pthread_mutex_unlock(&a->mu);
		if (!ch)
			return sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
		a->cur = ch;
	}
}

static enum sm_err file_list_begin(struct sm_store *st, const struct sm_range *r, void **out,
                                   struct sm_diag *d)
{
	struct file_store *fs = file_priv(st);
	struct file_cursor *c = calloc(1, sizeof(*c));
	if (!c)
		return sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
	c->fs = fs;
	enum sm_err err = SM_OK;
	if (r->last && !(c->last = strdup(r->last))) {
		err = sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
		goto fail;
	}
	if (sm_buf_append(&c->key, "", 0) != SM_OK) {
		err = sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
		goto fail;
	}
	int rootfd = file_rootfd(fs, false, NULL, d);
	if (rootfd < 0) {
		c->done = true; /* a DST that does not exist yet lists empty */
		*out = c;
		return SM_OK;
	}
	if (r->after && *r->after)
		file_seek_bound(c, r->after);
	err = file_push(c, rootfd, ".", d);
	c->seek_lo = NULL;
	if (err != SM_OK)
		goto fail;
	if (r->after && *r->after) {
		err = file_seek(c, r->after, d);
		if (err != SM_OK)
			goto fail;
	}
	*out = c;
	return SM_OK;
fail:
	for (int i = 0; i < c->depth; i++)
		file_frame_release(c->fs, &c->stack[i]);
	free(c->stack);
	free(c->last);
	free(c->dents);
	sm_buf_release(&c->key);
	free(c);
	return err;
}

static enum sm_err file_read_link(struct file_cursor *c, int dirfd, const char *name, uint64_t size,
                                  struct sm_diag *d)
{
	size_t cap = size > 0 && size < PATH_MAX ? (size_t)size + 1 : PATH_MAX;
	char *buf = realloc(c->linkbuf, cap);
	if (!buf)
		return sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
	c->linkbuf = buf;
	ssize_t n = readlinkat(dirfd, name, buf, cap - 1);
	if (n < 0)
		return sm_diag_errno(d, errno, "cannot read symlink '%s'", c->key.p);
	buf[n] = '\0';
	c->ent.link = buf;
	return SM_OK;
}

static enum sm_err file_list_next(void *cur, const struct sm_entry **out, struct sm_diag *d)
{
	struct file_cursor *c = cur;
	char name[NAME_MAX + 1];
	if (c->descend) {
		c->descend = false; /* whatever comes of it: never twice */
		struct file_frame *f = &c->stack[c->depth - 1];
		/* the directory just listed: c->key is its "name/" */
		size_t nlen = c->key.len - f->prefix_len - 1;
		memcpy(name, c->key.p + f->prefix_len, nlen);
		name[nlen] = '\0';
		enum sm_err err = file_push(c, f->fd, name, d);
		if (err != SM_OK)
			return err;
	}
	while (!c->done && c->depth > 0) {
		struct file_frame *f = &c->stack[c->depth - 1];
		struct sm_dirtab_rec nm;
		const struct file_aname *an = NULL;
		enum sm_err err;
		if (!f->ahead && !f->ahead_tried) {
			f->ahead_tried = true;
			file_ahead_start(c, f);
		}
		if (f->ahead) {
			err = file_ahead_next(f->ahead, &an, d);
			if (err == SM_OK)
				nm = (struct sm_dirtab_rec){ .key = an->key,
					                     .klen = an->klen,
					                     .nlen = an->nlen,
					                     .dir = an->dir };
		} else {
			err = sm_dirtab_it_peek(&f->it, &nm, d);
		}
		if (err == SM_EOF) {
			file_frame_release(c->fs, f);
			c->depth--;
			continue;
		}
		if (err != SM_OK) {
			c->done = true; /* a sort file that fails would fail again */
			return err;
		}
		if (!an) {
			sm_dirtab_it_advance(&f->it);
			if (nm.nlen > NAME_MAX)
				continue; /* no file system holds it: never read */
		}
		c->key.len = f->prefix_len;
		if (sm_buf_append(&c->key, nm.key, nm.klen) != SM_OK)
			return sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
		if (c->last && strcmp(c->key.p, c->last) > 0) {
			c->done = true;
			break;
		}
		memcpy(name, nm.key, nm.nlen);
		name[nm.nlen] = '\0';
		struct stat st;
		int fl = c->fs->follow ? 0 : AT_SYMLINK_NOFOLLOW;
		int e = 0;
		if (an) {
			st = an->st;
			e = an->err;
		} else if (fstatat(f->fd, name, &st, fl) != 0) {
			e = errno;
		}
		if (e) {
			struct stat lst;
			if (e == ENOENT && c->fs->follow &&
			    fstatat(f->fd, name, &lst, AT_SYMLINK_NOFOLLOW) == 0)
				return sm_diag_set(
				        d, SM_ENOENT, ENOENT,
				        "broken symlink '%s' (its target does not exist)",
				        c->key.p);
			if (e == ENOENT)
				continue; /* removed since it was listed */
			return sm_diag_errno(d, e, "cannot stat '%s'", c->key.p);
		}
		/* A name the listing cache shows as no directory that is one now:
		 * a symlink that a put of a key below it (another task's) replaced
		 * by a directory (file_at_walk). The symlink is gone; the
		 * directory's own key is a SRC directory's, which this task makes
		 * (mkdir finds it), as it would after a fresh read without it. */
		if (f->ent && !nm.dir && S_ISDIR(st.st_mode))
			continue;
		if (S_ISDIR(st.st_mode) != nm.dir)
			return sm_diag_set(d, SM_EAGAIN, 0,
			                   "'%s' changed between directory and file while listed",
			                   c->key.p);
		c->ent = (struct sm_entry){ .key = c->key.p };
		file_fill_entry(&c->ent, &st);
		if (S_ISLNK(st.st_mode) && c->fs->read_links) {
			err = file_read_link(c, f->fd, name, (uint64_t)st.st_size, d);
			if (err != SM_OK)
				return err;
		}
		/* nothing below a directory at the range's end is in the range */
		c->descend = nm.dir && !(c->last && strcmp(c->key.p, c->last) >= 0);
		*out = &c->ent;
		return SM_OK;
	}
	c->done = true;
	return SM_EOF;
}

static void file_list_skip(void *cur)
{
	struct file_cursor *c = cur;
	c->descend = false;
}

static void file_list_end(void *cur)
{
	struct file_cursor *c = cur;
	if (!c)
		return;
	for (int i = 0; i < c->depth; i++)
		file_frame_release(c->fs, &c->stack[i]);
	free(c->stack);
	free(c->last);
	free(c->linkbuf);
	free(c->dents);
	sm_buf_release(&c->key);
	free(c);
}

/* ---- stat ---- */

static enum sm_err file_stat(struct sm_store *st, const char *key, struct sm_entry *out,
                             struct sm_diag *d)
{
	struct file_store *fs = file_priv(st);
	struct file_at at;
	enum sm_err err = file_at_open(fs, key, false, NULL, &at, d);
	if (err != SM_OK)
		return err;
	struct stat sb;
	struct sm_entry e = { 0 };
	if (fstatat(at.dfd, at.base, &sb, fs->follow ? 0 : AT_SYMLINK_NOFOLLOW) != 0) {
		err = sm_diag_errno(d, errno, "cannot stat '%s'", key);
		goto out;
	}
	file_fill_entry(&e, &sb);
	if (S_ISLNK(sb.st_mode) && fs->read_links) {
		char buf[PATH_MAX];
		ssize_t n = readlinkat(at.dfd, at.base, buf, sizeof(buf) - 1);
		if (n < 0) {
			err = sm_diag_errno(d, errno, "cannot read symlink '%s'", key);
			goto out;
		}
		buf[n] = '\0';
		if (!(e.link = strdup(buf))) {
			err = sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
			goto out;
		}
	}
	*out = e;
out:
	file_at_close(&at);
	return err;
}

/* ---- reading ---- */

struct file_reader {
	struct sm_reader base;
	int fd;
	uint64_t pos;
	struct stat st; /* at open, for finish() */
	char key[];
};

static enum sm_err fr_read(struct sm_reader *r, void *buf, size_t cap, size_t *got,
                           struct sm_diag *d)
{
	struct file_reader *fr = (struct file_reader *)r;
	for (;;) {
		ssize_t n = pread(fr->fd, buf, cap, (off_t)fr->pos);
		if (n >= 0) {
			fr->pos += (uint64_t)n;
			*got = (size_t)n;
			return SM_OK;
		}
		if (errno != EINTR)
			return sm_diag_errno(d, errno, "cannot read '%s'", fr->key);
	}
}

static int fr_fd(struct sm_reader *r, uint64_t *off)
{
	struct file_reader *fr = (struct file_reader *)r;
	*off = fr->pos;
	return fr->fd;
}

static void fr_consumed(struct sm_reader *r, uint64_t n)
{
	((struct file_reader *)r)->pos += n;
}

static enum sm_err fr_finish(struct sm_reader *r, struct sm_diag *d)
{
	struct file_reader *fr = (struct file_reader *)r;
	struct stat now;
	if (fstat(fr->fd, &now) != 0)
		return sm_diag_errno(d, errno, "cannot stat '%s'", fr->key);
	/* ctime too: a write that kept the size and put the mtime back (cp -p,
	 * tar, rsync) still moves it */
	if (now.st_size != fr->st.st_size || now.st_mtim.tv_sec != fr->st.st_mtim.tv_sec ||
	    now.st_mtim.tv_nsec != fr->st.st_mtim.tv_nsec ||
	    now.st_ctim.tv_sec != fr->st.st_ctim.tv_sec ||
	    now.st_ctim.tv_nsec != fr->st.st_ctim.tv_nsec || fr->pos != (uint64_t)now.st_size)
		return sm_diag_set(d, SM_ECHANGED, 0, "'%s' changed while it was copied", fr->key);
	return SM_OK;
}

static void fr_close(struct sm_reader *r)
{
	struct file_reader *fr = (struct file_reader *)r;
	close(fr->fd);
	free(fr);
}

static const struct sm_reader_ops file_reader_ops = {
	.read = fr_read,
	.fd = fr_fd,
	.consumed = fr_consumed,
	.finish = fr_finish,
	.close = fr_close,
};

static enum sm_err file_open_read(struct sm_store *st, const char *key, uint64_t off,
                                  uint64_t size_hint, struct sm_reader **out, struct sm_diag *d)
{
	(void)size_hint; /* fstat() tells */
	struct file_store *fs = file_priv(st);
	struct file_at at;
	enum sm_err err = file_at_open(fs, key, false, NULL, &at, d);
	if (err != SM_OK)
		return err;
	int fd = openat(at.dfd, at.base, O_RDONLY | O_CLOEXEC | (fs->follow ? 0 : O_NOFOLLOW));
	int e = errno;
	file_at_close(&at);
	if (fd < 0)
		return sm_diag_errno(d, e, "cannot open '%s'", key);
	size_t klen = strlen(key);
	struct file_reader *fr = malloc(sizeof(*fr) + klen + 1);
	if (!fr) {
		close(fd);
		return sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
	}
	if (fstat(fd, &fr->st) != 0) {
		err = sm_diag_errno(d, errno, "cannot stat '%s'", key);
		close(fd);
		free(fr);
		return err;
	}
	if (S_ISDIR(fr->st.st_mode)) {
		close(fd);
		free(fr);
		return sm_diag_set(d, SM_EISDIR, EISDIR, "cannot read '%s': is a directory", key);
	}
	memcpy(fr->key, key, klen + 1);
	/* the mtime of what is read: a file changed since it was listed is
	 * committed under its mtime of now, not the listed one */
	fr->base = (struct sm_reader){ .ops = &file_reader_ops,
		                       .mtime_ns = sm_time_ns(fr->st.st_mtim.tv_sec,
		                                              fr->st.st_mtim.tv_nsec, NULL) };
	fr->base.size = (uint64_t)fr->st.st_size > off ? (uint64_t)fr->st.st_size - off : 0;
	fr->fd = fd;
	fr->pos = off;
	*out = &fr->base;
	return SM_OK;
}

/* ---- writing ---- */

static enum sm_err file_write_all(int fd, const char *buf, size_t n, const char *key,
                                  struct sm_diag *d)
{
	while (n > 0) {
		ssize_t w = write(fd, buf, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return sm_diag_errno(d, errno, "cannot write '%s'", key);
		}
		buf += w;
		n -= (size_t)w;
	}
	return SM_OK;
}

/* Copy all of `r` into `fd`; *total gets the byte count. */
static enum sm_err file_copy_data(int fd, struct sm_reader *r, const char *key, uint64_t *total,
                                  struct sm_diag *d)
{
	uint64_t off = 0;
	int in = sm_reader_fd(r, &off);
	*total = 0;
	if (in >= 0) {
		loff_t ioff = (loff_t)off;
		for (;;) {
			enum sm_err serr = sm_reader_check_stop(r, key, d);
			if (serr != SM_OK)
				return serr;
			/* Steps of a few MiB: a stop is heard within a step,
			 * and progress moves during a large file (its bytes
			 * count per step, in consumed()) */
			ssize_t n = copy_file_range(in, &ioff, fd, NULL, FILE_COPY_STEP, 0);
			if (n > 0) {
				*total += (uint64_t)n;
				sm_reader_consumed(r, (uint64_t)n);
				continue;
			}
			if (n == 0)
				return SM_OK;
			if (errno == EINTR)
				continue;
			if (*total == 0 && (errno == EXDEV || errno == EINVAL || errno == ENOSYS ||
			                    errno == EOPNOTSUPP))
				break; /* not here: plain read/write below */
			return sm_diag_errno(d, errno, "cannot copy '%s'", key);
		}
	}
	/* on the stack: a heap buffer this size is an mmap and fresh page
	 * faults for every file */
	char buf[FILE_COPY_BUF];
	enum sm_err err = SM_OK;
	for (;;) {
		size_t got = 0;
		err = sm_reader_read(r, buf, FILE_COPY_BUF, &got, d);
		if (err != SM_OK || got == 0)
			break;
		err = file_write_all(fd, buf, got, key, d);
		if (err != SM_OK)
			break;
		*total += got;
	}
	return err;
}

/* What a non-regular file is, for messages. */
static const char *file_type_name(mode_t m)
{
	if (S_ISLNK(m))
		return "a symlink";
	if (S_ISDIR(m))
		return "a directory";
	if (S_ISFIFO(m))
		return "a FIFO";
	if (S_ISSOCK(m))
		return "a socket";
	if (S_ISCHR(m))
		return "a character device";
	if (S_ISBLK(m))
		return "a block device";
	return "not a regular file";
}

static enum sm_err file_not_regular(mode_t m, const char *key, struct sm_diag *d)
{
	return sm_diag_set(d, S_ISDIR(m) ? SM_EISDIR : SM_EINVAL, 0,
	                   "cannot write '%s' in place: %s on DST is not a regular file", key,
	                   file_type_name(m));
}

/*
 * Open base (in dfd) to be written in place (--inplace): only a regular
 * file, or a new one. Whatever else is there (a symlink, a FIFO, a device)
 * is refused before it is opened, so a device's open has no effect and a
 * FIFO cannot block the run; O_NOFOLLOW | O_NONBLOCK cover a swap between
 * that look and the open (a symlink fails with ELOOP, a FIFO without a
 * reader with ENXIO, one with a reader does not block), and fstat() on the
 * descriptor has the last word: nothing but a regular file is written.
 * *out is written only on success.
 */
static enum sm_err file_open_inplace(int dfd, const char *base, const char *key, int *out,
                                     struct sm_diag *d)
{
	struct stat sb;
	if (fstatat(dfd, base, &sb, AT_SYMLINK_NOFOLLOW) == 0 && !S_ISREG(sb.st_mode))
		return file_not_regular(sb.st_mode, key, d);
	int fd = openat(dfd, base, O_WRONLY | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0600);
	if (fd < 0) {
		int e = errno;
		if ((e == ELOOP || e == ENXIO) &&
		    fstatat(dfd, base, &sb, AT_SYMLINK_NOFOLLOW) == 0 && !S_ISREG(sb.st_mode))
			return file_not_regular(sb.st_mode, key, d);
		return sm_diag_errno(d, e, "cannot write '%s'", key);
	}
	enum sm_err err = SM_OK;
	if (fstat(fd, &sb) != 0)
		err = sm_diag_errno(d, errno, "cannot stat '%s'", key);
	else if (!S_ISREG(sb.st_mode))
		err = file_not_regular(sb.st_mode, key, d);
	if (err != SM_OK) {
		close(fd);
		return err;
	}
	*out = fd;
	return SM_OK;
}

/*
 * chmod base (in dfd) without following a symlink there: a directory or
 * file of the listing replaced by a symlink meanwhile must not have the
 * link's target chmod'ed. fchmodat() with AT_SYMLINK_NOFOLLOW does that
 * without a race (glibc opens base O_PATH | O_NOFOLLOW and chmods the
 * descriptor through /proc/self/fd; fchmodat2 where the kernel and libc
 * have it); it fails with EOPNOTSUPP for a symlink (whose mode means
 * nothing on Linux: nothing to do) and where /proc is missing: then base
 * is opened O_NOFOLLOW and fchmod()ed, which is as safe, but needs read
 * permission.
 */
static enum sm_err file_chmod_at(int dfd, const char *base, mode_t mode, const char *key,
                                 struct sm_diag *d)
{
	if (fchmodat(dfd, base, mode, AT_SYMLINK_NOFOLLOW) == 0)
		return SM_OK;
	if (errno != EOPNOTSUPP)
		return sm_diag_errno(d, errno, "cannot chmod '%s'", key);
	int fd = openat(dfd, base, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0 && errno == ELOOP)
		return SM_OK; /* a symlink */
	if (fd < 0)
		return sm_diag_errno(d, errno, "cannot chmod '%s'", key);
	struct stat sb;
	enum sm_err err = SM_OK;
	if (fstat(fd, &sb) != 0)
		err = sm_diag_errno(d, errno, "cannot chmod '%s'", key);
	else if (!S_ISREG(sb.st_mode) && !S_ISDIR(sb.st_mode))
		err = sm_diag_set(d, SM_EINVAL, 0, "cannot chmod '%s': %s on DST", key,
		                  file_type_name(sb.st_mode));
	else if (fchmod(fd, mode) != 0)
		err = sm_diag_errno(d, errno, "cannot chmod '%s'", key);
	close(fd);
	return err;
}

static enum sm_err file_apply_attrs(struct file_store *fs, int fd, const struct sm_put *p,
                                    const char *key, struct sm_diag *d)
{
	mode_t mode = (p->flags & SM_PUT_MODE) ? (p->mode & 07777) : (p->mode & 0777 & ~fs->umask);
	/* chown first: it clears setuid/setgid, which chmod then sets */
	if ((p->flags & SM_PUT_OWNER) && fchown(fd, p->uid, p->gid) != 0 && errno != EPERM)
		return sm_diag_errno(d, errno, "cannot chown '%s'", key);
	if (fchmod(fd, mode) != 0)
		return sm_diag_errno(d, errno, "cannot chmod '%s'", key);
	if (p->flags & SM_PUT_MTIME) {
		struct timespec ts[2] = { { .tv_nsec = UTIME_OMIT }, file_timespec(p->mtime_ns) };
		if (futimens(fd, ts) != 0)
			return sm_diag_errno(d, errno, "cannot set mtime of '%s'", key);
	}
	return SM_OK;
}

/* fsync the directory `dfd` (an O_PATH descriptor) holds: a rename or a new
 * name in it reaches the disk. */
static enum sm_err file_fsync_dir(int dfd, const char *key, struct sm_diag *d)
{
	int fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || fsync(fd) != 0) {
		enum sm_err err = sm_diag_errno(d, errno, "cannot sync the directory of '%s'", key);
		if (fd >= 0)
			close(fd);
		return err;
	}
	close(fd);
	return SM_OK;
}

static enum sm_err file_put(struct sm_store *st, const char *key, struct sm_reader *r,
                            const struct sm_put *p, struct sm_diag *d)
{
	struct file_store *fs = file_priv(st);
	struct file_at at;
	enum sm_err err = file_at_open(fs, key, true, p, &at, d);
	if (err != SM_OK)
		return err;
	bool inplace = p->flags & SM_PUT_INPLACE;
	char tmp[NAME_MAX + 1];
	int fd = -1;
	if (inplace) {
		err = file_open_inplace(at.dfd, at.base, key, &fd, d);
		if (err != SM_OK)
			goto out;
	} else {
		for (int tries = 0; tries < 8; tries++) {
			sm_store_tmp_name(at.base, tmp, sizeof(tmp));
			fd = openat(at.dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
			if (fd >= 0 || errno != EEXIST)
				break;
		}
	}
	if (fd < 0) {
		err = sm_diag_errno(d, errno, "cannot write '%s'", key);
		goto out;
	}
	uint64_t total = 0;
	err = file_copy_data(fd, r, key, &total, d);
	if (err == SM_OK && inplace && ftruncate(fd, (off_t)total) != 0)
		err = sm_diag_errno(d, errno, "cannot truncate '%s'", key);
	if (err == SM_OK)
		err = file_apply_attrs(fs, fd, p, key, d);
	if (err == SM_OK && (p->flags & SM_PUT_CHECK))
		err = sm_reader_finish(r, d);
	if (err == SM_OK && (p->flags & SM_PUT_FSYNC) && fsync(fd) != 0)
		err = sm_diag_errno(d, errno, "cannot sync '%s' to disk", key);
	if (close(fd) != 0 && err == SM_OK)
		err = sm_diag_errno(d, errno, "cannot write '%s'", key);
	if (err == SM_OK && !inplace && renameat(at.dfd, tmp, at.dfd, at.base) != 0) {
		if (errno == EISDIR || errno == ENOTEMPTY || errno == EEXIST)
			err = sm_diag_set(d, SM_EISDIR, errno,
			                  "cannot replace '%s': a directory is in the way on DST",
			                  key);
		else
			err = sm_diag_errno(d, errno, "cannot rename into '%s'", key);
	}
	if (err == SM_OK && (p->flags & SM_PUT_FSYNC))
		err = file_fsync_dir(at.dfd, key, d); /* the rename itself */
	if (err != SM_OK && !inplace)
		unlinkat(at.dfd, tmp, 0);
out:
	file_at_close(&at);
	return err;
}

static enum sm_err file_del(struct sm_store *st, const char *key, struct sm_diag *d)
{
	struct file_store *fs = file_priv(st);
	struct file_at at;
	enum sm_err err = file_at_open(fs, key, false, NULL, &at, d);
	if (err == SM_ENOENT || err == SM_ENOTDIR)
		return SM_OK; /* the root or a parent is gone (or a file now): so is the key */
	if (err != SM_OK)
		return err;
	int fl = sm_key_is_dir(key) ? AT_REMOVEDIR : 0;
	if (unlinkat(at.dfd, at.base, fl) != 0 && errno != ENOENT)
		err = sm_diag_errno(d, errno, "cannot delete '%s'", key);
	file_at_close(&at);
	return err;
}

/*
 * A directory gets SRC's mode: exact with SM_PUT_MODE, else & ~umask (as a
 * file does). With p->made, the caller sets its attributes again once its
 * children are in: a mode that would keep them out (0555 as non-root) is
 * opened for the owner until then, and a directory there already (made by
 * a write below it in this run) is reported made too and left as it is.
 */
static enum sm_err file_mkdir(struct sm_store *st, const char *key, const struct sm_put *p,
                              struct sm_diag *d)
{
	struct file_store *fs = file_priv(st);
	struct file_at at;
	enum sm_err err = file_at_open(fs, key, true, p, &at, d);
	if (err != SM_OK)
		return err;
	if (strcmp(at.base, ".") == 0)
		goto out; /* the root itself */
	mode_t mode = (p->flags & SM_PUT_MODE) ? (p->mode & 07777) : (p->mode & 0777 & ~fs->umask);
	if (p->made && geteuid() != 0)
		mode |= 0700;
	bool made = mkdirat(at.dfd, at.base, 0700) == 0;
	if (!made) {
		if (errno != EEXIST) {
			err = sm_diag_errno(d, errno, "cannot create directory '%s'", key);
			goto out;
		}
		struct stat sb;
		if (fstatat(at.dfd, at.base, &sb, AT_SYMLINK_NOFOLLOW) == 0 &&
		    S_ISLNK(sb.st_mode)) {
			/* a symlink where SRC has a directory: replace it, as rsync does */
			sm_log(SM_LOG_INFO, "replacing symlink '%s' on DST by a directory", key);
			if ((unlinkat(at.dfd, at.base, 0) != 0 && errno != ENOENT) ||
			    (mkdirat(at.dfd, at.base, 0700) != 0 && errno != EEXIST)) {
				err = sm_diag_errno(d, errno, "cannot create directory '%s'", key);
				goto out;
			}
			made = true;
		} else if (!S_ISDIR(sb.st_mode)) {
			err = sm_diag_set(
			        d, SM_ENOTDIR, ENOTDIR,
			        "cannot create directory '%s': a file is in the way on DST", key);
			goto out;
		} else if (p->made) {
			file_made(p, key);
			goto out;
		}
	}
	if ((p->flags & SM_PUT_OWNER) &&
	    fchownat(at.dfd, at.base, p->uid, p->gid, AT_SYMLINK_NOFOLLOW) != 0 && errno != EPERM) {
		err = sm_diag_errno(d, errno, "cannot chown '%s'", key);
		goto out;
	}
	/* made private (0700): no one saw it with a wider mode */
	if (made || (p->flags & SM_PUT_MODE))
		err = file_chmod_at(at.dfd, at.base, mode, key, d);
	if (err == SM_OK && made)
		file_made(p, key);
out:
	file_at_close(&at);
	return err;
}

static enum sm_err file_symlink(struct sm_store *st, const char *key, const char *target,
                                const struct sm_put *p, struct sm_diag *d)
{
	struct file_store *fs = file_priv(st);
	struct file_at at;
	enum sm_err err = file_at_open(fs, key, true, p, &at, d);
	if (err != SM_OK)
		return err;
	char tmp[NAME_MAX + 1];
	sm_store_tmp_name(at.base, tmp, sizeof(tmp));
	if (symlinkat(target, at.dfd, tmp) != 0) {
		err = sm_diag_errno(d, errno, "cannot create symlink '%s'", key);
		goto out;
	}
	if ((p->flags & SM_PUT_OWNER) &&
	    fchownat(at.dfd, tmp, p->uid, p->gid, AT_SYMLINK_NOFOLLOW) != 0 && errno != EPERM)
		err = sm_diag_errno(d, errno, "cannot chown '%s'", key);
	if (err == SM_OK && (p->flags & SM_PUT_MTIME)) {
		struct timespec ts[2] = { { .tv_nsec = UTIME_OMIT }, file_timespec(p->mtime_ns) };
		if (utimensat(at.dfd, tmp, ts, AT_SYMLINK_NOFOLLOW) != 0)
			err = sm_diag_errno(d, errno, "cannot set mtime of '%s'", key);
	}
	if (err == SM_OK && renameat(at.dfd, tmp, at.dfd, at.base) != 0)
		err = sm_diag_errno(d, errno, "cannot rename into '%s'", key);
	if (err != SM_OK)
		unlinkat(at.dfd, tmp, 0);
out:
	file_at_close(&at);
	return err;
}

static enum sm_err file_setattr(struct sm_store *st, const char *key, const struct sm_put *p,
                                struct sm_diag *d)
{
	struct file_store *fs = file_priv(st);
	struct file_at at;
	enum sm_err err = file_at_open(fs, key, false, NULL, &at, d);
	if (err != SM_OK)
		return err;
	struct stat sb;
	if (fstatat(at.dfd, at.base, &sb, AT_SYMLINK_NOFOLLOW) != 0) {
		err = sm_diag_errno(d, errno, "cannot stat '%s'", key);
		goto out;
	}
	bool link = S_ISLNK(sb.st_mode);
	if ((p->flags & SM_PUT_OWNER) &&
	    fchownat(at.dfd, at.base, p->uid, p->gid, AT_SYMLINK_NOFOLLOW) != 0 && errno != EPERM) {
		err = sm_diag_errno(d, errno, "cannot chown '%s'", key);
		goto out;
	}
	if ((p->flags & SM_PUT_MODE) && !link) {
		err = file_chmod_at(at.dfd, at.base, p->mode & 07777, key, d);
		if (err != SM_OK)
			goto out;
	}
	if (p->flags & SM_PUT_MTIME) {
		struct timespec ts[2] = { { .tv_nsec = UTIME_OMIT }, file_timespec(p->mtime_ns) };
		if (utimensat(at.dfd, at.base, ts, AT_SYMLINK_NOFOLLOW) != 0)
			err = sm_diag_errno(d, errno, "cannot set mtime of '%s'", key);
	}
out:
	file_at_close(&at);
	return err;
}

/* One syncfs(2) of the file system holding the root: every file, rename and
 * directory written there so far reaches the disk (one call, however many
 * files; a DST that spans mount points needs --fsync). */
static enum sm_err file_sync(struct sm_store *st, struct sm_diag *d)
{
	int fd = atomic_load(&file_priv(st)->rootfd);
	int own = -1;
	if (fd < 0) {
		/* Nothing written through this store, but maybe through another
		 * of the same root (a run's workers open their own): the file
		 * system is synced all the same. No root: nothing was written. */
		own = open(file_priv(st)->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (own < 0 && (errno == ENOENT || errno == ENOTDIR))
			return SM_OK;
		if (own < 0)
			return sm_diag_errno(d, errno, "cannot sync '%s' to disk",
			                     file_priv(st)->root);
		fd = own;
	}
	enum sm_err err = SM_OK;
	if (syncfs(fd) != 0)
		err = sm_diag_errno(d, errno, "cannot sync '%s' to disk", file_priv(st)->root);
	if (own >= 0)
		close(own);
	return err;
}

const struct sm_store_ops sm_file_ops = {
	.scheme = "file",
	.caps = SM_CAP_DIRS | SM_CAP_LINKS | SM_CAP_MODE | SM_CAP_LOCAL,
	.priv_size = sizeof(struct file_store),
	.open = file_open,
	.close = file_close,
	.list_begin = file_list_begin,
	.list_next = file_list_next,
	.list_end = file_list_end,
	.list_skip = file_list_skip,
	.stat = file_stat,
	.open_read = file_open_read,
	.put = file_put,
	.del = file_del,
	.mkdir = file_mkdir,
	.symlink = file_symlink,
	.setattr = file_setattr,
	.sync = file_sync,
	.writable = file_writable,
};
