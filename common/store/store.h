/*
 * The storage interface. Every backend (file, later s3, sftp, dav) provides one
 * `const struct sm_store_ops`; callers use only the sm_store_*() wrappers below,
 * which check keys and listing order, count calls and inject faults in one place.
 *
 * Keys are '/'-separated paths relative to the store's root; directory keys end
 * in '/'. Listings come in one global byte-wise order, in which a directory's
 * names are sorted with '/' appended to subdirectory names.
 */
#ifndef SM_STORE_H
#define SM_STORE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "../err.h"
#include "../url.h"

struct sm_entry {
	char *key;        /* owned by whoever owns the entry */
	uint64_t size;    /* bytes; for a symlink, the target's length */
	int64_t mtime_ns; /* nanoseconds since the epoch */
	uint32_t mode;    /* S_IFMT bits + permission bits */
	uint32_t uid;
	uint32_t gid;
	char *link;    /* symlink target when the store reads links, else NULL */
	bool excluded; /* planner: on SRC but deselected (size, mtime) */
	bool debris;   /* a temp file an interrupted run left (sm_store_is_debris_name) */
	/* mtime_ns is only an upper bound: a listing that carries the upload
	 * time (S3 LastModified), where stat() knows the original mtime
	 * (x-amz-meta-mtime), which is never later. */
	bool mtime_bound;
	/* stat() of an object store: the object's own upload time (S3
	 * Last-Modified, whole seconds), which a listing's bound names; else 0. */
	int64_t upload_ns;
	/* mtime_ns is a limit of the store's times, where a time it could not
	 * hold was kept as the nearest it can: 1, the latest (the real time may
	 * be later: SFTP's 2106), -1, the earliest (may be earlier: 1970);
	 * else 0. */
	int8_t mtime_clamp;
};

bool sm_entry_is_dir(const struct sm_entry *e);
bool sm_entry_is_link(const struct sm_entry *e);
/* Deep copy; out-parameter written only on success. */
enum sm_err sm_entry_copy(struct sm_entry *dst, const struct sm_entry *src);
void sm_entry_release(struct sm_entry *e);

/* A listing range (after, last]: NULL or "" `after` = from the start, NULL
 * `last` = to the end. */
struct sm_range {
	const char *after;
	const char *last;
};
bool sm_range_contains(const struct sm_range *r, const char *key);

struct sm_store_cfg {
	bool follow_links; /* listing and stat see through symlinks (SRC without --links) */
	bool read_links;   /* fill sm_entry.link for symlinks */
	bool must_exist;   /* the root must exist (SRC); else it is created on first write */
	bool no_https;     /* S3/WebDAV: plain HTTP (--no-https) */
	const char *storage_class;    /* S3: x-amz-storage-class of new objects, or NULL */
	struct sm_pool *pool;         /* the run's transfer pool (borrowed, outlives the
	                            * store), or NULL: large transfers in one piece */
	const struct sm_ssh_ops *ssh; /* SFTP: the SSH layer (deploy/ssh.c), or NULL */
	/* File-like stores: a directory's sorted names may be served from a
	 * listing read earlier through this store, kept in a cache of about
	 * this many bytes (0 = every listing reads afresh). Such a listing does
	 * not show what was written since; only for callers for which that is
	 * exact: a run's DST, where a key in a task's range is written only
	 * by that task after it listed the range (worker/task.c). */
	size_t list_cache;
	/* The URL may name one object rather than a directory (it has no
	 * trailing '/'): see enum sm_store_one. */
	int one;
	/* "SRC" or "DST", or NULL: every failure of the sm_store_*() and
	 * sm_reader_*() wrappers says which side it was ("DST: ..."). */
	const char *label;
};

/*
 * One-object runs (SPEC.md §1: a SRC without a trailing '/' that names one
 * object syncs that object). With SM_ONE_SRC, a store whose URL names one
 * existing object that is not a directory opens with that object's parent as
 * its root and sm_store.one set to the object's name; a URL naming nothing at
 * all is SM_ENOENT. With SM_ONE_DST (the DST of a one-object run), a URL
 * that is not an existing directory opens the same way: its last name is the
 * name to write. Otherwise the store opens as a directory, sm_store.one NULL.
 */
enum sm_store_one { SM_ONE_NO = 0, SM_ONE_SRC, SM_ONE_DST };

