#include "xml.h"

#include <expat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../select.h"
#include "../util.h"

struct sm_xml {
	XML_Parser p;
	sm_xml_fn fn;
	void *arg;
	size_t max_bytes;
	size_t fed;
	char path[1024];
	size_t plen[SM_XML_MAX_DEPTH + 1]; /* path length at each depth */
	int depth;
	struct sm_buf text;
	bool stopped;
	const char *why; /* a cap that was hit */
};

/* The local part of "ns:Name". */
static const char *xml_local(const char *name)
{
	const char *c = strrchr(name, ':');
	return c ? c + 1 : name;
}

static void XMLCALL xml_start(void *ud, const XML_Char *name, const XML_Char **attrs)
{
	(void)attrs; /* xmlns and friends: not needed */
	struct sm_xml *x = ud;
	if (x->stopped)
		return;
	const char *local = xml_local(name);
	size_t cur = x->depth ? x->plen[x->depth] : 0;
	size_t add = strlen(local) + (x->depth ? 1 : 0);
	if (x->depth >= SM_XML_MAX_DEPTH || cur + add + 1 > sizeof(x->path)) {
		x->why = "XML nested too deep";
		x->stopped = true;
		XML_StopParser(x->p, XML_FALSE);
		return;
	}
	if (x->depth)
		x->path[cur++] = '/';
	memcpy(x->path + cur, local, strlen(local) + 1);
	x->depth++;
	x->plen[x->depth] = cur + strlen(local);
	x->text.len = 0;
	if (!x->fn(x->arg, x->path, true, "", 0)) {
		x->stopped = true;
		XML_StopParser(x->p, XML_FALSE);
	}
}

static void XMLCALL xml_end(void *ud, const XML_Char *name)
{
	(void)name;
	struct sm_xml *x = ud;
	if (x->stopped || x->depth == 0)
		return;
	if (sm_buf_append(&x->text, "", 0) != SM_OK) {
		x->why = "out of memory";
		x->stopped = true;
		XML_StopParser(x->p, XML_FALSE);
		return;
	}
	x->path[x->plen[x->depth]] = '\0';
	if (!x->fn(x->arg, x->path, false, x->text.p, x->text.len)) {
		x->stopped = true;
		XML_StopParser(x->p, XML_FALSE);
	}
	x->text.len = 0;
	x->depth--;
	x->path[x->depth ? x->plen[x->depth] : 0] = '\0';
}

static void XMLCALL xml_chars(void *ud, const XML_Char *s, int len)
{
	struct sm_xml *x = ud;
	if (x->stopped)
		return;
	if (sm_buf_append(&x->text, s, (size_t)len) != SM_OK) {
		x->why = "XML element text too long";
		x->stopped = true;
		XML_StopParser(x->p, XML_FALSE);
	}
}

enum sm_err sm_xml_new(sm_xml_fn fn, void *arg, size_t max_bytes, struct sm_xml **out,
                       struct sm_diag *d)
{
	struct sm_xml *x = calloc(1, sizeof(*x));
	if (!x)
		return sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
	x->p = XML_ParserCreate("UTF-8");
	if (!x->p) {
		free(x);
		return sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
	}
	x->fn = fn;
	x->arg = arg;
	x->max_bytes = max_bytes ? max_bytes : (64u << 20);
	x->text.limit = SM_XML_MAX_TEXT;
	XML_SetUserData(x->p, x);
	XML_SetElementHandler(x->p, xml_start, xml_end);
	XML_SetCharacterDataHandler(x->p, xml_chars);
	*out = x;
	return SM_OK;
}

enum sm_err sm_xml_feed(struct sm_xml *x, const void *data, size_t len, bool final,
                        struct sm_diag *d)
{
	if (x->stopped)
		return sm_diag_set(d, SM_EIO, 0, "%s", x->why ? x->why : "XML parsing stopped");
	if (len > x->max_bytes - x->fed)
		return sm_diag_set(d, SM_EIO, 0, "XML reply larger than %zu bytes", x->max_bytes);
	x->fed += len;
	if (XML_Parse(x->p, data, (int)len, final) != XML_STATUS_OK) {
		if (x->stopped && !x->why)
			return sm_diag_set(d, SM_EIO, 0, "XML parsing stopped");
		if (x->why)
			return sm_diag_set(d, SM_EIO, 0, "%s", x->why);
		return sm_diag_set(d, SM_EIO, 0, "malformed XML at line %lu: %s",
		                   (unsigned long)XML_GetCurrentLineNumber(x->p),
		                   XML_ErrorString(XML_GetErrorCode(x->p)));
	}
	return SM_OK;
}

