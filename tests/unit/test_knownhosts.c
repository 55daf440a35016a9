/* known_hosts lookups (deploy/knownhosts.c): the verdict for a server key
 * against entries of the same and of other key types, @revoked and
 * @cert-authority lines, hashed names, patterns with wildcards and
 * negations, the [host]:port form, several files, lines that do not parse;
 * and the line accept-new appends. Table-driven; files in a mkdtemp dir. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../deploy/knownhosts.h"

/* Two made-up ed25519 blobs and an RSA-typed one (the check compares
 * bytes; it never parses the key itself). */
static const unsigned char key_a[] = { 0,   0,   0,   11, 's', 's', 'h', '-', 'e', 'd', '2', '5',
	                               '5', '1', '9', 0,  0,   0,   4,   'A', 'A', 'A', 'A' };
static const unsigned char key_b[] = { 0,   0,   0,   11, 's', 's', 'h', '-', 'e', 'd', '2', '5',
	                               '5', '1', '9', 0,  0,   0,   4,   'B', 'B', 'B', 'B' };
static const unsigned char key_r[] = { 0,   0,   0, 7, 's', 's', 'h', '-', 'r',
	                               's', 'a', 0, 0, 0,   3,   1,   0,   1 };

static char g_dir[64];

static void b64(const unsigned char *p, size_t n, char *out)
{
	static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t o = 0;
	for (size_t i = 0; i < n; i += 3) {
		unsigned v = (unsigned)p[i] << 16 | (i + 1 < n ? (unsigned)p[i + 1] << 8 : 0) |
		             (i + 2 < n ? p[i + 2] : 0);
		out[o++] = t[v >> 18 & 63];
		out[o++] = t[v >> 12 & 63];
		out[o++] = i + 1 < n ? t[v >> 6 & 63] : '=';
		out[o++] = i + 2 < n ? t[v & 63] : '=';
	}
	out[o] = '\0';
}

#define A "@A@" /* replaced by key_a's "type base64" */
#define B "@B@"
#define R "@R@"

/* Write text to DIR/name with the @A@/@B@/@R@ placeholders filled in. */
static void write_file(const char *name, const char *text, char *path, size_t n)
{
	snprintf(path, n, "%s/%s", g_dir, name);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	char ka[128], kb[128], kr[128];
	b64(key_a, sizeof(key_a), ka);
	b64(key_b, sizeof(key_b), kb);
	b64(key_r, sizeof(key_r), kr);
	for (const char *p = text; *p;) {
		if (!strncmp(p, A, 3)) {
			fprintf(f, "ssh-ed25519 %s", ka);
			p += 3;
		} else if (!strncmp(p, B, 3)) {
			fprintf(f, "ssh-ed25519 %s", kb);
			p += 3;
		} else if (!strncmp(p, R, 3)) {
			fprintf(f, "ssh-rsa %s", kr);
			p += 3;
		} else {
			fputc(*p++, f);
		}
	}
	fclose(f);
}

static int setup(void **state)
{
	(void)state;
	snprintf(g_dir, sizeof(g_dir), "/tmp/test_knownhosts.XXXXXX");
	return mkdtemp(g_dir) ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_dir);
	return system(cmd) == 0 ? 0 : -1;
}

struct kh_case {
	const char *what;
	const char *file1; /* the user's file */
	const char *file2; /* a global one, or NULL */
	const char *name;
	const unsigned char *key;
	size_t keylen;
	enum sm_kh_status want;
	int want_line; /* of the line the verdict names (0: none) */
	int want_file; /* 1 or 2: which file it is in (0: none) */
};