/* A byte source for put(): a store's reader or any other producer. */
struct sm_reader;
struct sm_meta; /* common/store/meta.h */
struct sm_reader_ops {
	/* Read up to `cap` bytes; *got == 0 means end of data. */
	enum sm_err (*read)(struct sm_reader *r, void *buf, size_t cap, size_t *got,
	                    struct sm_diag *d);
	/* Optional: a local file descriptor and the offset the data starts at, so a
	 * local destination can use copy_file_range(). After using it the caller
	 * calls consumed() with the byte count. */
	int (*fd)(struct sm_reader *r, uint64_t *off);
	void (*consumed)(struct sm_reader *r, uint64_t n);
	/* Optional: called after the last byte and before the destination commits;
	 * fails with SM_ECHANGED when the source changed meanwhile. */
	enum sm_err (*finish)(struct sm_reader *r, struct sm_diag *d);
	void (*close)(struct sm_reader *r);
};
struct sm_reader {
	const struct sm_reader_ops *ops;
	uint64_t size;    /* expected total bytes, or UINT64_MAX when unknown */
	int64_t mtime_ns; /* the source's own mtime when has_mtime: the reader knows it
	                   * better than the listing (S3's x-amz-meta-mtime) */
	bool has_mtime;
	/* Set by whoever runs the transfer (may be NULL): when it turns true the
	 * transfer stops between chunks with SM_ECANCELED, and the destination
	 * removes what it began (temp file, multipart upload). */
	const atomic_bool *stop;
	/* Set by sm_store_open_read(): the store's cfg.label, put before the
	 * reader's error messages, and the key it reads (a writer names the
	 * source by these when the source misbehaves). Readers that wrap
	 * another copy them. */
	const char *label;
	const char *name;
	/* The reader holds bytes of the transfer pool's budget (S3's ranges):
	 * its writer must not wait for budget without end (common/pool.h).
	 * Readers that wrap another copy it. */
	bool pool_held;
	/* The source object's metadata (S3: Content-Type & co. and user
	 * metadata, common/store/meta.h), owned by the reader until close,
	 * or NULL where the source has none (a file): an object store
	 * writing the bytes sets the same (issue 21). Readers that wrap
	 * another copy it. */
	const struct sm_meta *meta;
};
/* SM_ECANCELED (filled in) once r->stop is set, else SM_OK. */
enum sm_err sm_reader_check_stop(const struct sm_reader *r, const char *key, struct sm_diag *d);
enum sm_err sm_reader_read(struct sm_reader *r, void *buf, size_t cap, size_t *got,
                           struct sm_diag *d);
/* Read exactly cap bytes unless the data ends first (*got < cap then). */
enum sm_err sm_reader_read_full(struct sm_reader *r, void *buf, size_t cap, size_t *got,
                                struct sm_diag *d);
int sm_reader_fd(struct sm_reader *r, uint64_t *off);
void sm_reader_consumed(struct sm_reader *r, uint64_t n);
enum sm_err sm_reader_finish(struct sm_reader *r, struct sm_diag *d);
void sm_reader_close(struct sm_reader *r); /* accepts NULL */

/* How put/mkdir/symlink/setattr set attributes. */
enum {
	SM_PUT_MODE = 1u << 0,    /* exact permission bits (else mode & ~umask on create) */
	SM_PUT_OWNER = 1u << 1,   /* uid/gid, where permitted */
	SM_PUT_MTIME = 1u << 2,   /* set mtime_ns */
	SM_PUT_INPLACE = 1u << 3, /* write the destination in place */
	SM_PUT_CHECK = 1u << 4,   /* call the reader's finish() before committing */
	SM_PUT_FSYNC = 1u << 5,   /* --fsync: data on disk before the rename, the rename after */
};
struct sm_put {
	uint32_t mode;
	uint32_t uid;
	uint32_t gid;
	int64_t mtime_ns;
	unsigned flags;
	/* copy() only, may be NULL: advanced with atomic adds by the bytes
	 * copied so far, where the copy goes in parts (for progress) */
	uint64_t *progress;
	/* put, mkdir, symlink, may be NULL: called with the key of each
	 * directory the call made ("a/b/", "" for the root), which a store
	 * that can makes private (0700) when it is not the key written:
	 * whoever asked sets its attributes once its children are in. */
	void (*made)(void *arg, const char *dkey);
	void *made_arg;
	/* copy() only, may be NULL: when it turns true, a copy in parts stops
	 * between parts with SM_ECANCELED (and aborts what it began) */
	const atomic_bool *stop;
};