void sm_xml_free(struct sm_xml *x)
{
	if (!x)
		return;
	XML_ParserFree(x->p);
	sm_buf_release(&x->text);
	free(x);
}

bool sm_url_decode(char *s)
{
	char *w = s;
	for (const char *r = s; *r; r++) {
		if (*r != '%') {
			*w++ = *r == '+' ? ' ' : *r;
			continue;
		}
		int hi = r[1], lo = hi ? r[2] : 0;
		int h = hi >= '0' && hi <= '9'                 ? hi - '0'
		        : (hi | 32) >= 'a' && (hi | 32) <= 'f' ? (hi | 32) - 'a' + 10
		                                               : -1;
		int l = lo >= '0' && lo <= '9'                 ? lo - '0'
		        : (lo | 32) >= 'a' && (lo | 32) <= 'f' ? (lo | 32) - 'a' + 10
		                                               : -1;
		if (h < 0 || l < 0 || (h == 0 && l == 0))
			return false; /* bad escape, or a NUL byte */
		*w++ = (char)(h * 16 + l);
		r += 2;
	}
	*w = '\0';
	return true;
}

/* ---- ListObjectsV2 ---- */

struct list_ctx {
	struct sm_s3_list_page *page;
	const char *err;
};

static bool list_cb(void *arg, const char *path, bool start, const char *text, size_t len)
{
	(void)len;
	struct list_ctx *lc = arg;
	struct sm_s3_list_page *pg = lc->page;
	if (strcmp(path, "ListBucketResult/Contents") == 0 && start) {
		if (pg->n == pg->cap) {
			size_t cap = pg->cap ? pg->cap * 2 : 64;
			struct sm_s3_object *no = realloc(pg->objs, cap * sizeof(*no));
			if (!no) {
				lc->err = "out of memory";
				return false;
			}
			pg->objs = no;
			pg->cap = cap;
		}
		pg->objs[pg->n++] = (struct sm_s3_object){ 0 };
		return true;
	}
	if (start)
		return true;
	struct sm_s3_object *o = pg->n ? &pg->objs[pg->n - 1] : NULL;
	if (strcmp(path, "ListBucketResult/Contents/Key") == 0 && o) {
		free(o->key);
		if (!(o->key = strdup(text)))
			lc->err = "out of memory";
	} else if (strcmp(path, "ListBucketResult/Contents/Size") == 0 && o) {
		int64_t v;
		if (!sm_parse_i64(text, 0, INT64_MAX, &v))
			lc->err = "bad <Size> in a listing";
		else
			o->size = (uint64_t)v;
	} else if (strcmp(path, "ListBucketResult/Contents/LastModified") == 0 && o) {
		if (!sm_parse_time(text, &o->mtime_ns)) /* RFC 3339, as --start-time */
			lc->err = "bad <LastModified> in a listing";
	} else if (strcmp(path, "ListBucketResult/Contents/ETag") == 0 && o) {
		sm_strlcpy(o->etag, text, sizeof(o->etag));
	} else if (strcmp(path, "ListBucketResult/CommonPrefixes/Prefix") == 0) {
		if (pg->n_prefixes == pg->cap_prefixes) {
			size_t cap = pg->cap_prefixes ? pg->cap_prefixes * 2 : 16;
			char **np = realloc(pg->prefixes, cap * sizeof(*np));
			if (!np) {
				lc->err = "out of memory";
				return false;
			}
			pg->prefixes = np;
			pg->cap_prefixes = cap;
		}
		if (!(pg->prefixes[pg->n_prefixes] = strdup(text)))
			lc->err = "out of memory";
		else
			pg->n_prefixes++;
	} else if (strcmp(path, "ListBucketResult/IsTruncated") == 0) {
		pg->truncated = strcmp(text, "true") == 0;
	} else if (strcmp(path, "ListBucketResult/NextContinuationToken") == 0) {
		free(pg->next_token);
		if (!(pg->next_token = strdup(text)))
			lc->err = "out of memory";
	} else if (strcmp(path, "ListBucketResult/EncodingType") == 0) {
		pg->url_encoded = strcmp(text, "url") == 0;
	}
	return lc->err == NULL;
}

void sm_s3_list_page_release(struct sm_s3_list_page *page)
{
	for (size_t i = 0; i < page->n; i++)
		free(page->objs[i].key);
	for (size_t i = 0; i < page->n_prefixes; i++)
		free(page->prefixes[i]);
	free(page->objs);
	free(page->prefixes);
	free(page->next_token);
	memset(page, 0, sizeof(*page));
}

