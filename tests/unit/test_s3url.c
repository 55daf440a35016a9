/* S3 URLs: the three forms, aliases, credentials from the URL, the
 * environment and ~/.aws/credentials, regions, masked display. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../common/store/s3url.h"

static void clear_env(void)
{
	unsetenv("AWS_ACCESS_KEY_ID");
	unsetenv("AWS_SECRET_ACCESS_KEY");
	unsetenv("AWS_SESSION_TOKEN");
	unsetenv("AWS_REGION");
	unsetenv("AWS_DEFAULT_REGION");
	unsetenv("AWS_PROFILE");
	setenv("HOME", "/nonexistent", 1);
}

struct ucase {
	const char *url;
	const char *endpoint, *bucket, *prefix, *region, *ak, *sk, *token;
	bool path_style;
	const char *display;
};

static const struct ucase ucases[] = {
	{ "s3://mybucket.s3.us-east-2.amazonaws.com/data/", "s3.us-east-2.amazonaws.com",
	  "mybucket", "data/", "us-east-2", NULL, NULL, NULL, false,
	  "s3://mybucket.s3.us-east-2.amazonaws.com/data/" },
	{ "s3://AKID:se%2Fcr%40et@mybucket.s3.amazonaws.com/p", "s3.amazonaws.com", "mybucket", "p",
	  "us-east-1", "AKID", "se/cr@et", NULL, false,
	  "s3://AKID:****@mybucket.s3.amazonaws.com/p" },
	{ "s3://AK:SK:TOK@127.0.0.1:7480/bkt/a/b/", "127.0.0.1:7480", "bkt", "a/b/", "us-east-1",
	  "AK", "SK", "TOK", true, "s3://AK:****@127.0.0.1:7480/bkt/a/b/" },
	{ "s3://localhost/bkt", "localhost", "bkt", "", "us-east-1", NULL, NULL, NULL, true,
	  "s3://localhost/bkt" },
	{ "s3://host.example:9000/bkt/x", "host.example:9000", "bkt", "x", "us-east-1", NULL, NULL,
	  NULL, true, "s3://host.example:9000/bkt/x" },
	{ "s3://justbucket/some/prefix/", "s3.amazonaws.com", "justbucket", "some/prefix/",
	  "us-east-1", NULL, NULL, NULL, false, "s3://justbucket/some/prefix/" },
	{ "oss://mybucket.oss-cn-shanghai.aliyuncs.com/", "oss-cn-shanghai.aliyuncs.com",
	  "mybucket", "", "cn-shanghai", NULL, NULL, NULL, false,
	  "oss://mybucket.oss-cn-shanghai.aliyuncs.com" },
	{ "cos://b-125.cos.ap-guangzhou.myqcloud.com/x/", "cos.ap-guangzhou.myqcloud.com", "b-125",
	  "x/", "ap-guangzhou", NULL, NULL, NULL, false,
	  "cos://b-125.cos.ap-guangzhou.myqcloud.com/x/" },
	{ "minio://minio.local/bkt/p/", "minio.local", "bkt", "p/", "us-east-1", NULL, NULL, NULL,
	  true, "minio://minio.local/bkt/p/" },
	/* a secret key holding '@', '/' and '+', unencoded: the last '@'
	 * before the host ends it; an '@' in the prefix stays there */
	{ "s3://AK:s@c@b.host.example/p", "host.example", "b", "p", "us-east-1", "AK", "s@c", NULL,
	  false, "s3://AK:****@b.host.example/p" },
	{ "s3://AK:ab/cd+e@host.example:9000/bkt/x", "host.example:9000", "bkt", "x", "us-east-1",
	  "AK", "ab/cd+e", NULL, true, "s3://AK:****@host.example:9000/bkt/x" },
	{ "s3://AK:se%40cr/et+x@127.0.0.1:7480/bkt/p@q", "127.0.0.1:7480", "bkt", "p@q",
	  "us-east-1", "AK", "se@cr/et+x", NULL, true, "s3://AK:****@127.0.0.1:7480/bkt/p@q" },
	{ "s3://AK:s/k@/x@127.0.0.1:7480/bkt/", "127.0.0.1:7480", "bkt", "", "us-east-1", "AK",
	  "s/k@/x", NULL, true, "s3://AK:****@127.0.0.1:7480/bkt" },
	{ "s3://AK:se%2Fcr%40et%2B@[::1]:7480/bkt/x", "[::1]:7480", "bkt", "x", "us-east-1", "AK",
	  "se/cr@et+", NULL, true, "s3://AK:****@[::1]:7480/bkt/x" },
	{ "s3://127.0.0.1:7480/bkt/a@b/", "127.0.0.1:7480", "bkt", "a@b/", "us-east-1", NULL, NULL,
	  NULL, true, "s3://127.0.0.1:7480/bkt/a@b/" },
	{ "s3://bkt/mail/me@example.com:x/", "s3.amazonaws.com", "bkt", "mail/me@example.com:x/",
	  "us-east-1", NULL, NULL, NULL, false, "s3://bkt/mail/me@example.com:x/" },
	{ "s3://AK:SK@127.0.0.1:65535/b", "127.0.0.1:65535", "b", "", "us-east-1", "AK", "SK", NULL,
	  true, "s3://AK:****@127.0.0.1:65535/b" },
};

