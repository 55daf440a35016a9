#include "opts.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdlib.h>
#include <time.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "url.h"
#include "util.h"

enum opt_id {
	O_INCLUDE = 256,
	O_EXCLUDE,
	O_MATCH_FULL_PATH,
	O_FILES_FROM,
	O_START,
	O_END,
	O_MIN_SIZE,
	O_MAX_SIZE,
	O_MIN_AGE,
	O_MAX_AGE,
	O_START_TIME,
	O_END_TIME,
	O_LIMIT,
	O_UPDATE,
	O_FORCE_UPDATE,
	O_EXISTING,
	O_IGNORE_EXISTING,
	O_CHECK_ALL,
	O_CHECK_NEW,
	O_CHECK_CHANGE,
	O_DIRS,
	O_PERMS,
	O_LINKS,
	O_INPLACE,
	O_FSYNC,
	O_DELETE_DST,
	O_DELETE_SRC,
	O_DELETE_SRC_AFTER,
	O_DRY,
	O_MAX_FAILURE,
	O_THREADS,
	O_LIST_THREADS,
	O_LIST_DEPTH,
	O_BWLIMIT,
	O_NO_HTTPS,
	O_STORAGE_CLASS,
	O_WORKER,
	O_MANAGER_ADDR,
	O_WATCH,
	O_VERBOSE,
	O_DEBUG,
	O_QUIET,
	O_METRICS,
	O_JSON,
	O_HELP,
	O_VERSION,
	O_TEST_FAULT
};

enum opt_group { G_SEL, G_CHANGE, G_ACTION, G_SPEED, G_CLUSTER, G_WATCH, G_OUTPUT, G_MISC };

static const char *const group_title[] = {
	[G_SEL] = "Selection",   [G_CHANGE] = "What counts as changed",
	[G_ACTION] = "Actions",  [G_SPEED] = "Speed",
	[G_CLUSTER] = "Cluster", [G_WATCH] = "Watch",
	[G_OUTPUT] = "Output",   [G_MISC] = "Other",
};

struct opt_def {
	const char *name;
	char shortopt;
	int has_arg;
	enum opt_id id;
	enum opt_group group;
	bool later; /* feature not built yet: refuse instead of ignoring */
	const char *arg;
	const char *help; /* NULL: for tests, left out of --help */
};

