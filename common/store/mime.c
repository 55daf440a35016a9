#include "mime.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MIME_FILE "/etc/mime.types"
#define MIME_DEFAULT "binary/octet-stream"
#define MIME_FILE_MAX (1u << 20) /* bytes of the table read at most */
#define MIME_EXT_MAX 32

struct mime_ext {
	char ext[MIME_EXT_MAX];
	const char *type; /* into mime_types */
};

static pthread_once_t mime_once = PTHREAD_ONCE_INIT;
static char *mime_types;        /* the file's text, types NUL-terminated in place */
static struct mime_ext *mime_v; /* sorted by ext (case-insensitive) */
static size_t mime_n;

static int mime_cmp(const void *a, const void *b)
{
	return strcasecmp(((const struct mime_ext *)a)->ext, ((const struct mime_ext *)b)->ext);
}

/* The next blank-separated word at *p, NUL-terminated in place; NULL at
 * the end of the line. */
static char *mime_word(char **p)
{
	char *s = *p;
	while (*s == ' ' || *s == '\t' || *s == '\r')
		s++;
	if (!*s)
		return NULL;
	char *w = s;
	while (*s && *s != ' ' && *s != '\t' && *s != '\r')
		s++;
	if (*s)
		*s++ = '\0';
	*p = s;
	return w;
}

/* "type ext1 ext2 ..." lines; '#' starts a comment. A table that cannot be
 * read leaves every name with the default. */
static void mime_load(void)
{
	FILE *f = fopen(MIME_FILE, "re");
	if (!f)
		return;
	char *text = malloc(MIME_FILE_MAX + 1);
	size_t len = text ? fread(text, 1, MIME_FILE_MAX, f) : 0;
	fclose(f);
	if (!text)
		return;
	text[len] = '\0';
	size_t cap = 0;
	for (char *line = text, *next; line && *line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		char *hash = strchr(line, '#');
		if (hash)
			*hash = '\0';
		char *cur = line;
		char *type = mime_word(&cur);
		if (!type || !strchr(type, '/'))
			continue;
		for (char *ext = mime_word(&cur); ext; ext = mime_word(&cur)) {
			if (strlen(ext) >= MIME_EXT_MAX)
				continue;
			if (mime_n == cap) {
				size_t ncap = cap ? cap * 2 : 1024;
				struct mime_ext *nv = realloc(mime_v, ncap * sizeof(*nv));
				if (!nv)
					goto out;
				mime_v = nv;
				cap = ncap;
			}
			snprintf(mime_v[mime_n].ext, MIME_EXT_MAX, "%s", ext);
			mime_v[mime_n++].type = type;
		}
	}
out:
	if (mime_n)
		qsort(mime_v, mime_n, sizeof(*mime_v), mime_cmp);
	mime_types = text; /* kept for the process: the types point into it */
}

const char *sm_mime_type(const char *key)
{
	const char *base = strrchr(key, '/');
	base = base ? base + 1 : key;
	const char *dot = strrchr(base, '.');
	if (!dot || dot == base || !dot[1] || strlen(dot + 1) >= MIME_EXT_MAX)
		return MIME_DEFAULT;
	pthread_once(&mime_once, mime_load);
	struct mime_ext want;
	snprintf(want.ext, sizeof(want.ext), "%s", dot + 1);
	const struct mime_ext *hit =
	        mime_n ? bsearch(&want, mime_v, mime_n, sizeof(*mime_v), mime_cmp) : NULL;
	return hit ? hit->type : MIME_DEFAULT;
}
