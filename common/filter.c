/*
 * rsync's pattern rules, reimplemented:
 *   - a pattern with none of "*?[" is a literal (a backslash in it is literal);
 *   - in a wildcard pattern "\x" is x, '?' and "[...]" match one byte but
 *     never '/', '*' matches a run without '/', and any longer run of stars
 *     matches anything including '/';
 *   - a trailing '/' restricts the rule to directories; a leading '/' anchors
 *     it at the transfer root;
 *   - a pattern with no '/' and no "**" is matched against the last path
 *     component; an unanchored one with an infix '/' and no "**" against the
 *     last (slashes + 1) components; an unanchored one with "**" (not at its
 *     start) at the start or after any '/'; "**" at its start may also match
 *     the start of the path; "dir/" followed by three stars also matches the directory itself.
 */
#include "filter.h"

#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

enum tok_kind { T_LIT, T_ANY, T_CLASS, T_STAR, T_STAR2 };

struct tok {
	uint8_t kind;
	uint8_t lit;
	uint16_t cls; /* index into the rule's classes */
};

struct cls {
	uint64_t bits[4];
};

struct sm_rule {
	char *text; /* as given, for messages */
	bool include;
	bool wild;
	bool wild2;
	bool wild2_prefix;
	bool wild3_suffix;
	bool dir_only;
	bool anchored;
	int slash_cnt;
	char *lit; /* literal rules: the pattern without its leading '/' */
	size_t lit_len;
	struct tok *toks;
	size_t ntok;
	struct cls *classes;
	size_t ncls;
};

static void cls_set(struct cls *c, unsigned ch)
{
	c->bits[ch >> 6] |= 1ull << (ch & 63);
}

static bool cls_has(const struct cls *c, unsigned ch)
{
	return c->bits[ch >> 6] >> (ch & 63) & 1;
}

static bool cls_named(const char *name, size_t n, struct cls *c)
{
	static const struct {
		const char *name;
		int (*fn)(int);
	} named[] = {
		{ "alnum", isalnum }, { "alpha", isalpha }, { "blank", isblank },
		{ "cntrl", iscntrl }, { "digit", isdigit }, { "graph", isgraph },
		{ "lower", islower }, { "print", isprint }, { "punct", ispunct },
		{ "space", isspace }, { "upper", isupper }, { "xdigit", isxdigit },
	};
	for (size_t i = 0; i < sizeof(named) / sizeof(named[0]); i++) {
		if (strlen(named[i].name) != n || memcmp(named[i].name, name, n) != 0)
			continue;
		for (unsigned ch = 1; ch < 128; ch++)
			if (named[i].fn((int)ch))
				cls_set(c, ch);
		return true;
	}
	return false;
}

/* Parse "[...]" starting at p (just after '['); returns the byte after ']'
 * or NULL when malformed. */
static const char *parse_class(const char *p, struct cls *c, const char **why)
{
	bool neg = false;
	if (*p == '!' || *p == '^') {
		neg = true;
		p++;
	}
	unsigned prev = 0;
	bool have_prev = false;
	bool first = true;
	memset(c, 0, sizeof(*c));
	for (;;) {
		unsigned char ch = (unsigned char)*p;
		if (!ch) {
			*why = "unterminated character class";
			return NULL;
		}
		if (ch == ']' && !first)
			break;
		first = false;
		if (ch == '\\') {
			ch = (unsigned char)*++p;
			if (!ch) {
				*why = "trailing backslash in character class";
				return NULL;
			}
			cls_set(c, ch);
			prev = ch;
			have_prev = true;
		} else if (ch == '-' && have_prev && p[1] && p[1] != ']') {
			unsigned char hi = (unsigned char)*++p;
			if (hi == '\\') {
				hi = (unsigned char)*++p;
				if (!hi) {
					*why = "trailing backslash in character class";
					return NULL;
				}
			}
			for (unsigned x = prev; x <= hi; x++)
				cls_set(c, x);
			have_prev = false;
		} else if (ch == '[' && p[1] == ':') {
			const char *s = p + 2;
			const char *e = strstr(s, ":]");
			const char *close = strchr(s, ']');
			if (e && close && e + 1 == close) {
				if (!cls_named(s, (size_t)(e - s), c)) {
					*why = "unknown [:class:] in character class";
					return NULL;
				}
				p = e + 1;
				have_prev = false;
			} else {
				cls_set(c, '[');
				prev = '[';
				have_prev = true;
			}
		} else {
			cls_set(c, ch);
			prev = ch;
			have_prev = true;
		}
		p++;
	}
	if (neg)
		for (int i = 0; i < 4; i++)
			c->bits[i] = ~c->bits[i];
	/* A class never matches '/' (nor NUL, which keys cannot hold). */
	c->bits['/' >> 6] &= ~(1ull << ('/' & 63));
	c->bits[0] &= ~1ull;
	return p + 1;
}

