#include "opts.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <time.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
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

static bool opts_time(const char *name, const char *val, int64_t *out)
{
	if (sm_parse_time(val, out))
		return true;
	fprintf(stderr,
	        "syncmgr: --%s: invalid time '%s' (use 2006-01-02, \"2006-01-02 15:04:05\" or RFC "
	        "3339)\n",
	        name, val);
	return false;
}

static bool opts_age(const char *name, const char *val, int64_t *out)
{
	if (sm_parse_duration(val, out))
		return true;
	fprintf(stderr, "syncmgr: --%s: invalid age '%s' (use 90, 1h30m, 2d)\n", name, val);
	return false;
}

static bool opts_size(const char *name, const char *val, uint64_t *out)
{
	if (sm_parse_size(val, out))
		return true;
	fprintf(stderr, "syncmgr: --%s: invalid size '%s' (use 100, 10K, 1.5M, 2G, 1T)\n", name,
	        val);
	return false;
}

void sm_opts_help(FILE *out)
{
	fputs("usage: syncmgr [options] SRC DST\n"
	      "       syncmgr match [filter options] KEY...\n"
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
}

static const struct opt_def *opt_by_id(int id)
{
	for (size_t i = 0; i < N_OPTS; i++)
		if ((int)opt_table[i].id == id)
			return &opt_table[i];
	return NULL;
}

static bool opt_int(const char *name, const char *val, int64_t min, int64_t max, int64_t *out)
{
	if (sm_parse_i64(val, min, max, out))
		return true;
	fprintf(stderr,
	        "syncmgr: --%s: invalid value '%s' (expected an integer from %lld to %lld)\n", name,
	        val, (long long)min, (long long)max);
	return false;
}

enum sm_opts_result sm_opts_parse(struct sm_opts *o, int argc, char **argv, FILE *out)
{
	struct option lopts[N_OPTS + 1];
	char shorts[2 * N_OPTS + 2];
	size_t ns = 0;
	shorts[ns++] = ':'; /* report a missing argument distinctly */
	for (size_t i = 0; i < N_OPTS; i++) {
		lopts[i] = (struct option){ opt_table[i].name,
			                    opt_table[i].has_arg ? required_argument : no_argument,
			                    NULL, (int)opt_table[i].id };
		if (opt_table[i].shortopt) {
			shorts[ns++] = opt_table[i].shortopt;
			if (opt_table[i].has_arg)
				shorts[ns++] = ':';
		}
	}
	lopts[N_OPTS] = (struct option){ 0 };
	shorts[ns] = '\0';

	int verbose = 0, quiet = 0;
	optind = 1;
	opterr = 0;
	for (;;) {
		int li = -1;
		int c = getopt_long(argc, argv, shorts, lopts, &li);
		if (c == -1)
			break;
		const struct opt_def *def = NULL;
		if (c != '?' && c != ':') {
			if (c < 256) {
				for (size_t i = 0; i < N_OPTS; i++)
					if (opt_table[i].shortopt == c)
						def = &opt_table[i];
			} else {
				def = opt_by_id(c);
			}
		}
		if (c == ':') {
			fprintf(stderr, "syncmgr: %s: missing value\n", argv[optind - 1]);
			return SM_OPTS_USAGE;
		}
		if (c == '?' || !def) {
			if (optopt && optopt < 256)
				fprintf(stderr, "syncmgr: -%c: unknown option (see --help)\n",
				        optopt);
			else
				fprintf(stderr, "syncmgr: %s: unknown option (see --help)\n",
				        argv[optind - 1]);
			return SM_OPTS_USAGE;
		}
		if (def->later) {
			fprintf(stderr, "syncmgr: --%s: not supported yet\n", def->name);
			return SM_OPTS_USAGE;
		}
		int64_t v = 0;
		uint64_t u = 0;
		struct sm_diag d;
		int64_t now_ns = (int64_t)time(NULL) * 1000000000;
		switch (def->id) {
		case O_INCLUDE:
		case O_EXCLUDE:
			if (sm_filter_add(&o->filter, optarg, def->id == O_INCLUDE, &d) != SM_OK) {
				fprintf(stderr, "syncmgr: %s\n", d.msg);
				return SM_OPTS_USAGE;
			}
			break;
		case O_MATCH_FULL_PATH: o->filter.full_path = true; break;
		case O_FILES_FROM:
			sm_fileset_free(o->sel.files);
			o->sel.files = NULL;
			if (sm_fileset_load(optarg, &o->sel.files, &d) != SM_OK) {
				fprintf(stderr, "syncmgr: %s\n", d.msg);
				return SM_OPTS_USAGE;
			}
			break;
		case O_START:
		case O_END: {
			char **slot = def->id == O_START ? &o->sel.start : &o->sel.end;
			free(*slot);
			if (!*optarg || !(*slot = strdup(optarg))) {
				fprintf(stderr, "syncmgr: --%s: needs a key\n", def->name);
				return SM_OPTS_USAGE;
			}
			break;
		}
		case O_MIN_SIZE:
			if (!opts_size(def->name, optarg, &u))
				return SM_OPTS_USAGE;
			o->sel.has_min_size = true;
			o->sel.min_size = u;
			break;
		case O_MAX_SIZE:
			if (!opts_size(def->name, optarg, &u))
				return SM_OPTS_USAGE;
			o->sel.has_max_size = true;
			o->sel.max_size = u;
			break;
		case O_MIN_AGE: /* modified at least D ago: mtime <= now - D */
			if (!opts_age(def->name, optarg, &v))
				return SM_OPTS_USAGE;
			opts_bound(&o->sel.has_max_mtime, &o->sel.max_mtime_ns, now_ns - v, false);
			break;
		case O_MAX_AGE: /* modified at most D ago: mtime >= now - D */
			if (!opts_age(def->name, optarg, &v))
				return SM_OPTS_USAGE;
			opts_bound(&o->sel.has_min_mtime, &o->sel.min_mtime_ns, now_ns - v, true);
			break;
		case O_START_TIME:
			if (!opts_time(def->name, optarg, &v))
				return SM_OPTS_USAGE;
			opts_bound(&o->sel.has_min_mtime, &o->sel.min_mtime_ns, v, true);
			break;
		case O_END_TIME:
			if (!opts_time(def->name, optarg, &v))
				return SM_OPTS_USAGE;
			opts_bound(&o->sel.has_max_mtime, &o->sel.max_mtime_ns, v, false);
			break;
		case O_LIMIT:
			if (!opt_int(def->name, optarg, -1, INT64_MAX, &v))
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
			if (!opt_int(def->name, optarg, 0, INT64_MAX, &v))
				return SM_OPTS_USAGE;
			o->max_failure = v;
			break;
		case O_THREADS:
			if (!opt_int(def->name, optarg, 1, 1024, &v))
				return SM_OPTS_USAGE;
			o->threads = (int)v;
			break;
		case O_LIST_THREADS:
			if (!opt_int(def->name, optarg, 1, 256, &v))
				return SM_OPTS_USAGE;
			o->list_threads = (int)v;
			break;
		case O_LIST_DEPTH:
			if (!opt_int(def->name, optarg, 1, 64, &v))
				return SM_OPTS_USAGE;
			o->list_depth = (int)v;
			break;
		case O_NO_HTTPS: o->no_https = true; break;
		case O_STORAGE_CLASS: o->storage_class = optarg; break;
		case O_VERBOSE:
			verbose++;
			o->verbose++;
			break;
		case O_DEBUG: o->debug = true; break;
		case O_QUIET: quiet++; break;
		case O_HELP: sm_opts_help(out); return SM_OPTS_EXIT_OK;
		case O_VERSION: fprintf(out, "syncmgr %s\n", SM_VERSION); return SM_OPTS_EXIT_OK;
		case O_METRICS: o->metrics_addr = optarg; break;
		case O_JSON: o->json = true; break;
		case O_TEST_FAULT: o->fault_spec = optarg; break;
		default:
			fprintf(stderr, "syncmgr: --%s: not supported yet\n", def->name);
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

	if (argc - optind == 0) {
		fprintf(stderr, "syncmgr: missing SRC and DST (see --help)\n");
		return SM_OPTS_USAGE;
	}
	if (strcmp(argv[optind], "match") == 0) {
		o->match_mode = true;
		o->match_keys = argv + optind + 1;
		o->n_match_keys = argc - optind - 1;
		if (o->n_match_keys == 0) {
			fprintf(stderr,
			        "syncmgr: match: give the keys to test (directories end in '/')\n");
			return SM_OPTS_USAGE;
		}
		return SM_OPTS_RUN;
	}
	if (argc - optind == 1) {
		fprintf(stderr, "syncmgr: missing DST after '%s'\n", argv[optind]);
		return SM_OPTS_USAGE;
	}
	if (argc - optind > 2) {
		fprintf(stderr, "syncmgr: '%s': unexpected argument (one SRC and one DST)\n",
		        argv[optind + 2]);
		return SM_OPTS_USAGE;
	}
	o->src = argv[optind];
	o->dst = argv[optind + 1];

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