static const struct opt_def opt_table[] = {
	{ "include", 0, 1, O_INCLUDE, G_SEL, false, "P",
	  "include keys matching pattern P (rules apply in order)" },
	{ "exclude", 0, 1, O_EXCLUDE, G_SEL, false, "P", "exclude keys matching pattern P" },
	{ "match-full-path", 0, 0, O_MATCH_FULL_PATH, G_SEL, false, NULL,
	  "full-path filter mode instead of layer-by-layer" },
	{ "files-from", 0, 1, O_FILES_FROM, G_SEL, false, "FILE",
	  "sync only the keys listed in FILE (a line ending in / is a prefix)" },
	{ "start", 0, 1, O_START, G_SEL, false, "KEY", "only keys >= KEY" },
	{ "end", 0, 1, O_END, G_SEL, false, "KEY", "only keys <= KEY" },
	{ "min-size", 0, 1, O_MIN_SIZE, G_SEL, false, "S",
	  "skip files smaller than S (K, M, G, T)" },
	{ "max-size", 0, 1, O_MAX_SIZE, G_SEL, false, "S", "skip files larger than S" },
	{ "min-age", 0, 1, O_MIN_AGE, G_SEL, false, "D",
	  "skip files modified less than D ago (90, 1h30m, 2d)" },
	{ "max-age", 0, 1, O_MAX_AGE, G_SEL, false, "D", "skip files modified more than D ago" },
	{ "start-time", 0, 1, O_START_TIME, G_SEL, false, "T", "skip files modified before T" },
	{ "end-time", 0, 1, O_END_TIME, G_SEL, false, "T", "skip files modified after T" },
	{ "limit", 0, 1, O_LIMIT, G_SEL, false, "N", "process at most N objects (-1 = no limit)" },
	{ "update", 'u', 0, O_UPDATE, G_CHANGE, false, NULL,
	  "also copy when SRC is newer, skip when older" },
	{ "force-update", 'f', 0, O_FORCE_UPDATE, G_CHANGE, false, NULL, "always copy" },
	{ "existing", 0, 0, O_EXISTING, G_CHANGE, false, NULL, "never create new keys on DST" },
	{ "ignore-existing", 0, 0, O_IGNORE_EXISTING, G_CHANGE, false, NULL,
	  "never touch keys that exist on DST" },
	{ "check-all", 0, 0, O_CHECK_ALL, G_CHANGE, false, NULL,
	  "byte-compare keys that look unchanged; verify new copies" },
	{ "check-new", 0, 0, O_CHECK_NEW, G_CHANGE, false, NULL,
	  "verify each copy by re-reading DST" },
	{ "check-change", 0, 0, O_CHECK_CHANGE, G_CHANGE, false, NULL,
	  "fail a key whose SRC changed during its copy" },
	{ "dirs", 0, 0, O_DIRS, G_ACTION, false, NULL,
	  "sync directories too, including empty ones" },
	{ "perms", 0, 0, O_PERMS, G_ACTION, false, NULL,
	  "preserve mode (and owner/group where permitted)" },
	{ "links", 'l', 0, O_LINKS, G_ACTION, false, NULL,
	  "copy symlinks as symlinks (default: follow them)" },
	{ "inplace", 0, 0, O_INPLACE, G_ACTION, false, NULL,
	  "write files in place instead of temp + rename" },
	{ "fsync", 0, 0, O_FSYNC, G_ACTION, false, NULL,
	  "fsync each file before it is renamed into place, and its directory after (DST is "
	  "always synced once at the end)" },
	{ "delete-dst", 0, 0, O_DELETE_DST, G_ACTION, false, NULL,
	  "delete DST keys absent from SRC" },
	{ "delete-src", 0, 0, O_DELETE_SRC, G_ACTION, false, NULL,
	  "delete SRC keys that exist identically on DST" },
	{ "delete-src-after", 0, 0, O_DELETE_SRC_AFTER, G_ACTION, false, NULL,
	  "delete each SRC key after it was copied" },
	{ "dry", 0, 0, O_DRY, G_ACTION, false, NULL,
	  "print what would be copied or deleted, change nothing" },
	{ "max-failure", 0, 1, O_MAX_FAILURE, G_ACTION, false, "N",
	  "stop when N keys have failed (0 = never)" },
	{ "threads", 'p', 1, O_THREADS, G_SPEED, false, "N",
	  "concurrent transfers per process (default 10)" },
	{ "list-threads", 0, 1, O_LIST_THREADS, G_SPEED, false, "N",
	  "concurrent listings (default 1)" },
	{ "list-depth", 0, 1, O_LIST_DEPTH, G_SPEED, false, "N",
	  "directory levels listed in parallel (default 1)" },
	{ "bwlimit", 0, 1, O_BWLIMIT, G_SPEED, true, "RATE", "bandwidth cap in Mbit/s" },
	{ "no-https", 0, 0, O_NO_HTTPS, G_SPEED, false, NULL, "plain HTTP for S3/WebDAV" },
	{ "storage-class", 0, 1, O_STORAGE_CLASS, G_SPEED, false, "SC",
	  "storage class for S3 writes" },
	{ "worker", 0, 1, O_WORKER, G_CLUSTER, true, "H1,H2", "run workers on these SSH hosts" },
	{ "manager-addr", 0, 1, O_MANAGER_ADDR, G_CLUSTER, true, "ADDR",
	  "address the manager listens on for workers" },
	{ "watch", 0, 0, O_WATCH, G_WATCH, true, NULL,
	  "keep DST in sync with a local SRC as it changes" },
	{ "verbose", 'v', 0, O_VERBOSE, G_OUTPUT, false, NULL,
	  "more log lines (hides the progress display)" },
	{ "debug", 0, 0, O_DEBUG, G_OUTPUT, false, NULL,
	  "log why each key is copied, skipped or deleted" },
	{ "quiet", 'q', 0, O_QUIET, G_OUTPUT, false, NULL, "errors and the summary only" },
	{ "metrics", 0, 1, O_METRICS, G_OUTPUT, false, "ADDR",
	  "serve Prometheus metrics at http://ADDR/metrics (:PORT is 127.0.0.1:PORT)" },
	{ "json", 0, 0, O_JSON, G_OUTPUT, false, NULL,
	  "print the final report as JSON on stdout (--dry's plan: on stderr)" },
	{ "help", 'h', 0, O_HELP, G_MISC, false, NULL, "show this help" },
	{ "version", 0, 0, O_VERSION, G_MISC, false, NULL, "show the version" },
	/* tests only: inject store faults, "[src=|dst=]SPEC" (store.h) */
	{ "test-fault", 0, 1, O_TEST_FAULT, G_MISC, false, "SPEC", NULL },
};

#define N_OPTS (sizeof(opt_table) / sizeof(opt_table[0]))

void sm_opts_defaults(struct sm_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->limit = -1;
	o->max_failure = 0;
	o->threads = 10;
	o->list_threads = 1;
	o->list_depth = 1;
	o->log_level = SM_LOG_NOTICE;
}