/* Capability bits: which optional slots the backend fills. */
enum {
	SM_CAP_DIRS = 1u << 0,  /* real directories (mkdir) */
	SM_CAP_LINKS = 1u << 1, /* symlinks */
	SM_CAP_MODE = 1u << 2,  /* permission bits and owners */
	SM_CAP_LOCAL = 1u << 3, /* a local file system path */
};

struct sm_store;
struct sm_cursor;
struct sm_ssh_ops;

/* The result of one key of sm_store_del_many(); `d` is set when err != SM_OK. */
typedef void (*sm_del_done_fn)(void *arg, size_t i, enum sm_err err, const struct sm_diag *d);
#define SM_DEL_BATCH 1000 /* keys per sm_store_del_many() call at most */

/*
 * Backend contract. The framework allocates `priv_size` zeroed bytes of private
 * state before open() and frees them after close(); close() must be safe after
 * a failed open(). Every slot fills `d` on failure. Slots may be called from
 * many threads at once.
 */
struct sm_store_ops {
	const char *scheme;
	unsigned caps;
	size_t priv_size;
	enum sm_err (*open)(struct sm_store *st, const struct sm_url *u,
	                    const struct sm_store_cfg *cfg, struct sm_diag *d);
	void (*close)(struct sm_store *st);
	/* Start a sorted listing of the keys in `r` (copied by the backend). */
	enum sm_err (*list_begin)(struct sm_store *st, const struct sm_range *r, void **cur,
	                          struct sm_diag *d);
	/* Next entry, borrowed until the next call; SM_EOF at the end. After
	 * an error the cursor has either moved past what failed (one unreadable
	 * directory) or ended (the next call says SM_EOF): it never fails again
	 * in the same place (a page that keeps failing would loop forever). */
	enum sm_err (*list_next)(void *cur, const struct sm_entry **e, struct sm_diag *d);
	void (*list_end)(void *cur);
	/* Optional: do not descend into the directory entry next() just
	 * returned; the listing goes on after its subtree. */
	void (*list_skip)(void *cur);
	/* Attributes of one key; out->key is left NULL. SM_ENOENT if absent. */
	enum sm_err (*stat)(struct sm_store *st, const char *key, struct sm_entry *out,
	                    struct sm_diag *d);
	/* A reader of the key's bytes from `off` on. `size_hint` is the size a
	 * listing gave, or UINT64_MAX; a store may trust it to fetch a small
	 * key in one request, and must still notice when it is wrong. */
	enum sm_err (*open_read)(struct sm_store *st, const char *key, uint64_t off,
	                         uint64_t size_hint, struct sm_reader **out, struct sm_diag *d);
	/* Store all bytes of `r` under `key`; the key appears whole or not at all
	 * (unless SM_PUT_INPLACE). Missing parents are created. Borrows `r`. */
	enum sm_err (*put)(struct sm_store *st, const char *key, struct sm_reader *r,
	                   const struct sm_put *p, struct sm_diag *d);
	/* Delete a key; a directory key only when empty. Absent key = success. */
	enum sm_err (*del)(struct sm_store *st, const char *key, struct sm_diag *d);
	/* Optional: delete n file keys (no directory keys) in one request.
	 * done(arg, i, err, d) is called once for each keys[i] with its own
	 * result (absent = SM_OK). A failure of the request as a whole is
	 * returned instead (then done is never called). */
	enum sm_err (*del_many)(struct sm_store *st, const char *const *keys, size_t n,
	                        sm_del_done_fn done, void *arg, struct sm_diag *d);
	/* Optional slots (NULL = not supported). */
	enum sm_err (*mkdir)(struct sm_store *st, const char *key, const struct sm_put *p,
	                     struct sm_diag *d);
	enum sm_err (*symlink)(struct sm_store *st, const char *key, const char *target,
	                       const struct sm_put *p, struct sm_diag *d);
	enum sm_err (*setattr)(struct sm_store *st, const char *key, const struct sm_put *p,
	                       struct sm_diag *d);
	/* Optional: make `key` a copy of `src_key` (attributes `se`) of `src`, a
	 * store of the same backend, without the bytes passing through us (S3
	 * CopyObject). The copy keeps the source's metadata (meta.h) and its
	 * own mtime (S3: x-amz-meta-mtime, else its upload time). SM_ENOTSUP
	 * when `src` cannot be reached that way. */
	enum sm_err (*copy)(struct sm_store *st, const char *key, struct sm_store *src,
	                    const char *src_key, const struct sm_entry *se, const struct sm_put *p,
	                    struct sm_diag *d);
	/* Optional: make everything written so far durable (a local file system:
	 * one syncfs). NULL where a successful write is durable already (S3). */
	enum sm_err (*sync)(struct sm_store *st, struct sm_diag *d);
	/* Optional: what interrupted runs left that no listing shows (S3:
	 * multipart uploads under the prefix begun before `before_ns`): counted
	 * into *found, and removed when `remove`. */
	enum sm_err (*sweep)(struct sm_store *st, int64_t before_ns, bool remove, uint64_t *found,
	                     struct sm_diag *d);
	/* Optional: SM_OK when a run can write below the root (creating the
	 * root if missing); else one message naming the root and the cause.
	 * Leaves nothing behind (a probe file, if any, is a temp name). */
	enum sm_err (*writable)(struct sm_store *st, struct sm_diag *d);
};