/* The environment's credentials, for URLs without their own (a URL
 * without credentials anywhere is refused: see test_no_credentials). */
static void env_creds(void)
{
	setenv("AWS_ACCESS_KEY_ID", "ENVAK", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "ENVSK", 1);
}

static void test_forms(void **state)
{
	(void)state;
	clear_env();
	env_creds();
	for (size_t i = 0; i < sizeof(ucases) / sizeof(ucases[0]); i++) {
		const struct ucase *c = &ucases[i];
		struct sm_s3_loc l;
		struct sm_diag d;
		if (sm_s3_loc_parse(c->url, true, &l, &d) != SM_OK)
			fail_msg("%s: %s", c->url, d.msg);
		assert_string_equal(l.endpoint, c->endpoint);
		assert_string_equal(l.bucket, c->bucket);
		assert_string_equal(l.prefix, c->prefix);
		assert_string_equal(l.region, c->region);
		if (c->ak) {
			assert_string_equal(l.access_key, c->ak);
			assert_string_equal(l.secret_key, c->sk);
		} else {
			assert_string_equal(l.access_key, "ENVAK");
			assert_string_equal(l.secret_key, "ENVSK");
		}
		if (c->token)
			assert_string_equal(l.token, c->token);
		assert_int_equal(l.path_style, c->path_style);
		assert_string_equal(l.display, c->display);
		if (c->sk)
			assert_null(strstr(l.display, c->sk));
		sm_s3_loc_release(&l);
	}
}

static void test_env_and_file(void **state)
{
	(void)state;
	clear_env();
	struct sm_s3_loc l;
	struct sm_diag d;
	setenv("AWS_ACCESS_KEY_ID", "ENVAK", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "ENVSK", 1);
	setenv("AWS_SESSION_TOKEN", "ENVTOK", 1);
	setenv("AWS_REGION", "eu-west-3", 1);
	assert_int_equal(sm_s3_loc_parse("s3://b/p", true, &l, &d), SM_OK);
	assert_string_equal(l.access_key, "ENVAK");
	assert_string_equal(l.token, "ENVTOK");
	assert_string_equal(l.region, "eu-west-3");
	assert_string_equal(l.endpoint, "s3.eu-west-3.amazonaws.com");
	assert_string_equal(l.display, "s3://b/p"); /* env secrets are never shown */
	sm_s3_loc_release(&l);
	/* the URL's credentials win over the environment */
	assert_int_equal(sm_s3_loc_parse("s3://U:V@b.host.example/", true, &l, &d), SM_OK);
	assert_string_equal(l.access_key, "U");
	sm_s3_loc_release(&l);

	clear_env();
	char home[] = "/tmp/sm-s3home-XXXXXX";
	assert_non_null(mkdtemp(home));
	char path[256];
	snprintf(path, sizeof(path), "%s/.aws", home);
	mkdir(path, 0700);
	snprintf(path, sizeof(path), "%s/.aws/credentials", home);
	FILE *f = fopen(path, "w");
	fputs("# comment\n[default]\naws_access_key_id = DEFAK\naws_secret_access_key=DEFSK\n\n"
	      "[other]\naws_access_key_id = OTHAK\naws_secret_access_key = OTHSK\n"
	      "aws_session_token = OTHTOK\n",
	      f);
	fclose(f);
	setenv("HOME", home, 1);
	assert_int_equal(sm_s3_loc_parse("s3://b/", true, &l, &d), SM_OK);
	assert_string_equal(l.access_key, "DEFAK");
	assert_string_equal(l.secret_key, "DEFSK");
	assert_null(l.token);
	sm_s3_loc_release(&l);
	setenv("AWS_PROFILE", "other", 1);
	assert_int_equal(sm_s3_loc_parse("s3://b/", true, &l, &d), SM_OK);
	assert_string_equal(l.access_key, "OTHAK");
	assert_string_equal(l.token, "OTHTOK");
	sm_s3_loc_release(&l);
	unlink(path);
	snprintf(path, sizeof(path), "%s/.aws", home);
	rmdir(path);
	rmdir(home);
	clear_env();
}