void sm_opts_release(struct sm_opts *o)
{
	sm_filter_release(&o->filter);
	sm_select_release(&o->sel);
}

/* The tighter of an existing bound and a new one. */
static void opts_bound(bool *has, int64_t *cur, int64_t v, bool lower)
{
	if (!*has || (lower ? v > *cur : v < *cur))
		*cur = v;
	*has = true;
}

/* The value-error messages name the option as it was typed ("-p" or
 * "--threads"). */
static bool opts_time(const char *spell, const char *val, int64_t *out)
{
	if (sm_parse_time(val, out))
		return true;
	fprintf(stderr,
	        "syncmgr: %s: invalid time '%s' (use 2006-01-02, \"2006-01-02 15:04:05\" or RFC "
	        "3339)\n",
	        spell, val);
	return false;
}

static bool opts_age(const char *spell, const char *val, int64_t *out)
{
	if (sm_parse_duration(val, out))
		return true;
	fprintf(stderr, "syncmgr: %s: invalid age '%s' (use 90, 1h30m, 2d)\n", spell, val);
	return false;
}

static bool opts_size(const char *spell, const char *val, uint64_t *out)
{
	if (sm_parse_size(val, out))
		return true;
	fprintf(stderr, "syncmgr: %s: invalid size '%s' (use 100, 10K, 1.5M, 2G, 1T)\n", spell,
	        val);
	return false;
}

void sm_opts_help(FILE *out)
{
	fputs("usage: syncmgr [options] SRC DST\n"
	      "       syncmgr match [filter options] KEY... | -\n"
	      "       syncmgr --version | --help\n\n"
	      "SRC and DST: /local/dir/, file:///dir/, s3://..., [user@]host:/path, dav://...\n"
	      "(both end in '/' or neither does)\n",
	      out);
	for (int g = G_SEL; g <= G_MISC; g++) {
		fprintf(out, "\n%s:\n", group_title[g]);
		for (size_t i = 0; i < N_OPTS; i++) {
			const struct opt_def *d = &opt_table[i];
			if ((int)d->group != g || !d->help)
				continue;
			char lhs[64];
			if (d->shortopt)
				snprintf(lhs, sizeof(lhs), "-%c, --%s%s%s", d->shortopt, d->name,
				         d->arg ? " " : "", d->arg ? d->arg : "");
			else
				snprintf(lhs, sizeof(lhs), "    --%s%s%s", d->name,
				         d->arg ? " " : "", d->arg ? d->arg : "");
			fprintf(out, "  %-28s %s%s\n", lhs, d->help,
			        d->later ? " [not supported yet]" : "");
		}
	}
	fputs("\nOptions go before or after SRC DST; '--' ends them. Long options are\n"
	      "spelled in full (no abbreviations); values as --threads 4, --threads=4,\n"
	      "-p 4 or -p4. `syncmgr match -` reads the keys from stdin, one a line.\n",
	      out);
}

/* Other tools' spellings (rsync, rclone, aws s3 sync) of options syncmgr has
 * under another name, or does not need: looked up only for an option that
 * is not in opt_table, so a hint never shadows one of ours. */
struct opt_hint {
	const char *spelling; /* "--delete" or "-n" */
	const char *hint;
};

