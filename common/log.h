/* Logging: one line per event on stderr, coordinated with the progress display. */
#ifndef SM_LOG_H
#define SM_LOG_H

enum sm_log_level {
	SM_LOG_QUIET = -1, /* -q: errors only */
	SM_LOG_ERROR = 0,
	SM_LOG_WARN = 1,
	SM_LOG_NOTICE = 2, /* default: progress lines off a TTY, summary */
	SM_LOG_INFO = 3,   /* -v */
	SM_LOG_DEBUG = 4   /* --debug */
};

extern int sm_log_threshold; /* messages at or below this level are written */

#define sm_log(level, ...)                                                       \
	do {                                                                     \
		if ((int)(level) <= sm_log_threshold || (level) == SM_LOG_ERROR) \
			sm_log_write((level), __VA_ARGS__);                      \
	} while (0)

void sm_log_write(enum sm_log_level level, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

/* Progress display hook: called under the log lock to clear the status line
 * before a log line is written, and to redraw it after. */
struct sm_log_hook {
	void (*clear)(void *arg);
	void (*redraw)(void *arg);
	void *arg;
};
void sm_log_set_hook(const struct sm_log_hook *hook);
void sm_log_lock(void);
void sm_log_unlock(void);

/*
 * Per-key errors: the same failure for many keys (a DST that refuses every
 * write) is written SM_LOG_REPEAT_SHOW times, then only counted, unless -v;
 * sm_log_repeat_flush() then writes "... and N more like: MSG" once per kind.
 * Two messages are of one kind when they are equal once each one's key is
 * replaced by "<key>".
 */
#define SM_LOG_REPEAT_SHOW 3
void sm_log_key_error(const char *key, const char *msg);
void sm_log_repeat_flush(void);

/*
 * A thread's lines elsewhere: a worker's task thread hands every line it
 * would print (sm_log, sm_log_key_error, sm_log_say) to its sink, which
 * sends them to the manager (worker/task.c); the manager prints them.
 * line(): `key` is set for a key's error (sm_log_key_error), `say` for a
 * --dry line (then `text` is the key); both borrowed for the call.
 */
struct sm_log_sink {
	void (*line)(void *arg, int level, const char *text, const char *key, const char *say);
	void *arg;
};
/* This thread's sink from now on (NULL: stderr and stdout again). */
void sm_log_set_thread_sink(const struct sm_log_sink *sink);

#include <stdio.h>
/* One "VERB KEY" line on stdout (--dry's plan), the key escaped. */
void sm_log_say(const char *verb, const char *key);
/* Send those lines to stderr instead (--json keeps stdout for the report). */
void sm_log_say_to_stderr(void);
/* Print `key` to `f` with control characters and backslashes escaped (\n, \t,
 * \\, \xHH), so one key stays one line. */
void sm_log_key(FILE *f, const char *key);

#endif