static void rule_free(struct sm_rule *r)
{
	free(r->text);
	free(r->lit);
	free(r->toks);
	free(r->classes);
}

static enum sm_err rule_compile(struct sm_rule *r, const char *pattern, bool include,
                                struct sm_diag *d)
{
	const char *kind = include ? "--include" : "--exclude";
	size_t len = strlen(pattern);
	memset(r, 0, sizeof(*r));
	if (len == 0)
		return sm_diag_set(d, SM_EINVAL, 0, "%s '': empty pattern", kind);
	if (len > SM_PATTERN_MAX)
		return sm_diag_set(d, SM_EINVAL, 0, "%s '%.40s...': pattern too long", kind,
		                   pattern);
	r->include = include;
	r->text = strdup(pattern);
	char *pat = sm_strndup(pattern, len);
	if (!r->text || !pat) {
		free(pat);
		return sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
	}
	if (len > 1 && pat[len - 1] == '/') {
		pat[--len] = '\0';
		r->dir_only = true;
	}
	r->wild = strpbrk(pat, "*?[") != NULL;
	r->wild2 = strstr(pat, "**") != NULL;
	r->wild2_prefix = pat[0] == '*' && pat[1] == '*';
	r->wild3_suffix = len >= 4 && strcmp(pat + len - 4, "/***") == 0;
	for (const char *s = pat; (s = strchr(s, '/')); s++)
		r->slash_cnt++;
	r->anchored = pat[0] == '/';
	const char *body = pat + r->anchored;
	enum sm_err err = SM_OK;
	if (!r->wild) {
		r->lit = strdup(body);
		r->lit_len = strlen(body);
		if (!r->lit)
			err = sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
		goto out;
	}
	r->toks = calloc(strlen(body) + 1, sizeof(*r->toks));
	r->classes = calloc(strlen(body) / 2 + 1, sizeof(*r->classes));
	if (!r->toks || !r->classes) {
		err = sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
		goto out;
	}
	for (const char *p = body; *p;) {
		struct tok t = { 0 };
		if (*p == '*') {
			size_t n = 0;
			while (p[n] == '*')
				n++;
			t.kind = n >= 2 ? T_STAR2 : T_STAR;
			p += n;
		} else if (*p == '?') {
			t.kind = T_ANY;
			p++;
		} else if (*p == '[') {
			const char *why = NULL;
			const char *e = parse_class(p + 1, &r->classes[r->ncls], &why);
			if (!e) {
				err = sm_diag_set(d, SM_EINVAL, 0, "%s '%s': %s", kind, pattern,
				                  why);
				goto out;
			}
			t.kind = T_CLASS;
			t.cls = (uint16_t)r->ncls++;
			p = e;
		} else if (*p == '\\') {
			if (!p[1]) {
				err = sm_diag_set(d, SM_EINVAL, 0, "%s '%s': trailing backslash",
				                  kind, pattern);
				goto out;
			}
			t.kind = T_LIT;
			t.lit = (uint8_t)p[1];
			p += 2;
		} else {
			t.kind = T_LIT;
			t.lit = (uint8_t)*p++;
		}
		r->toks[r->ntok++] = t;
	}
out:
	free(pat);
	if (err != SM_OK)
		rule_free(r);
	return err;
}

/* ---- the NFA ---- */

#define NFA_WORDS ((SM_PATTERN_MAX + 1 + 63) / 64)