struct sm_store {
	const struct sm_store_ops *ops;
	void *priv;
	char *display; /* printable URL, secrets masked */
	struct sm_store_cfg cfg;
	struct sm_fault *fault; /* NULL unless tests injected faults */
	/* Where the root is, for telling whether two stores overlap: `space`
	 * names one namespace of paths ("file", "s3://ENDPOINT/BUCKET",
	 * "sftp://USER@HOST:PORT"), `where` the root's absolute path in it,
	 * ending in '/'. Set by open() (sm_store_set_where); NULL when unknown. */
	char *space;
	char *where;
	char *one; /* see enum sm_store_one; owned */
};

/* For backends' open(): record the root's place (copies both strings). */
enum sm_err sm_store_set_where(struct sm_store *st, const char *space, const char *where,
                               struct sm_diag *d);
/* For backends' open() under cfg.one: split `path` ("a/b/c", trailing '/'
 * ignored) into its parent ("a/b", "" for none) and last name, both
 * malloc'd; SM_EINVAL when there is no name. */
enum sm_err sm_store_split_last(const char *path, char **parent, char **name, struct sm_diag *d);
/* 0: disjoint; 1: b's root is inside a's (or the same); 2: a's is inside b's.
 * Stores of different spaces, or of unknown place, are disjoint. */
int sm_store_overlap(const struct sm_store *a, const struct sm_store *b);
/* The same for two local directory paths, by device and inode of each
 * ancestor (a bind mount, a second name): 1 when `b` is inside `a` or the
 * same, 2 when `a` is inside `b`, else 0. A path that does not exist yet
 * counts as its nearest existing ancestor's child. */
int sm_path_overlap(const char *a, const char *b);
/* See the `writable` slot; SM_OK where the backend has no such check. */
enum sm_err sm_store_writable(struct sm_store *st, struct sm_diag *d);

/* A key `st` may write. A file-like store (SM_CAP_DIRS): not empty, not
 * absolute, no "." or ".." or empty component (a trailing '/' of a
 * directory key is fine), so no write leaves its root. An object store:
 * any non-empty key, verbatim. */
enum sm_err sm_store_key_check(const struct sm_store *st, const char *key, struct sm_diag *d);

/* Make every write so far durable (see the `sync` slot); SM_OK where the
 * backend needs nothing. */
enum sm_err sm_store_sync(struct sm_store *st, struct sm_diag *d);
/* See the `sweep` slot; *found = 0 where the backend has nothing to sweep. */
enum sm_err sm_store_sweep(struct sm_store *st, int64_t before_ns, bool remove, uint64_t *found,
                           struct sm_diag *d);

/* Temporary names of files being written: ".~sm" + 8 hex digits (the
 * run's tag, 4 random) + 8 hex digits of check (FNV-1a 32 of
 * "syncmgr-tmp:" and the first 8) + "." + the name (its first 200 bytes,
 * which a store may cut). Only a name with the right check is one: a user's
 * file named like it (".~sm0badcafe.notes") is a key like any other.
 * Listings of file-like stores skip this run's; those of other runs are
 * debris. */
#define SM_STORE_TMP_MIN 21 /* ".~sm" + 16 hex digits + "." */
void sm_store_tmp_name(const char *base, char *out, size_t n);
bool sm_store_is_tmp_name(const char *name, size_t len);
/* A temp name this process did not make: left by an interrupted run. Listings
 * skip this run's temp files and pass these on, marked `debris`. */
bool sm_store_is_debris_name(const char *name, size_t len);

/* Open the store for `u`. *out written only on success. */
enum sm_err sm_store_open(const struct sm_url *u, const struct sm_store_cfg *cfg,
                          struct sm_store **out, struct sm_diag *d);