static void test_verdicts(void **state)
{
	(void)state;
	static const struct kh_case cases[] = {
		{ "match", "host " A "\n", NULL, "host", key_a, sizeof(key_a), SM_KH_MATCH, 0, 0 },
		{ "unknown", "other " A "\n", NULL, "host", key_a, sizeof(key_a), SM_KH_UNKNOWN, 0,
		  0 },
		{ "empty file", "", NULL, "host", key_a, sizeof(key_a), SM_KH_UNKNOWN, 0, 0 },
		{ "changed, same type", "# c\n\nhost " B "\n", NULL, "host", key_a, sizeof(key_a),
		  SM_KH_CHANGED, 3, 1 },
		{ "changed: only another type known", "host " R "\n", NULL, "host", key_a,
		  sizeof(key_a), SM_KH_CHANGED, 1, 1 },
		{ "another type known besides a match", "host " R "\nhost " A "\n", NULL, "host",
		  key_a, sizeof(key_a), SM_KH_MATCH, 0, 0 },
		{ "revoked beats a match", "host " A "\n@revoked host " A "\n", NULL, "host", key_a,
		  sizeof(key_a), SM_KH_REVOKED, 2, 1 },
		{ "revoked with a wildcard", "@revoked * " A "\n", NULL, "host", key_a,
		  sizeof(key_a), SM_KH_REVOKED, 1, 1 },
		{ "revoked other key: no matter", "@revoked * " B "\nhost " A "\n", NULL, "host",
		  key_a, sizeof(key_a), SM_KH_MATCH, 0, 0 },
		{ "CA only", "@cert-authority *.example " B "\n", NULL, "h.example", key_a,
		  sizeof(key_a), SM_KH_CA_ONLY, 1, 1 },
		{ "CA and the host's own key", "@cert-authority * " B "\nh " A "\n", NULL, "h",
		  key_a, sizeof(key_a), SM_KH_MATCH, 0, 0 },
		{ "CA and another key: changed", "@cert-authority * " B "\nh " R "\n", NULL, "h",
		  key_a, sizeof(key_a), SM_KH_CHANGED, 2, 1 },
		{ "port form", "[host]:2222 " A "\n", NULL, "[host]:2222", key_a, sizeof(key_a),
		  SM_KH_MATCH, 0, 0 },
		{ "port 22 entry is not port 2222's", "host " B "\n", NULL, "[host]:2222", key_a,
		  sizeof(key_a), SM_KH_UNKNOWN, 0, 0 },
		{ "wildcard and list", "a,*.example,c " A "\n", NULL, "x.example", key_a,
		  sizeof(key_a), SM_KH_MATCH, 0, 0 },
		{ "case-insensitive", "HOST.Example " A "\n", NULL, "host.example", key_a,
		  sizeof(key_a), SM_KH_MATCH, 0, 0 },
		{ "negation rules the line out", "*.example,!bad.example " B "\n", NULL,
		  "bad.example", key_a, sizeof(key_a), SM_KH_UNKNOWN, 0, 0 },
		{ "unknown marker skipped", "@foo host " B "\n", NULL, "host", key_a, sizeof(key_a),
		  SM_KH_UNKNOWN, 0, 0 },
		{ "malformed lines skipped",
		  "host\nhost ssh-ed25519\nhost ssh-ed25519 !!!\nhost " A "\n", NULL, "host", key_a,
		  sizeof(key_a), SM_KH_MATCH, 0, 0 },
		{ "global file", "", "host " A "\n", "host", key_a, sizeof(key_a), SM_KH_MATCH, 0,
		  0 },
		{ "changed in the global file", "other " A "\n", "host " B "\n", "host", key_a,
		  sizeof(key_a), SM_KH_CHANGED, 1, 2 },
		{ "hashed (host)",
		  "|1|7ce9rwbXXzl6m0R0U9uGbYNzBUM=|y6nwkPCo6FZMfzgeUIXs3Te9VRs= " A "\n", NULL,
		  "host", key_a, sizeof(key_a), SM_KH_MATCH, 0, 0 },
		{ "hashed, another name",
		  "|1|7ce9rwbXXzl6m0R0U9uGbYNzBUM=|y6nwkPCo6FZMfzgeUIXs3Te9VRs= " B "\n", NULL,
		  "hostx", key_a, sizeof(key_a), SM_KH_UNKNOWN, 0, 0 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct kh_case *c = &cases[i];
		char p1[256], p2[256];
		write_file("kh1", c->file1, p1, sizeof(p1));
		write_file("kh2", c->file2 ? c->file2 : "", p2, sizeof(p2));
		const char *files[] = { p1, p2, "/nonexistent/known_hosts" };
		struct sm_kh_verdict v;
		sm_kh_check(files, 3, c->name, c->key, c->keylen, &v);
		if (v.status != c->want || v.line != c->want_line)
			fail_msg("%s: status %d line %d, want %d line %d", c->what, v.status,
			         v.line, c->want, c->want_line);
		if (c->want_file)
			assert_string_equal(v.file, c->want_file == 1 ? p1 : p2);
		else
			assert_string_equal(v.file, "");
	}
}

static void test_types(void **state)
{
	(void)state;
	char p1[256];
	write_file("kh1",
	           "host " R "\n[host]:22 " B "\nhost " A "\n@revoked host " R
	           "\nother ssh-dss AAAA\nhost ecdsa-sha2-nistp256 AAAA\n",
	           p1, sizeof(p1));
	const char *files[] = { p1 };
	char out[256];
	sm_kh_types(files, 1, "host", out, sizeof(out));
	assert_string_equal(out, "ssh-ed25519,ecdsa-sha2-nistp256"); /* the RSA key is revoked */
	write_file("kh1", "host " A "\nhost " R "\n@revoked * " A "\n", p1, sizeof(p1));
	sm_kh_types(files, 1, "host", out, sizeof(out));
	assert_string_equal(out, "ssh-rsa");
	sm_kh_types(files, 1, "nobody", out, sizeof(out));
	assert_string_equal(out, "");
}

static void test_names_and_lines(void **state)
{
	(void)state;
	char n[128];
	sm_kh_name("h.example", 22, n, sizeof(n));
	assert_string_equal(n, "h.example");
	sm_kh_name("10.0.0.1", 2222, n, sizeof(n));
	assert_string_equal(n, "[10.0.0.1]:2222");

	char line[512], path[256];
	assert_int_equal(
	        sm_kh_line("[h]:2222", key_a, sizeof(key_a), false, line, sizeof(line), NULL),
	        SM_OK);
	char ka[128], want[256];
	b64(key_a, sizeof(key_a), ka);
	snprintf(want, sizeof(want), "[h]:2222 ssh-ed25519 %s\n", ka);
	assert_string_equal(line, want);
	/* a hashed line is found again under its name only */
	assert_int_equal(
	        sm_kh_line("[h]:2222", key_a, sizeof(key_a), true, line, sizeof(line), NULL),
	        SM_OK);
	assert_true(strncmp(line, "|1|", 3) == 0);
	write_file("kh1", line, path, sizeof(path));
	const char *files[] = { path };
	struct sm_kh_verdict v;
	sm_kh_check(files, 1, "[h]:2222", key_a, sizeof(key_a), &v);
	assert_int_equal(v.status, SM_KH_MATCH);
	sm_kh_check(files, 1, "[h]:2223", key_a, sizeof(key_a), &v);
	assert_int_equal(v.status, SM_KH_UNKNOWN);
	/* a malformed blob, a buffer too small */
	assert_int_equal(sm_kh_line("h", key_a, 3, false, line, sizeof(line), NULL), SM_EINVAL);
	assert_int_equal(sm_kh_line("h", key_a, sizeof(key_a), false, line, 10, NULL), SM_EINVAL);
}

static void test_host_match(void **state)
{
	(void)state;
	static const struct {
		const char *pat, *name;
		bool want;
	} cases[] = {
		{ "a", "a", true },   { "a,b", "b", true },     { "a,b", "c", false },
		{ "*", "x", true },   { "!x,*", "x", false },   { "!x,*", "y", true },
		{ "!x", "y", false }, { "h?st", "host", true }, { "[h]:*", "[h]:99", true },
		{ "", "a", false },   { "a,,b", "b", true },    { "A", "a", true },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (sm_kh_host_match(cases[i].pat, strlen(cases[i].pat), cases[i].name) !=
		    cases[i].want)
			fail_msg("'%s' vs '%s': want %d", cases[i].pat, cases[i].name,
			         cases[i].want);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_verdicts),
		cmocka_unit_test(test_types),
		cmocka_unit_test(test_names_and_lines),
		cmocka_unit_test(test_host_match),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
