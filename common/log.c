#include "log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int sm_log_threshold = SM_LOG_NOTICE;

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static _Thread_local const struct sm_log_sink *log_sink;

void sm_log_set_thread_sink(const struct sm_log_sink *sink)
{
	log_sink = sink;
}
static struct sm_log_hook log_hook;
static bool say_stderr; /* --json: stdout holds the report only */

void sm_log_say_to_stderr(void)
{
	pthread_mutex_lock(&log_mu);
	say_stderr = true;
	pthread_mutex_unlock(&log_mu);
}

/* The kinds of per-key errors seen (sm_log_key_error), a few dozen at most:
 * past that, every further kind is written in full. */
#define LOG_KINDS 64
struct log_kind {
	char *shape; /* the message with its key replaced by "<key>" */
	uint64_t n;
};
static struct log_kind log_kinds[LOG_KINDS];
static int log_nkinds;
static bool log_stdout_tty; /* stdout shares the terminal of the status line */

void sm_log_lock(void)
{
	pthread_mutex_lock(&log_mu);
}

void sm_log_unlock(void)
{
	pthread_mutex_unlock(&log_mu);
}

void sm_log_set_hook(const struct sm_log_hook *hook)
{
	bool tty = hook && isatty(STDOUT_FILENO);
	pthread_mutex_lock(&log_mu);
	if (hook)
		log_hook = *hook;
	else
		log_hook = (struct sm_log_hook){ 0 };
	log_stdout_tty = tty;
	pthread_mutex_unlock(&log_mu);
}

void sm_log_write(enum sm_log_level level, const char *fmt, ...)
{
	static const char *const prefix[] = { "error: ", "warning: ", "", "", "debug: " };
	const char *p = "";
	if (level >= SM_LOG_ERROR && level <= SM_LOG_DEBUG)
		p = prefix[level];
	char line[4096];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (log_sink) {
		log_sink->line(log_sink->arg, level, line, NULL, NULL);
		return;
	}

	pthread_mutex_lock(&log_mu);
	if (log_hook.clear)
		log_hook.clear(log_hook.arg);
	/* keys inside messages are peer data: escaped like sm_log_key, so a name
	 * can never send the terminal an escape sequence */
	fprintf(stderr, "syncmgr: %s", p);
	sm_log_key(stderr, line);
	fputc('\n', stderr);
	if (log_hook.redraw)
		log_hook.redraw(log_hook.arg);
	pthread_mutex_unlock(&log_mu);
}

/* `msg` with `key` replaced by "<key>" where it is quoted ('KEY', or a
 * path '/root/KEY'), malloc'd. */
static char *log_shape(const char *key, const char *msg)
{
	size_t kn = strlen(key), mn = strlen(msg), n = 0;
	char *out = malloc(mn + 1 + (kn ? (mn / kn + 1) * 5 : 0));
	if (!out)
		return NULL;
	for (const char *m = msg; *m;) {
		if (kn && (m == msg || m[-1] == '\'' || m[-1] == '/') && strncmp(m, key, kn) == 0 &&
		    m[kn] == '\'') {
			memcpy(out + n, "<key>", 5);
			n += 5;
			m += kn;
		} else {
			out[n++] = *m++;
		}
	}
	out[n] = '\0';
	return out;
}

void sm_log_key_error(const char *key, const char *msg)
{
	if (log_sink) { /* whoever prints it counts the repeats */
		log_sink->line(log_sink->arg, SM_LOG_ERROR, msg, key, NULL);
		return;
	}
	if (sm_log_threshold >= SM_LOG_INFO) {
		sm_log_write(SM_LOG_ERROR, "%s", msg);
		return;
	}
	char *shape = log_shape(key, msg);
	bool show = true;
	pthread_mutex_lock(&log_mu);
	if (shape) {
		int i = 0;
		while (i < log_nkinds && strcmp(log_kinds[i].shape, shape) != 0)
			i++;
		if (i == log_nkinds && log_nkinds < LOG_KINDS) {
			log_kinds[log_nkinds++] = (struct log_kind){ shape, 0 };
			shape = NULL;
		}
		if (i < log_nkinds)
			show = ++log_kinds[i].n <= SM_LOG_REPEAT_SHOW;
	}
	pthread_mutex_unlock(&log_mu);
	free(shape);
	if (show)
		sm_log_write(SM_LOG_ERROR, "%s", msg);
}

void sm_log_repeat_flush(void)
{
	pthread_mutex_lock(&log_mu);
	int n = log_nkinds;
	struct log_kind kinds[LOG_KINDS];
	memcpy(kinds, log_kinds, sizeof(kinds));
	log_nkinds = 0;
	pthread_mutex_unlock(&log_mu);
	for (int i = 0; i < n; i++) {
		if (kinds[i].n > SM_LOG_REPEAT_SHOW)
			sm_log_write(SM_LOG_ERROR, "... and %llu more like: %s",
			             (unsigned long long)(kinds[i].n - SM_LOG_REPEAT_SHOW),
			             kinds[i].shape);
		free(kinds[i].shape);
	}
}

void sm_log_say(const char *verb, const char *key)
{
	if (log_sink) {
		log_sink->line(log_sink->arg, SM_LOG_NOTICE, key, NULL, verb);
		return;
	}
	sm_log_lock();
	FILE *f = say_stderr ? stderr : stdout;
	/* the status line is on stderr: clear it first when the line goes to
	 * the same terminal */
	bool clear = say_stderr || log_stdout_tty;
	if (clear && log_hook.clear)
		log_hook.clear(log_hook.arg);
	fputs(verb, f);
	fputc(' ', f);
	sm_log_key(f, key);
	fputc('\n', f);
	if (clear && log_hook.redraw) {
		fflush(f); /* before the status line comes back on stderr */
		log_hook.redraw(log_hook.arg);
	}
	sm_log_unlock();
}

void sm_log_key(FILE *f, const char *key)
{
	for (const unsigned char *s = (const unsigned char *)key; *s; s++) {
		switch (*s) {
		case '\n': fputs("\\n", f); break;
		case '\t': fputs("\\t", f); break;
		case '\r': fputs("\\r", f); break;
		case '\\': fputs("\\\\", f); break;
		default:
			if (*s < 0x20 || *s == 0x7f)
				fprintf(f, "\\x%02x", *s);
			else
				fputc(*s, f);
		}
	}
}
