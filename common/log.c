#include "log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <unistd.h>

int sm_log_threshold = SM_LOG_NOTICE;

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static struct sm_log_hook log_hook;
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
	char line[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);

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

void sm_log_say(const char *verb, const char *key)
{
	sm_log_lock();
	if (log_stdout_tty && log_hook.clear)
		log_hook.clear(log_hook.arg);
	fputs(verb, stdout);
	fputc(' ', stdout);
	sm_log_key(stdout, key);
	fputc('\n', stdout);
	if (log_stdout_tty && log_hook.redraw) {
		fflush(stdout); /* before the status line comes back on stderr */
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