enum sm_err sm_s3_parse_list(const void *body, size_t len, struct sm_s3_list_page *page,
                             struct sm_diag *d)
{
	memset(page, 0, sizeof(*page));
	struct list_ctx lc = { .page = page };
	struct sm_xml *x = NULL;
	enum sm_err err = sm_xml_new(list_cb, &lc, 0, &x, d);
	if (err != SM_OK)
		return err;
	err = sm_xml_feed(x, body, len, true, d);
	sm_xml_free(x);
	if (lc.err)
		err = sm_diag_set(d, SM_EIO, 0, "%s", lc.err);
	for (size_t i = 0; err == SM_OK && i < page->n; i++) {
		if (!page->objs[i].key)
			err = sm_diag_set(d, SM_EIO, 0, "a listed object without <Key>");
		else if (page->url_encoded && !sm_url_decode(page->objs[i].key))
			err = sm_diag_set(d, SM_EIO, 0, "bad escape in listed key '%s'",
			                  page->objs[i].key);
	}
	for (size_t i = 0; err == SM_OK && page->url_encoded && i < page->n_prefixes; i++)
		if (!sm_url_decode(page->prefixes[i]))
			err = sm_diag_set(d, SM_EIO, 0, "bad escape in listed prefix");
	if (err == SM_OK && page->truncated && !page->next_token)
		err = sm_diag_set(d, SM_EIO, 0, "truncated listing without a continuation token");
	if (err != SM_OK)
		sm_s3_list_page_release(page);
	return err;
}

/* ---- <Error> ---- */

static bool error_cb(void *arg, const char *path, bool start, const char *text, size_t len)
{
	(void)len;
	struct sm_s3_error *e = arg;
	if (start)
		return true;
	if (strcmp(path, "Error/Code") == 0)
		sm_strlcpy(e->code, text, sizeof(e->code));
	else if (strcmp(path, "Error/Message") == 0)
		sm_strlcpy(e->message, text, sizeof(e->message));
	return true;
}

bool sm_s3_parse_error(const void *body, size_t len, struct sm_s3_error *e)
{
	memset(e, 0, sizeof(*e));
	struct sm_xml *x = NULL;
	if (sm_xml_new(error_cb, e, 1u << 20, &x, NULL) != SM_OK)
		return false;
	bool ok = sm_xml_feed(x, body, len, true, NULL) == SM_OK;
	sm_xml_free(x);
	return ok && e->code[0];
}

/* ---- DeleteObjects: <DeleteResult> ---- */

struct delete_ctx {
	sm_s3_delete_fn fn;
	void *arg;
	struct sm_s3_error e;
	char *key;
	bool in_error;
	bool stopped;
	bool root; /* a <DeleteResult> came */
};

static bool delete_cb(void *arg, const char *path, bool start, const char *text, size_t len)
{
	(void)len;
	struct delete_ctx *dc = arg;
	if (start && strcmp(path, "DeleteResult") == 0)
		dc->root = true;
	if (strcmp(path, "DeleteResult/Error") == 0) {
		if (start) {
			dc->in_error = true;
			memset(&dc->e, 0, sizeof(dc->e));
			free(dc->key);
			dc->key = NULL;
			return true;
		}
		dc->in_error = false;
		if (dc->key && !dc->fn(dc->arg, dc->key, &dc->e)) {
			dc->stopped = true;
			return false;
		}
		return true;
	}
	if (start || !dc->in_error)
		return true;
	if (strcmp(path, "DeleteResult/Error/Key") == 0) {
		free(dc->key);
		dc->key = strdup(text);
		return dc->key != NULL;
	}
	if (strcmp(path, "DeleteResult/Error/Code") == 0)
		sm_strlcpy(dc->e.code, text, sizeof(dc->e.code));
	else if (strcmp(path, "DeleteResult/Error/Message") == 0)
		sm_strlcpy(dc->e.message, text, sizeof(dc->e.message));
	return true;
}

enum sm_err sm_s3_parse_delete(const void *body, size_t len, sm_s3_delete_fn fn, void *arg,
                               struct sm_diag *d)
{
	struct delete_ctx dc = { .fn = fn, .arg = arg };
	struct sm_xml *x = NULL;
	enum sm_err err = sm_xml_new(delete_cb, &dc, 0, &x, d);
	if (err != SM_OK)
		return err;
	err = sm_xml_feed(x, body, len, true, d);
	sm_xml_free(x);
	free(dc.key);
	if (dc.stopped)
		err = sm_diag_set(d, SM_EIO, 0, "a DeleteObjects reply names a key not asked for");
	else if (err == SM_OK && !dc.root)
		err = sm_diag_set(d, SM_EIO, 0, "a DeleteObjects reply without <DeleteResult>");
	return err;
}