/* No 4 characters of `secret` in `msg`. */
static void no_fragment(const char *what, const char *msg, const char *secret)
{
	for (size_t k = 0; k + 4 <= strlen(secret); k++)
		if (memmem(msg, strlen(msg), secret + k, 4))
			fail_msg("%s: the message shows '%.4s' of a secret: %s", what, secret + k,
			         msg);
}

static void test_bad(void **state)
{
	(void)state;
	clear_env();
	env_creds();
	static const struct {
		const char *url, *msg;
	} bad[] = {
		{ "s3://", "missing the bucket" },
		{ "s3://127.0.0.1:7480/", "missing the bucket" },
		{ "s3://AK:%zz@b.h/", "'s3://AK:****@b.h/': bad percent-encoding" },
		{ "oss://nodot/", "'oss://nodot/': the endpoint is missing" },
		{ "http://x/", "not an S3 URL" },
		{ "s3://h:abc/b", "'s3://h:abc/b': bad port 'abc' (1-65535)" },
		{ "s3://h:0/b", "'s3://h:0/b': bad port '0' (1-65535)" },
		{ "s3://h:/b", "'s3://h:/b': bad port '' (1-65535)" },
		{ "s3://[::1]x/b", "bad port 'x'" },
		{ "s3://[::1/b", "unclosed '['" },
		/* with a secret key: only the masked URL */
		{ "s3://AK:S3cr@tSK@127.0.0.1:70000/b",
		  "'s3://AK:****@127.0.0.1:70000/b': bad port '70000' (1-65535)" },
		{ "s3://AK:S3cr/tSK@h:123456789/b", "'s3://AK:****@h:123456789/b': bad port" },
		{ "s3://AK:S3cr@tSK@/b", "'s3://AK:****@/b': missing the bucket" },
		{ "s3://AK:S3cr%zzSK@h/b", "'s3://AK:****@h/b': bad percent-encoding" },
		{ "s3://AK:S3cr@tSK:T0kenZ9qx@127.0.0.1:0/b", "'s3://AK:****@127.0.0.1:0/b'" },
		{ "s3://S3cr@tSK@b.h/", "'s3://****@b.h/': the credentials before '@' must be" },
		{ "oss://AK:S3cr@tSK@nodot/", "'oss://AK:****@nodot/': the endpoint is missing" },
		{ "s3://AK:S3cr@tSK@127.0.0.1:1/",
		  "'s3://AK:****@127.0.0.1:1/': missing the bucket" },
		{ "s3://AK:@h/b", "'s3://AK:****@h/b': the secret key is empty" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct sm_s3_loc l;
		struct sm_diag d;
		if (sm_s3_loc_parse(bad[i].url, true, &l, &d) != SM_EINVAL)
			fail_msg("'%s' should be refused as bad input", bad[i].url);
		if (!strstr(d.msg, bad[i].msg))
			fail_msg("'%s': got \"%s\", want \"%s\"", bad[i].url, d.msg, bad[i].msg);
		no_fragment(bad[i].url, d.msg, "S3cr@tSK");
		no_fragment(bad[i].url, d.msg, "T0kenZ9qx");
	}
	clear_env();
}

/* A path for ~/.aws/credentials under a temporary HOME. */
struct fake_home {
	char home[32];
	char dir[64];
	char file[96];
};

static void fake_home_make(struct fake_home *h, const char *content)
{
	snprintf(h->home, sizeof(h->home), "/tmp/sm-s3home-XXXXXX");
	assert_non_null(mkdtemp(h->home));
	snprintf(h->dir, sizeof(h->dir), "%s/.aws", h->home);
	snprintf(h->file, sizeof(h->file), "%s/.aws/credentials", h->home);
	assert_int_equal(mkdir(h->dir, 0700), 0);
	if (content) {
		FILE *f = fopen(h->file, "w");
		assert_non_null(f);
		fputs(content, f);
		fclose(f);
	}
	setenv("HOME", h->home, 1);
}

static void fake_home_remove(struct fake_home *h)
{
	unlink(h->file);
	rmdir(h->file); /* when it was made a directory */
	rmdir(h->dir);
	rmdir(h->home);
}

/* No credentials anywhere, or not where AWS_PROFILE says: an error naming
 * what was looked for (SM_EACCES: the run's exit 1, not a usage error),
 * never unsigned requests, never a secret of another profile. */
static void test_no_credentials(void **state)
{
	(void)state;
	struct sm_s3_loc l;
	struct sm_diag d;
	static const char url[] = "s3://127.0.0.1:7480/bkt/p/";
	clear_env();
	assert_int_equal(sm_s3_loc_parse(url, true, &l, &d), SM_EACCES);
	assert_string_equal(d.msg, "'s3://127.0.0.1:7480/bkt/p/': no credentials found (not in the "
	                           "URL, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY unset, no "
	                           "/nonexistent/.aws/credentials)");
	setenv("AWS_PROFILE", "nope", 1);
	assert_int_equal(sm_s3_loc_parse(url, true, &l, &d), SM_EACCES);
	assert_non_null(strstr(d.msg, "AWS_PROFILE 'nope': no such profile"));
	assert_non_null(strstr(d.msg, "/nonexistent/.aws/credentials"));

	/* half the environment's pair */
	clear_env();
	setenv("AWS_ACCESS_KEY_ID", "ENVAK", 1);
	assert_int_equal(sm_s3_loc_parse(url, true, &l, &d), SM_EACCES);
	assert_non_null(strstr(d.msg, "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not"));
	clear_env();
	setenv("AWS_SECRET_ACCESS_KEY", "EnvS3cretKey", 1);
	assert_int_equal(sm_s3_loc_parse(url, true, &l, &d), SM_EACCES);
	assert_non_null(strstr(d.msg, "AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not"));
	no_fragment("half the environment", d.msg, "EnvS3cretKey");

	/* a credentials file without the profile asked for */
	clear_env();
	struct fake_home h;
	fake_home_make(&h, "[other]\naws_access_key_id = OTHAK\n"
	                   "aws_secret_access_key = OtherS3cretKey\n");
	assert_int_equal(sm_s3_loc_parse(url, true, &l, &d), SM_EACCES);
	char want[512];
	snprintf(want, sizeof(want),
	         "'%s': no credentials found (not in the URL, "
	         "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY unset, no profile 'default' in %s)",
	         url, h.file);
	assert_string_equal(d.msg, want);
	no_fragment("no default profile", d.msg, "OtherS3cretKey");
	setenv("AWS_PROFILE", "nope", 1);
	assert_int_equal(sm_s3_loc_parse(url, true, &l, &d), SM_EACCES);
	snprintf(want, sizeof(want), "'%s': AWS_PROFILE 'nope': no such profile in %s", url,
	         h.file);
	assert_string_equal(d.msg, want);
	no_fragment("AWS_PROFILE nope", d.msg, "OtherS3cretKey");
	/* the profile that exists works */
	setenv("AWS_PROFILE", "other", 1);
	assert_int_equal(sm_s3_loc_parse(url, true, &l, &d), SM_OK);
	assert_string_equal(l.secret_key, "OtherS3cretKey");
	sm_s3_loc_release(&l);
	/* the URL's credentials need no file */
	setenv("AWS_PROFILE", "nope", 1);
	assert_int_equal(sm_s3_loc_parse("s3://A:B@127.0.0.1:7480/bkt", true, &l, &d), SM_OK);
	sm_s3_loc_release(&l);
	fake_home_remove(&h);

	/* a profile without its secret */
	clear_env();
	fake_home_make(&h, "[default]\naws_access_key_id = DEFAK\n");
	assert_int_equal(sm_s3_loc_parse(url, true, &l, &d), SM_EACCES);
	snprintf(want, sizeof(want), "'%s': profile 'default' in %s has no aws_secret_access_key",
	         url, h.file);
	assert_string_equal(d.msg, want);
	fake_home_remove(&h);

	/* a credentials file that cannot be read names the file */
	clear_env();
	fake_home_make(&h, NULL);
	assert_int_equal(mkdir(h.file, 0700), 0);
	assert_int_equal(sm_s3_loc_parse(url, true, &l, &d), SM_EACCES);
	snprintf(want, sizeof(want), "'%s': cannot read the credentials in %s: ", url, h.file);
	if (strncmp(d.msg, want, strlen(want)) != 0)
		fail_msg("got \"%s\", want \"%s...\"", d.msg, want);
	fake_home_remove(&h);
	clear_env();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_forms),
		cmocka_unit_test(test_env_and_file),
		cmocka_unit_test(test_bad),
		cmocka_unit_test(test_no_credentials),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
