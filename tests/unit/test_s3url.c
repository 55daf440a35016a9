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
};

static void test_forms(void **state)
{
	(void)state;
	clear_env();
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
			assert_null(l.access_key);
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

static void test_bad(void **state)
{
	(void)state;
	clear_env();
	static const char *const bad[] = { "s3://", "s3://127.0.0.1:7480/", "s3://AK:%zz@b.h/",
		                           "oss://nodot/", "http://x/" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct sm_s3_loc l;
		struct sm_diag d;
		if (sm_s3_loc_parse(bad[i], true, &l, &d) == SM_OK)
			fail_msg("'%s' should be refused", bad[i]);
		assert_null(strstr(d.msg, "%zz")); /* and no secret echoed */
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_forms),
		cmocka_unit_test(test_env_and_file),
		cmocka_unit_test(test_bad),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