void sm_store_close(struct sm_store *st); /* accepts NULL */
bool sm_store_has(const struct sm_store *st, unsigned cap);

enum sm_err sm_store_list_begin(struct sm_store *st, const struct sm_range *r,
                                struct sm_cursor **out, struct sm_diag *d);
/* Next entry, borrowed until the next call or list_end. Verifies that keys
 * strictly increase and stay inside the range: SM_EORDER otherwise. */
enum sm_err sm_store_list_next(struct sm_cursor *c, const struct sm_entry **e, struct sm_diag *d);
void sm_store_list_end(struct sm_cursor *c); /* accepts NULL */
/* True when the store can skip subtrees (parallel listing needs it). */
bool sm_store_can_skip(const struct sm_store *st);
/* Skip the subtree of the directory entry just returned by list_next. */
void sm_store_list_skip(struct sm_cursor *c);

enum sm_err sm_store_stat(struct sm_store *st, const char *key, struct sm_entry *out,
                          struct sm_diag *d);
enum sm_err sm_store_open_read(struct sm_store *st, const char *key, uint64_t off,
                               struct sm_reader **out, struct sm_diag *d);
/* A reader of a listed entry's bytes, with its size as the hint. */
enum sm_err sm_store_open_entry(struct sm_store *st, const struct sm_entry *e,
                                struct sm_reader **out, struct sm_diag *d);
enum sm_err sm_store_put(struct sm_store *st, const char *key, struct sm_reader *r,
                         const struct sm_put *p, struct sm_diag *d);
enum sm_err sm_store_del(struct sm_store *st, const char *key, struct sm_diag *d);
/* Delete up to SM_DEL_BATCH file keys, in one request where the backend can
 * (S3 DeleteObjects), else one by one; done() reports each key's result,
 * a failed batch request as the failure of each of its keys. */
void sm_store_del_many(struct sm_store *st, const char *const *keys, size_t n, sm_del_done_fn done,
                       void *arg);
/* True when deletes are cheaper in batches (del_many). */
bool sm_store_can_del_many(const struct sm_store *st);
enum sm_err sm_store_mkdir(struct sm_store *st, const char *key, const struct sm_put *p,
                           struct sm_diag *d);
enum sm_err sm_store_symlink(struct sm_store *st, const char *key, const char *target,
                             const struct sm_put *p, struct sm_diag *d);
enum sm_err sm_store_setattr(struct sm_store *st, const char *key, const struct sm_put *p,
                             struct sm_diag *d);
/* Server-side copy from `src` when the backend can; SM_ENOTSUP otherwise
 * (then stream the bytes). */
enum sm_err sm_store_copy(struct sm_store *st, const char *key, struct sm_store *src,
                          const char *src_key, const struct sm_entry *se, const struct sm_put *p,
                          struct sm_diag *d);

/*
 * Fault injection for tests (SQLite's test_vfs idea):
 * "OP:N[:transient|:sticky|:corrupt]" fails the Nth call of OP (list, stat,
 * read, put, del, mkdir, symlink, setattr, or any) with a permanent error, a
 * retryable one (transient), or fails the Nth and every later call (sticky).
 * "put:N:corrupt" lets the Nth put succeed with the lowest bit of its first
 * byte flipped (an empty file stays intact): damage only a re-read can see.
 * "put:N:slow" lets the Nth put and every later one succeed, slowly: each
 * step of their data (a read, or a copy_file_range() step) takes 0.25 ms
 * more, plus its bytes at 512 MiB/s, so a progress display can be watched
 * during a large file on any machine. "put:N:crawl" is "slow" with 20 ms
 * more a step, so that a run of small files lasts long enough to be
 * stopped midway. "put:N:stall" makes the Nth put move no byte until its
 * reader's stop flag is set (a hung transfer).
 * Several specs may be joined with ','.
 */
enum sm_err sm_store_set_fault(struct sm_store *st, const char *spec, struct sm_diag *d);

/* A reader over a memory buffer (borrowed): for tests and small payloads. */
struct sm_mem_reader {
	struct sm_reader base;
	const char *data;
	size_t len;
	size_t pos;
};
void sm_mem_reader_init(struct sm_mem_reader *m, const void *data, size_t len);

extern const struct sm_store_ops sm_file_ops;
extern const struct sm_store_ops sm_s3_ops;
extern const struct sm_store_ops sm_sftp_ops;

#endif