static const struct opt_hint opt_hints[] = {
	{ "--delete", "did you mean --delete-dst?" },
	{ "--delete-after", "did you mean --delete-dst?" },
	{ "--delete-before", "did you mean --delete-dst?" },
	{ "--delete-during", "did you mean --delete-dst?" },
	{ "--delete-delay", "did you mean --delete-dst?" },
	{ "--delete-excluded", "--delete-dst never deletes excluded keys" },
	{ "--remove-source-files", "did you mean --delete-src-after?" },
	{ "--dry-run", "did you mean --dry?" },
	{ "--dryrun", "did you mean --dry?" },
	{ "-n", "did you mean --dry?" },
	{ "--checksum", "did you mean --check-all?" },
	{ "-c", "did you mean --check-all?" },
	{ "--ignore-times", "did you mean --force-update?" },
	{ "-I", "did you mean --force-update?" },
	{ "--size-only", "comparing sizes only is the default" },
	{ "--recursive", "syncmgr always recurses" },
	{ "-r", "syncmgr always recurses" },
	{ "--archive", "syncmgr always recurses and keeps mtimes; add --perms, --links, --dirs" },
	{ "-a", "syncmgr always recurses and keeps mtimes; add --perms, --links, --dirs" },
	{ "--times", "mtimes are always kept" },
	{ "-t", "mtimes are always kept" },
	{ "--owner", "--perms keeps owner and group where permitted" },
	{ "--group", "--perms keeps owner and group where permitted" },
	{ "-o", "--perms keeps owner and group where permitted" },
	{ "-g", "--perms keeps owner and group where permitted" },
	{ "-d", "did you mean --dirs?" },
	{ "--copy-links", "symlinks are followed by default; --links copies them as links" },
	{ "-L", "symlinks are followed by default; --links copies them as links" },
	{ "--progress", "progress is shown by default on a terminal" },
	{ "-P", "progress is shown by default on a terminal" },
	{ "--stats", "the summary is always printed" },
	{ "--log-level", "use -v, --debug or -q" },
	{ "--bandwidth", "syncmgr's --bwlimit is not supported yet" },
	{ "--bw-limit", "syncmgr's --bwlimit is not supported yet" },
	{ "--limit-rate", "syncmgr's --bwlimit is not supported yet" },
	{ "--transfers", "did you mean --threads?" },
	{ "--parallel", "did you mean --threads?" },
	{ "-j", "did you mean --threads?" },
	{ "--checkers", "did you mean --list-threads?" },
	{ "--exclude-from", "give each pattern with --exclude" },
	{ "--include-from", "give each pattern with --include" },
	{ "--filter", "use --include and --exclude" },
	{ "--files-from-raw", "did you mean --files-from?" },
	{ "--compress", "syncmgr does not compress transfers" },
	{ "-z", "syncmgr does not compress transfers" },
	{ "--rsh", "SSH settings come from ~/.ssh/config" },
	{ "-e", "SSH settings come from ~/.ssh/config" },
	{ "--s3-storage-class", "did you mean --storage-class?" },
	{ "-V", "did you mean --version?" },
};

static const char *opt_hint_for(const char *spell)
{
	for (size_t i = 0; i < sizeof(opt_hints) / sizeof(opt_hints[0]); i++)
		if (strcmp(opt_hints[i].spelling, spell) == 0)
			return opt_hints[i].hint;
	return NULL;
}

static const struct opt_def *opt_by_name(const char *name, size_t len)
{
	for (size_t i = 0; i < N_OPTS; i++)
		if (strlen(opt_table[i].name) == len && memcmp(opt_table[i].name, name, len) == 0)
			return &opt_table[i];
	return NULL;
}

static const struct opt_def *opt_by_short(char c)
{
	for (size_t i = 0; i < N_OPTS; i++)
		if (opt_table[i].shortopt == c)
			return &opt_table[i];
	return NULL;
}

#define OPTS_NAME_MAX 40 /* longer typed names get no spelling suggestion */

/* Edits (insert, delete, replace, swap two neighbours) from a to b, both at
 * most OPTS_NAME_MAX bytes. */
static size_t opts_distance(const char *a, size_t la, const char *b, size_t lb)
{
	size_t d[OPTS_NAME_MAX + 1][OPTS_NAME_MAX + 1];
	for (size_t i = 0; i <= la; i++)
		d[i][0] = i;
	for (size_t j = 0; j <= lb; j++)
		d[0][j] = j;
	for (size_t i = 1; i <= la; i++)
		for (size_t j = 1; j <= lb; j++) {
			size_t best = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
			if (d[i - 1][j] + 1 < best)
				best = d[i - 1][j] + 1;
			if (d[i][j - 1] + 1 < best)
				best = d[i][j - 1] + 1;
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
			    d[i - 2][j - 2] + 1 < best)
				best = d[i - 2][j - 2] + 1;
			d[i][j] = best;
		}
	return d[la][lb];
}

/* "did you mean --threads?" for a long option name that is not ours: the
 * options it is the start of (getopt would have taken a unique one silently),
 * else the nearest within one edit (two for names over four bytes); nothing
 * when more than three fit. Options left out of --help are never offered. */
static bool opts_suggest(const char *name, size_t len, char *buf, size_t cap)
{
	const struct opt_def *fit[3];
	size_t n = 0;
	bool many = false;
	for (size_t i = 0; i < N_OPTS; i++) {
		const struct opt_def *d = &opt_table[i];
		if (!d->help || len == 0 || strncmp(d->name, name, len) != 0)
			continue;
		if (n == 3)
			many = true;
		else
			fit[n++] = d;
	}
	if (n == 0 && len <= OPTS_NAME_MAX) {
		size_t best = len > 4 ? 2 : 1;
		for (size_t i = 0; i < N_OPTS; i++) {
			const struct opt_def *d = &opt_table[i];
			size_t dl = strlen(d->name);
			if (!d->help || dl > OPTS_NAME_MAX)
				continue;
			size_t e = opts_distance(name, len, d->name, dl);
			if (e > best)
				continue;
			if (e < best) {
				best = e;
				n = 0;
				many = false;
			}
			if (n == 3)
				many = true;
			else
				fit[n++] = d;
		}
	}
	if (n == 0 || many)
		return false;
	int w = snprintf(buf, cap, "did you mean");
	for (size_t i = 0; i < n && w >= 0 && (size_t)w < cap; i++)
		w += snprintf(buf + w, cap - (size_t)w, "%s--%s%s",
		              i == 0       ? " "
		              : i + 1 == n ? " or "
		                           : ", ",
		              fit[i]->name, i + 1 == n ? "?" : "");
	return true;
}