struct nfa_set {
	uint64_t w[NFA_WORDS];
};

static void nfa_add(struct nfa_set *s, size_t i)
{
	s->w[i >> 6] |= 1ull << (i & 63);
}

static bool nfa_has(const struct nfa_set *s, size_t i)
{
	return s->w[i >> 6] >> (i & 63) & 1;
}

/* Stars may match nothing: a state before a star also stands after it. */
static void nfa_close(const struct sm_rule *r, struct nfa_set *s)
{
	for (size_t i = 0; i < r->ntok; i++)
		if (nfa_has(s, i) && (r->toks[i].kind == T_STAR || r->toks[i].kind == T_STAR2))
			nfa_add(s, i + 1);
}

/*
 * Does the rule's pattern match text[0..n) (restart: also any suffix that
 * starts right after a '/')?
 */
static bool nfa_match(const struct sm_rule *r, const char *text, size_t n, bool restart)
{
	size_t words = (r->ntok + 1 + 63) / 64;
	struct nfa_set cur, next;
	memset(&cur, 0, sizeof(uint64_t) * words);
	nfa_add(&cur, 0);
	nfa_close(r, &cur);
	for (size_t k = 0; k < n; k++) {
		unsigned char c = (unsigned char)text[k];
		memset(&next, 0, sizeof(uint64_t) * words);
		bool any = false;
		for (size_t w = 0; w < words; w++) {
			uint64_t bits = cur.w[w];
			while (bits) {
				size_t i = w * 64 + (size_t)__builtin_ctzll(bits);
				bits &= bits - 1;
				if (i >= r->ntok)
					continue;
				const struct tok *t = &r->toks[i];
				switch (t->kind) {
				case T_LIT:
					if (c == t->lit)
						nfa_add(&next, i + 1), any = true;
					break;
				case T_ANY:
					if (c != '/')
						nfa_add(&next, i + 1), any = true;
					break;
				case T_CLASS:
					if (cls_has(&r->classes[t->cls], c))
						nfa_add(&next, i + 1), any = true;
					break;
				case T_STAR:
					if (c != '/')
						nfa_add(&next, i), any = true;
					break;
				case T_STAR2: nfa_add(&next, i), any = true; break;
				}
			}
		}
		if (restart && c == '/') {
			nfa_add(&next, 0);
			any = true;
		}
		if (!any && !restart)
			return false; /* dead, and no '/' can restart the match */
		nfa_close(r, &next);
		memcpy(&cur, &next, sizeof(uint64_t) * words);
	}
	return nfa_has(&cur, r->ntok);
}

/* Start of the last `count` '/'-separated elements of text[0..n), or -1 when
 * it has fewer (rsync's trailing_N_elements). */
static long trailing_elements(const char *text, size_t n, int count)
{
	for (size_t i = n; i-- > 0;)
		if (text[i] == '/' && !--count)
			return (long)i + 1;
	return count == 1 ? 0 : -1;
}

bool sm_rule_matches(const struct sm_rule *r, const char *path, size_t len, bool is_dir)
{
	if (len == 0)
		return false;
	if (r->dir_only && !is_dir)
		return false;
	const char *name = path;
	size_t nlen = len;
	if (!r->slash_cnt && !r->wild2) {
		/* no '/' and no "**": the last component only */
		const char *slash = memrchr(path, '/', len);
		if (slash) {
			name = slash + 1;
			nlen = len - (size_t)(name - path);
		}
	}
	if (!r->wild) {
		if (r->anchored)
			return nlen == r->lit_len && memcmp(name, r->lit, nlen) == 0;
		return r->lit_len <= nlen &&
		       memcmp(name + nlen - r->lit_len, r->lit, r->lit_len) == 0 &&
		       (nlen == r->lit_len || name[nlen - r->lit_len - 1] == '/');
	}
	/* Wildcards: match the virtual string ["/"] name ["/"]. */
	char buf[PATH_MAX + 4];
	size_t n = 0;
	if (nlen > PATH_MAX)
		return false;
	if (r->wild2_prefix)
		buf[n++] = '/';
	memcpy(buf + n, name, nlen);
	n += nlen;
	if (is_dir && r->wild3_suffix)
		buf[n++] = '/';
	if (!r->anchored && r->slash_cnt && !r->wild2) {
		long start = trailing_elements(buf, n, r->slash_cnt + 1);
		if (start < 0)
			return false;
		return nfa_match(r, buf + start, n - (size_t)start, false);
	}
	bool restart = !r->anchored && !r->wild2_prefix && r->wild2;
	return nfa_match(r, buf, n, restart);
}