/* ---- ListMultipartUploads ---- */

struct uploads_ctx {
	sm_s3_upload_fn fn;
	void *arg;
	struct sm_s3_uploads_page *page;
	char *key;
	char upload_id[512];
	int64_t initiated;
	bool in_upload;
	bool stopped;
	bool root;
	const char *err;
};

static bool uploads_cb(void *arg, const char *path, bool start, const char *text, size_t len)
{
	(void)len;
	struct uploads_ctx *uc = arg;
	if (start && strcmp(path, "ListMultipartUploadsResult") == 0)
		uc->root = true;
	if (strcmp(path, "ListMultipartUploadsResult/Upload") == 0) {
		if (start) {
			uc->in_upload = true;
			free(uc->key);
			uc->key = NULL;
			uc->upload_id[0] = '\0';
			uc->initiated = 0;
			return true;
		}
		uc->in_upload = false;
		if (!uc->key || !uc->upload_id[0]) {
			uc->err = "an <Upload> without <Key> or <UploadId>";
			return false;
		}
		if (!uc->fn(uc->arg, uc->key, uc->upload_id, uc->initiated)) {
			uc->stopped = true;
			return false;
		}
		return true;
	}
	if (start)
		return true;
	if (uc->in_upload && strcmp(path, "ListMultipartUploadsResult/Upload/Key") == 0) {
		free(uc->key);
		uc->key = strdup(text);
		return uc->key != NULL;
	}
	if (uc->in_upload && strcmp(path, "ListMultipartUploadsResult/Upload/UploadId") == 0)
		sm_strlcpy(uc->upload_id, text, sizeof(uc->upload_id));
	else if (uc->in_upload &&
	         strcmp(path, "ListMultipartUploadsResult/Upload/Initiated") == 0 &&
	         !sm_parse_time(text, &uc->initiated))
		uc->err = "bad <Initiated> in an upload listing";
	else if (strcmp(path, "ListMultipartUploadsResult/IsTruncated") == 0)
		uc->page->truncated = strcmp(text, "true") == 0;
	else if (strcmp(path, "ListMultipartUploadsResult/NextKeyMarker") == 0)
		sm_strlcpy(uc->page->next_key, text, sizeof(uc->page->next_key));
	else if (strcmp(path, "ListMultipartUploadsResult/NextUploadIdMarker") == 0)
		sm_strlcpy(uc->page->next_upload, text, sizeof(uc->page->next_upload));
	return uc->err == NULL;
}

enum sm_err sm_s3_parse_uploads(const void *body, size_t len, sm_s3_upload_fn fn, void *arg,
                                struct sm_s3_uploads_page *page, struct sm_diag *d)
{
	memset(page, 0, sizeof(*page));
	struct uploads_ctx uc = { .fn = fn, .arg = arg, .page = page };
	struct sm_xml *x = NULL;
	enum sm_err err = sm_xml_new(uploads_cb, &uc, 0, &x, d);
	if (err != SM_OK)
		return err;
	err = sm_xml_feed(x, body, len, true, d);
	sm_xml_free(x);
	free(uc.key);
	if (uc.err)
		err = sm_diag_set(d, SM_EIO, 0, "%s", uc.err);
	else if (uc.stopped)
		err = sm_diag_set(d, SM_EIO, 0, "an upload listing was stopped");
	else if (err == SM_OK && !uc.root)
		err = sm_diag_set(d, SM_EIO, 0,
		                  "an upload listing without <ListMultipartUploadsResult>");
	return err;
}

enum sm_err sm_xml_escape(struct sm_buf *out, const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		const char *rep = NULL;
		switch (*p) {
		case '&': rep = "&amp;"; break;
		case '<': rep = "&lt;"; break;
		case '>': rep = "&gt;"; break;
		case '"': rep = "&quot;"; break;
		case '\'': rep = "&apos;"; break;
		case '\t': rep = "&#9;"; break;
		case '\n': rep = "&#10;"; break;
		case '\r': rep = "&#13;"; break; /* a parser would turn a raw one into \n */
		default:
			if (*p < 0x20)
				return SM_EINVAL; /* not expressible in XML 1.0 */
		}
		enum sm_err err = rep ? sm_buf_appendz(out, rep) : sm_buf_append(out, p, 1);
		if (err != SM_OK)
			return err;
	}
	return SM_OK;
}