/* One step through the command line, getopt_long's syntax without its
 * abbreviations: "--name", "--name=value", "--name value", "-x", clusters
 * "-xyz", "-pVALUE", "-p VALUE"; "--" ends the options; "-" is an operand. */
struct opts_iter {
	int argc;
	char **argv;
	int i;               /* the next element of argv */
	const char *cluster; /* what is left of a short-option cluster, or NULL */
	int cluster_i;       /* the element the cluster is in */
	bool operands_only;  /* after "--" */
};

struct opts_tok {
	const struct opt_def *def; /* NULL: an operand */
	char spell[OPTS_NAME_MAX]; /* the option as typed, "--threads" or "-p" */
	const char *val;           /* its value (NULL: it takes none), or the operand */
	int argi;                  /* the element of argv it is in */
	bool alone;                /* the element is this option and nothing else */
};

enum opts_step { STEP_END, STEP_OPT, STEP_OPERAND, STEP_USAGE };

static void opts_unknown(const char *spell, int len)
{
	char buf[160];
	const char *hint = opt_hint_for(spell);
	if (!hint && spell[1] == '-' && opts_suggest(spell + 2, (size_t)len - 2, buf, sizeof(buf)))
		hint = buf;
	fprintf(stderr, "syncmgr: %.*s: unknown option (%s)\n", len, spell,
	        hint ? hint : "see --help");
}

/* The option's value: the rest of its element, else the next element (even
 * one starting with '-', as getopt does). */
static enum opts_step opts_value(struct opts_iter *it, struct opts_tok *t, const char *rest)
{
	if (rest)
		t->val = rest;
	else if (it->i < it->argc)
		t->val = it->argv[it->i++];
	else {
		fprintf(stderr, "syncmgr: %s: missing value\n", t->spell);
		return STEP_USAGE;
	}
	return STEP_OPT;
}

static enum opts_step opts_long(struct opts_iter *it, struct opts_tok *t, const char *arg)
{
	const char *name = arg + 2;
	const char *eq = strchr(name, '=');
	size_t len = eq ? (size_t)(eq - name) : strlen(name);
	const struct opt_def *d = opt_by_name(name, len);
	if (!d) {
		char spell[OPTS_NAME_MAX + 3];
		if (len + 2 >= sizeof(spell) || len == 0) /* too long to hint, or "--=x" */
			fprintf(stderr, "syncmgr: %s: unknown option (see --help)\n", arg);
		else {
			memcpy(spell, arg, len + 2);
			spell[len + 2] = '\0';
			opts_unknown(spell, (int)len + 2);
		}
		return STEP_USAGE;
	}
	t->def = d;
	snprintf(t->spell, sizeof(t->spell), "--%s", d->name);
	t->alone = !eq;
	if (d->has_arg)
		return opts_value(it, t, eq ? eq + 1 : NULL);
	if (eq) {
		fprintf(stderr, "syncmgr: %s: takes no value%s\n", t->spell,
		        d->id == O_VERBOSE ? " (--debug logs more)" : "");
		return STEP_USAGE;
	}
	return STEP_OPT;
}

static enum opts_step opts_short(struct opts_iter *it, struct opts_tok *t)
{
	char c = *it->cluster++;
	char spell[3] = { '-', c, '\0' };
	const struct opt_def *d = opt_by_short(c);
	if (!d) {
		opts_unknown(spell, 2);
		return STEP_USAGE;
	}
	t->def = d;
	memcpy(t->spell, spell, sizeof(spell));
	t->argi = it->cluster_i;
	t->alone = strcmp(it->argv[it->cluster_i], spell) == 0;
	if (!d->has_arg)
		return STEP_OPT;
	/* "-p10" and "-p 10"; "-p=10" gives "=10", as with getopt */
	const char *rest = *it->cluster ? it->cluster : NULL;
	it->cluster = NULL;
	return opts_value(it, t, rest);
}

