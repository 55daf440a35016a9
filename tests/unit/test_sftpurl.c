/* SFTP locations: the scp forms, the port form, sftp:// URLs, IPv6,
 * percent-encoded credentials, masked display, and bad input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "../../common/store/sftp.h"
#include "../../common/url.h"

static void test_sftp_forms(void **state)
{
	(void)state;
	static const struct {
		const char *in, *user, *pass, *host;
		int port;
		const char *path, *display;
	} ok[] = {
		{ "host:/backup/", NULL, NULL, "host", 0, "/backup/", "host:/backup/" },
		{ "me@host:/b", "me", NULL, "host", 0, "/b", "me@host:/b" },
		{ "me:s%40cret@host:/b", "me", "s@cret", "host", 0, "/b", "me:****@host:/b" },
		{ "me@host:2222:/b/", "me", NULL, "host", 2222, "/b/", "me@host:2222:/b/" },
		{ "host:rel/dir", NULL, NULL, "host", 0, "rel/dir", "host:rel/dir" },
		{ "host:", NULL, NULL, "host", 0, "", "host:" },
		{ "me@[::1]:/b", "me", NULL, "::1", 0, "/b", "me@[::1]:/b" },
		{ "[::1]:2200:/b", NULL, NULL, "::1", 2200, "/b", "[::1]:2200:/b" },
		{ "sftp://me@host:2222/data/", "me", NULL, "host", 2222, "/data/",
		  "sftp://me@host:2222/data/" },
		{ "sftp://me:pw@host/data", "me", "pw", "host", 0, "/data",
		  "sftp://me:****@host/data" },
		{ "sftp://host", NULL, NULL, "host", 0, "/", "sftp://host/" },
		{ "host:/a@b/c", NULL, NULL, "host", 0, "/a@b/c", "host:/a@b/c" },
		/* an '@' after the host's ':' belongs to the path (rsync's reading) */
		{ "srv:backups@2024/", NULL, NULL, "srv", 0, "backups@2024/", "srv:backups@2024/" },
		{ "bob@srv:bk@2024/x", "bob", NULL, "srv", 0, "bk@2024/x", "bob@srv:bk@2024/x" },
		{ "host:2024:notes", NULL, NULL, "host", 0, "2024:notes", "host:2024:notes" },
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		struct sm_sftp_loc l;
		struct sm_diag d;
		assert_true(sm_sftp_url(ok[i].in));
		if (sm_sftp_loc_parse(ok[i].in, &l, &d) != SM_OK)
			fail_msg("'%s': %s", ok[i].in, d.msg);
		if (ok[i].user)
			assert_string_equal(l.user, ok[i].user);
		else
			assert_null(l.user);
		if (ok[i].pass)
			assert_string_equal(l.password, ok[i].pass);
		else
			assert_null(l.password);
		assert_string_equal(l.host, ok[i].host);
		assert_int_equal(l.port, ok[i].port);
		assert_string_equal(l.path, ok[i].path);
		assert_string_equal(l.display, ok[i].display);
		sm_sftp_loc_release(&l);
	}
	static const char *not_sftp[] = { "/local/path", "./rel:x", "rel/a:b", "s3://b/p",
		                          "file:///x" };
	for (size_t i = 0; i < sizeof(not_sftp) / sizeof(not_sftp[0]); i++)
		if (sm_sftp_url(not_sftp[i]))
			fail_msg("'%s' taken for SFTP", not_sftp[i]);
	static const char *bad[] = {
		"me@:/x",        "[::1:/x",        "sftp://host:x/y",
		"host:99999:/x", "me:%zz@host:/x", "sftp://me:s3cret@host:x/y"
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct sm_sftp_loc l;
		struct sm_diag d;
		if (sm_sftp_loc_parse(bad[i], &l, &d) == SM_OK)
			fail_msg("'%s' parsed", bad[i]);
		assert_non_null(strchr(d.msg, '\''));
		assert_null(strstr(d.msg, "s3cret")); /* never the password */
	}
}

static void test_sftp_url_scheme(void **state)
{
	(void)state;
	struct sm_url u;
	struct sm_diag d;
	assert_int_equal(sm_url_parse("me:pw@host:/x/", &u, &d), SM_OK);
	assert_string_equal(u.scheme, "sftp");
	assert_string_equal(u.display, "me:****@host:/x/");
	assert_true(u.trailing);
	sm_url_release(&u);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sftp_forms),
		cmocka_unit_test(test_sftp_url_scheme),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
