#include "meta.h"

#include <string.h>
#include <strings.h>

/* The headers that are an object's metadata, besides x-amz-meta-*. */
static const char *const meta_headers[] = {
	"content-type",        "cache-control",    "content-encoding",
	"content-disposition", "content-language", "expires",
};

#define META_USER "x-amz-meta-"
#define META_USER_LEN (sizeof(META_USER) - 1)

void sm_meta_clear(struct sm_meta *m)
{
	m->n = 0;
	m->used = 0;
	m->lost = 0;
}

static bool meta_wanted(const char *name, size_t nlen)
{
	if (nlen > META_USER_LEN && strncasecmp(name, META_USER, META_USER_LEN) == 0)
		/* every copy writes its own mtime */
		return !(nlen == META_USER_LEN + 5 &&
		         strncasecmp(name + META_USER_LEN, "mtime", 5) == 0);
	for (size_t i = 0; i < sizeof(meta_headers) / sizeof(meta_headers[0]); i++)
		if (strlen(meta_headers[i]) == nlen &&
		    strncasecmp(name, meta_headers[i], nlen) == 0)
			return true;
	return false;
}

static bool meta_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

bool sm_meta_header(struct sm_meta *m, const char *name, size_t nlen, const char *value,
                    size_t vlen)
{
	while (nlen && meta_blank(name[nlen - 1]))
		nlen--;
	if (!meta_wanted(name, nlen))
		return false;
	while (vlen && meta_blank(*value)) {
		value++;
		vlen--;
	}
	while (vlen && meta_blank(value[vlen - 1]))
		vlen--;
	/* a name or value with a NUL or a line break could not be sent again */
	if (memchr(name, '\0', nlen) || memchr(value, '\0', vlen) || memchr(value, '\n', vlen) ||
	    memchr(value, '\r', vlen)) {
		m->lost++;
		return true;
	}
	for (size_t i = 0; i < m->n; i++) {
		const char *have = sm_meta_name(m, i);
		if (strlen(have) == nlen && strncasecmp(have, name, nlen) == 0)
			return true; /* the first of repeated headers */
	}
	if (m->n == SM_META_FIELDS || nlen + vlen + 2 > SM_META_TEXT - m->used) {
		m->lost++;
		return true;
	}
	char *t = m->text + m->used;
	for (size_t i = 0; i < nlen; i++)
		t[i] = (char)((name[i] >= 'A' && name[i] <= 'Z') ? name[i] - 'A' + 'a' : name[i]);
	t[nlen] = '\0';
	memcpy(t + nlen + 1, value, vlen);
	t[nlen + 1 + vlen] = '\0';
	m->name[m->n] = (uint16_t)m->used;
	m->value[m->n] = (uint16_t)(m->used + nlen + 1);
	m->n++;
	m->used += nlen + vlen + 2;
	return true;
}

const char *sm_meta_get(const struct sm_meta *m, const char *name)
{
	for (size_t i = 0; i < m->n; i++)
		if (strcmp(sm_meta_name(m, i), name) == 0)
			return sm_meta_value(m, i);
	return NULL;
}

const char *sm_meta_name(const struct sm_meta *m, size_t i)
{
	return m->text + m->name[i];
}

const char *sm_meta_value(const struct sm_meta *m, size_t i)
{
	return m->text + m->value[i];
}
