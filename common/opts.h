/* Command-line options: one table drives parsing, --help and validation. */
#ifndef SM_OPTS_H
#define SM_OPTS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "filter.h"
#include "select.h"

struct sm_opts {
	const char *src; /* as given on the command line */
	const char *dst;

	/* Selection */
	struct sm_filter filter; /* --include/--exclude in order, --match-full-path */
	struct sm_select sel;    /* --files-from, --start/--end, sizes, ages, times */

	/* `syncmgr match KEY...`: print keep/exclude for each key; `match -`
	 * reads the keys from stdin (match_stdin, and match_keys is {"-"}) */
	bool match_mode;
	bool match_stdin;
	char **match_keys; /* points into argv */
	int n_match_keys;

	/* What counts as changed */
	bool update;
	bool force_update;
	bool existing;
	bool ignore_existing;
	bool check_all;
	bool check_new;
	bool check_change;

	/* Actions */
	bool dirs;
	bool perms;
	bool links;
	bool inplace;
	bool fsync; /* --fsync: each file and its directory, not only syncfs at the end */
	bool delete_dst;
	bool delete_src;
	bool delete_src_after;
	bool dry;
	int64_t limit;       /* -1: no limit */
	int64_t max_failure; /* 0: no limit */

	/* Speed, transport */
	bool no_https;
	const char *storage_class;
	int threads;
	int list_threads;
	int list_depth;

	/* Output */
	int log_level; /* enum sm_log_level */
	bool debug;
	int verbose; /* -v count */

	/* --metrics ADDR (checked when the run starts), --json (the report on
	 * stdout, nothing else there) */
	const char *metrics_addr;
	bool json;

	/* Tests inject store faults with it: --test-fault [src=|dst=]SPEC, left
	 * out of --help ("OP:N[:transient|:sticky|:corrupt]", see store.h). */
	const char *fault_spec;
};

enum sm_opts_result {
	SM_OPTS_RUN = 0, /* a sync to run */
	SM_OPTS_EXIT_OK, /* --help / --version printed */
	SM_OPTS_USAGE    /* error printed: exit 2 */
};

void sm_opts_defaults(struct sm_opts *o);
void sm_opts_release(struct sm_opts *o);
/* Parse argv: options anywhere until "--", long ones only by their full name
 * (getopt_long's abbreviations are refused), values as "--opt v", "--opt=v",
 * "-p v" or "-pv". Like getopt it reorders argv (the operands first); src,
 * dst and match_keys point into it. Prints --help/--version to `out` and
 * one-line errors to stderr, with a hint for other tools' spellings. */
enum sm_opts_result sm_opts_parse(struct sm_opts *o, int argc, char **argv, FILE *out);
void sm_opts_help(FILE *out);

#endif