static enum opts_step opts_next(struct opts_iter *it, struct opts_tok *t)
{
	*t = (struct opts_tok){ 0 };
	if (it->cluster && *it->cluster)
		return opts_short(it, t);
	it->cluster = NULL;
	for (;;) {
		if (it->i >= it->argc)
			return STEP_END;
		t->argi = it->i;
		const char *a = it->argv[it->i++];
		if (it->operands_only || a[0] != '-' || a[1] == '\0') {
			t->val = a;
			return STEP_OPERAND;
		}
		if (strcmp(a, "--") == 0) {
			it->operands_only = true;
			continue;
		}
		if (a[1] == '-')
			return opts_long(it, t, a);
		it->cluster = a + 1;
		it->cluster_i = t->argi;
		return opts_short(it, t);
	}
}

static bool opt_int(const struct opts_tok *t, int64_t min, int64_t max, int64_t *out)
{
	if (sm_parse_i64(t->val, min, max, out))
		return true;
	char tip[160] = "";
	bool shortform = t->spell[1] != '-';
	if (shortform && t->val[0] == '=')
		snprintf(tip, sizeof(tip), "; write %s%s, %s %s or --%s%s", t->spell, t->val + 1,
		         t->spell, t->val + 1, t->def->name, t->val);
	else if (shortform && t->def->id == O_THREADS && !isdigit((unsigned char)t->val[0]) &&
	         t->val[0] != '-' && t->val[0] != '+')
		snprintf(tip, sizeof(tip), "; -p is --threads, not rsync's --perms");
	fprintf(stderr,
	        "syncmgr: %s: invalid value '%s' (expected an integer from %lld to %lld%s)\n",
	        t->spell, t->val, (long long)min, (long long)max, tip);
	return false;
}

/* What `syncmgr match` can apply to a bare key. */
static bool opt_for_match(const struct opt_def *d)
{
	switch (d->id) {
	case O_INCLUDE:
	case O_EXCLUDE:
	case O_MATCH_FULL_PATH:
	case O_VERBOSE:
	case O_DEBUG:
	case O_QUIET: return true;
	default: return false;
	}
}

#define MATCH_TAKES "match takes --include, --exclude, --match-full-path, -v, --debug, -q"

/* The first pass: syntax, --help/--version, options of later features, and
 * options `match` cannot apply; nothing is applied yet, so no value is read
 * (no --files-from file) before every option is known to be one. */
static enum sm_opts_result opts_check(int argc, char **argv, FILE *out)
{
	struct opts_iter it = { .argc = argc, .argv = argv, .i = 1 };
	struct opts_tok t;
	enum opts_step s;
	const char *first = NULL; /* the first operand: "match" or SRC */
	struct opts_tok not_match = { 0 };
	while ((s = opts_next(&it, &t)) != STEP_END) {
		if (s == STEP_USAGE)
			return SM_OPTS_USAGE;
		if (s == STEP_OPERAND) {
			if (!first)
				first = t.val;
			continue;
		}
		if (t.def->later) {
			fprintf(stderr, "syncmgr: %s: not supported yet\n", t.spell);
			return SM_OPTS_USAGE;
		}
		if (t.def->id == O_HELP || t.def->id == O_VERSION) {
			if (argc != 2 || !t.alone) {
				const char *extra =
				        !t.alone ? argv[t.argi] : argv[t.argi == 1 ? 2 : 1];
				fprintf(stderr,
				        "syncmgr: %s: takes no other arguments (got '%s')\n",
				        t.spell, extra);
				return SM_OPTS_USAGE;
			}
			if (t.def->id == O_HELP)
				sm_opts_help(out);
			else
				fprintf(out, "syncmgr %s\n", SM_VERSION);
			return SM_OPTS_EXIT_OK;
		}
		if (!not_match.def && !opt_for_match(t.def))
			not_match = t;
	}
	if (first && strcmp(first, "match") == 0 && not_match.def) {
		if (not_match.def->group == G_SEL)
			fprintf(stderr, "syncmgr: match: %s cannot be applied to keys alone (%s)\n",
			        not_match.spell, MATCH_TAKES);
		else
			fprintf(stderr, "syncmgr: match: %s does not apply to keys (%s)\n",
			        not_match.spell, MATCH_TAKES);
		return SM_OPTS_USAGE;
	}
	return SM_OPTS_RUN;
}

enum sm_opts_result sm_opts_parse(struct sm_opts *o, int argc, char **argv, FILE *out)
{
	enum sm_opts_result r = opts_check(argc, argv, out);
	if (r != SM_OPTS_RUN)
		return r;