/* ---- rule lists ---- */

void sm_filter_init(struct sm_filter *f)
{
	memset(f, 0, sizeof(*f));
}

void sm_filter_release(struct sm_filter *f)
{
	for (size_t i = 0; i < f->n; i++)
		rule_free(&f->rules[i]);
	free(f->rules);
	memset(f, 0, sizeof(*f));
}

enum sm_err sm_filter_add(struct sm_filter *f, const char *pattern, bool include, struct sm_diag *d)
{
	if (f->n == f->cap) {
		size_t cap = f->cap ? f->cap * 2 : 8;
		struct sm_rule *nr = realloc(f->rules, cap * sizeof(*nr));
		if (!nr)
			return sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
		f->rules = nr;
		f->cap = cap;
	}
	enum sm_err err = rule_compile(&f->rules[f->n], pattern, include, d);
	if (err != SM_OK)
		return err;
	f->n++;
	if (!include)
		f->has_exclude = true;
	return SM_OK;
}

bool sm_filter_active(const struct sm_filter *f)
{
	return f->n > 0;
}

void sm_filter_explain(const struct sm_filter *f, const char *key, const struct sm_filter_why *why,
                       char *buf, size_t n)
{
	if (why->rule < 0) {
		snprintf(buf, n, "no rule matched");
		return;
	}
	const char *mode = f->full_path ? "full path" : "level";
	snprintf(buf, n, "--%s '%s' at %s '%.*s%s'", why->include ? "include" : "exclude",
	         f->rules[why->rule].text, mode, (int)why->level_len, key,
	         why->level_len < strlen(key) ? "/" : "");
}

const char *sm_filter_pattern(const struct sm_filter *f, int i)
{
	return i >= 0 && (size_t)i < f->n ? f->rules[i].text : "";
}

const char *sm_filter_rule(const struct sm_filter *f, size_t i, bool *include)
{
	*include = f->rules[i].include;
	return f->rules[i].text;
}

/* The first rule matching path[0..len) decides: 1 include, 0 exclude, -1 none. */
static int filter_first(const struct sm_filter *f, const char *path, size_t len, bool is_dir,
                        int *rule)
{
	for (size_t i = 0; i < f->n; i++) {
		if (sm_rule_matches(&f->rules[i], path, len, is_dir)) {
			*rule = (int)i;
			return f->rules[i].include;
		}
	}
	*rule = -1;
	return -1;
}

bool sm_filter_keep(const struct sm_filter *f, const char *key, struct sm_filter_why *why)
{
	struct sm_filter_why w = { .rule = -1, .include = true };
	size_t len = strlen(key);
	bool is_dir = len > 0 && key[len - 1] == '/';
	if (is_dir)
		len--;
	bool keep = true;
	if (f->n == 0) {
		/* nothing to decide */
	} else if (f->full_path) {
		int rule;
		int r = filter_first(f, key, len, is_dir, &rule);
		if (r >= 0) {
			w = (struct sm_filter_why){ .rule = rule, .include = r, .level_len = len };
			keep = r;
		}
	} else {
		/* Layer by layer: each ancestor directory, then the key itself; an
		 * exclude at any level excludes, an include ends that level. */
		for (size_t end = 0; end <= len; end++) {
			if (end < len && key[end] != '/')
				continue;
			bool level_dir = end < len || is_dir;
			int rule;
			int r = filter_first(f, key, end, level_dir, &rule);
			if (r < 0)
				continue;
			w = (struct sm_filter_why){ .rule = rule, .include = r, .level_len = end };
			if (!r) {
				keep = false;
				break;
			}
		}
	}
	if (why)
		*why = w;
	return keep;
}