	/* The second pass applies the options and, as getopt does, moves the
	 * operands to the front of argv in their order (each goes to a slot
	 * this pass has already read). */
	struct opts_iter it = { .argc = argc, .argv = argv, .i = 1 };
	struct opts_tok t;
	enum opts_step s;
	int n_operands = 0;
	int verbose = 0, quiet = 0;
	while ((s = opts_next(&it, &t)) != STEP_END) {
		if (s == STEP_USAGE) /* opts_check passed it: cannot happen */
			return SM_OPTS_USAGE;
		if (s == STEP_OPERAND) {
			argv[1 + n_operands++] = (char *)t.val;
			continue;
		}
		const struct opt_def *def = t.def;
		const char *val = t.val;
		int64_t v = 0;
		uint64_t u = 0;
		struct sm_diag d;
		int64_t now_ns = (int64_t)time(NULL) * 1000000000;
		switch (def->id) {
		case O_INCLUDE:
		case O_EXCLUDE:
			if (sm_filter_add(&o->filter, val, def->id == O_INCLUDE, &d) != SM_OK) {
				fprintf(stderr, "syncmgr: %s\n", d.msg);
				return SM_OPTS_USAGE;
			}
			break;
		case O_MATCH_FULL_PATH: o->filter.full_path = true; break;
		case O_FILES_FROM:
			sm_fileset_free(o->sel.files);
			o->sel.files = NULL;
			if (sm_fileset_load(val, &o->sel.files, &d) != SM_OK) {
				fprintf(stderr, "syncmgr: %s\n", d.msg);
				return SM_OPTS_USAGE;
			}
			break;
		case O_START:
		case O_END: {
			char **slot = def->id == O_START ? &o->sel.start : &o->sel.end;
			free(*slot);
			*slot = NULL;
			if (*val)
				*slot = strdup(val);
			if (!*slot) {
				fprintf(stderr, "syncmgr: %s: needs a key\n", t.spell);
				return SM_OPTS_USAGE;
			}
			break;
		}
		case O_MIN_SIZE:
			if (!opts_size(t.spell, val, &u))
				return SM_OPTS_USAGE;
			o->sel.has_min_size = true;
			o->sel.min_size = u;
			break;
		case O_MAX_SIZE:
			if (!opts_size(t.spell, val, &u))
				return SM_OPTS_USAGE;
			o->sel.has_max_size = true;
			o->sel.max_size = u;
			break;
		case O_MIN_AGE: /* modified at least D ago: mtime <= now - D */
			if (!opts_age(t.spell, val, &v))
				return SM_OPTS_USAGE;
			opts_bound(&o->sel.has_max_mtime, &o->sel.max_mtime_ns, now_ns - v, false);
			break;
		case O_MAX_AGE: /* modified at most D ago: mtime >= now - D */
			if (!opts_age(t.spell, val, &v))
				return SM_OPTS_USAGE;
			opts_bound(&o->sel.has_min_mtime, &o->sel.min_mtime_ns, now_ns - v, true);
			break;
		case O_START_TIME:
			if (!opts_time(t.spell, val, &v))
				return SM_OPTS_USAGE;
			opts_bound(&o->sel.has_min_mtime, &o->sel.min_mtime_ns, v, true);
			break;
		case O_END_TIME:
			if (!opts_time(t.spell, val, &v))
				return SM_OPTS_USAGE;
			opts_bound(&o->sel.has_max_mtime, &o->sel.max_mtime_ns, v, false);
			break;
		case O_LIMIT:
			if (!opt_int(&t, -1, INT64_MAX, &v))
				return SM_OPTS_USAGE;
			o->limit = v;
			break;
		case O_UPDATE: o->update = true; break;
		case O_FORCE_UPDATE: o->force_update = true; break;
		case O_EXISTING: o->existing = true; break;
		case O_IGNORE_EXISTING: o->ignore_existing = true; break;
		case O_CHECK_ALL: o->check_all = true; break;
		case O_CHECK_NEW: o->check_new = true; break;
		case O_CHECK_CHANGE: o->check_change = true; break;
		case O_DIRS: o->dirs = true; break;
		case O_PERMS: o->perms = true; break;
		case O_LINKS: o->links = true; break;
		case O_INPLACE: o->inplace = true; break;
		case O_FSYNC: o->fsync = true; break;
		case O_DELETE_DST: o->delete_dst = true; break;
		case O_DELETE_SRC: o->delete_src = true; break;
		case O_DELETE_SRC_AFTER: o->delete_src_after = true; break;
		case O_DRY: o->dry = true; break;
		case O_MAX_FAILURE:
			if (!opt_int(&t, 0, INT64_MAX, &v))
				return SM_OPTS_USAGE;
			o->max_failure = v;
			break;
		case O_THREADS:
			if (!opt_int(&t, 1, 1024, &v))
				return SM_OPTS_USAGE;
			o->threads = (int)v;
			break;
		case O_LIST_THREADS:
			if (!opt_int(&t, 1, 256, &v))
				return SM_OPTS_USAGE;
			o->list_threads = (int)v;
			break;
		case O_LIST_DEPTH:
			if (!opt_int(&t, 1, 64, &v))
				return SM_OPTS_USAGE;
			o->list_depth = (int)v;
			break;
		case O_NO_HTTPS: o->no_https = true; break;
		case O_STORAGE_CLASS: o->storage_class = val; break;
		case O_VERBOSE:
			verbose++;
			o->verbose++;
			break;
		case O_DEBUG: o->debug = true; break;
		case O_QUIET: quiet++; break;
		case O_METRICS: o->metrics_addr = val; break;
		case O_JSON: o->json = true; break;
		case O_TEST_FAULT: o->fault_spec = val; break;
		default: /* later features and --help/--version: opts_check's */
			fprintf(stderr, "syncmgr: %s: not supported yet\n", t.spell);
			return SM_OPTS_USAGE;
		}
	}

	if (o->debug)
		o->log_level = SM_LOG_DEBUG;
	else if (verbose)
		o->log_level = SM_LOG_INFO;
	else if (quiet)
		o->log_level = SM_LOG_QUIET;

	if (o->sel.has_min_size && o->sel.has_max_size && o->sel.min_size > o->sel.max_size) {
		fprintf(stderr, "syncmgr: --min-size %" PRIu64 " is above --max-size %" PRIu64 "\n",
		        o->sel.min_size, o->sel.max_size);
		return SM_OPTS_USAGE;
	}
	if (o->sel.has_min_mtime && o->sel.has_max_mtime &&
	    o->sel.min_mtime_ns > o->sel.max_mtime_ns) {
		fprintf(stderr,
		        "syncmgr: --min-age/--max-age/--start-time/--end-time select no time "
		        "at all (the earliest allowed mtime is after the latest)\n");
		return SM_OPTS_USAGE;
	}
	if (o->sel.start && o->sel.end && strcmp(o->sel.start, o->sel.end) > 0) {
		fprintf(stderr, "syncmgr: --start '%s' sorts after --end '%s'\n", o->sel.start,
		        o->sel.end);
		return SM_OPTS_USAGE;
	}
	if (o->filter.n && !o->filter.has_exclude)
		fprintf(stderr, "syncmgr: warning: --include has no effect without an --exclude\n");

	char **operand = argv + 1;
	if (n_operands == 0) {
		fprintf(stderr, "syncmgr: missing SRC and DST (see --help)\n");
		return SM_OPTS_USAGE;
	}
	if (strcmp(operand[0], "match") == 0) {
		o->match_mode = true;
		o->match_keys = operand + 1;
		o->n_match_keys = n_operands - 1;
		if (o->n_match_keys == 0) {
			fprintf(stderr, "syncmgr: match: give the keys to test (directories end in "
			                "'/'), or "
			                "'-' to read them from stdin\n");
			return SM_OPTS_USAGE;
		}
		for (int i = 0; i < o->n_match_keys; i++)
			if (strcmp(o->match_keys[i], "-") == 0 && o->n_match_keys > 1) {
				fprintf(stderr,
				        "syncmgr: match: '-' reads the keys from stdin: give "
				        "no other keys with it\n");
				return SM_OPTS_USAGE;
			}
		o->match_stdin = strcmp(o->match_keys[0], "-") == 0;
		return SM_OPTS_RUN;
	}
	if (n_operands == 1) {
		char masked[512];
		fprintf(stderr, "syncmgr: missing DST after '%s'\n",
		        sm_url_mask(operand[0], masked, sizeof(masked)));
		return SM_OPTS_USAGE;
	}
	if (n_operands > 2) {
		char masked[512];
		fprintf(stderr, "syncmgr: '%s': unexpected argument (one SRC and one DST)\n",
		        sm_url_mask(operand[2], masked, sizeof(masked)));
		return SM_OPTS_USAGE;
	}
	o->src = operand[0];
	o->dst = operand[1];

	const char *conflict = NULL;
	if (o->existing && o->ignore_existing)
		conflict = "--existing and --ignore-existing";
	else if (o->update && o->force_update)
		conflict = "--update and --force-update";
	else if (o->delete_src && o->delete_src_after)
		conflict = NULL; /* both together move everything: allowed */
	if (conflict) {
		fprintf(stderr, "syncmgr: %s: cannot be used together\n", conflict);
		return SM_OPTS_USAGE;
	}
	return SM_OPTS_RUN;
}
