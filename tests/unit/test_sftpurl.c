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
		/* a password with '@' splits at the last '@' (all three forms) */
		{ "u:p@ss@host:/path", "u", "p@ss", "host", 0, "/path", "u:****@host:/path" },
		{ "u:p@ss@host:2222:/path", "u", "p@ss", "host", 2222, "/path",
		  "u:****@host:2222:/path" },
		{ "sftp://u:p@ss@host:2222/path", "u", "p@ss", "host", 2222, "/path",
		  "sftp://u:****@host:2222/path" },
		{ "u:p@ss:w@rd@host:rel", "u", "p@ss:w@rd", "host", 0, "rel", "u:****@host:rel" },
		{ "me@corp@host:/x", "me@corp", NULL, "host", 0, "/x", "me@corp@host:/x" },
		/* a password with '/' (percent-encoded or not) */
		{ "u:pa/ss@host:/x", "u", "pa/ss", "host", 0, "/x", "u:****@host:/x" },
		{ "u:p@s/s@host:/x", "u", "p@s/s", "host", 0, "/x", "u:****@host:/x" },
		{ "sftp://u:pa/ss@host/x", "u", "pa/ss", "host", 0, "/x", "sftp://u:****@host/x" },
		{ "sftp://u:p/s@s@[::1]:22/x", "u", "p/s@s", "::1", 22, "/x",
		  "sftp://u:****@[::1]:22/x" },
		{ "sftp://u:p@/s@s@h/x", "u", "p@/s@s", "h", 0, "/x", "sftp://u:****@h/x" },
		{ "u:p@/s@host:/x", "u", "p@/s", "host", 0, "/x", "u:****@host:/x" },
		{ "u:p+ss @host:/x", "u", "p+ss ", "host", 0, "/x", "u:****@host:/x" },
		{ "sftp://u:pa%2Fss%40x@host/x", "u", "pa/ss@x", "host", 0, "/x",
		  "sftp://u:****@host/x" },
		/* an '@' in the path is no user part */
		{ "sftp://h:22/a@b", NULL, NULL, "h", 22, "/a@b", "sftp://h:22/a@b" },
		{ "sftp://h/a@b/c", NULL, NULL, "h", 0, "/a@b/c", "sftp://h/a@b/c" },
		{ "srv:dir/a@b", NULL, NULL, "srv", 0, "dir/a@b", "srv:dir/a@b" },
		{ "sftp://h:/p", NULL, NULL, "h", 0, "/p", "sftp://h/p" },
		{ "h:65535:/p", NULL, NULL, "h", 65535, "/p", "h:65535:/p" },
		/* sftp:// paths are percent-decoded (a '+' stays); the display
		 * keeps them as typed */
		{ "sftp://h/a%20b/%25c+d", NULL, NULL, "h", 0, "/a b/%c+d",
		  "sftp://h/a%20b/%25c+d" },
		{ "sftp://h/%7E/x", NULL, NULL, "h", 0, "x", "sftp://h/%7E/x" },
		/* ~ is the login directory (scp's and rsync's reading) */
		{ "h:~/dir/", NULL, NULL, "h", 0, "dir/", "h:~/dir/" },
		{ "h:~", NULL, NULL, "h", 0, "", "h:~" },
		{ "h:~/", NULL, NULL, "h", 0, "", "h:~/" },
		{ "me@h:2222:~/d", "me", NULL, "h", 2222, "d", "me@h:2222:~/d" },
		{ "h:2222:~", NULL, NULL, "h", 2222, "", "h:2222:~" },
		{ "sftp://h/~/d", NULL, NULL, "h", 0, "d", "sftp://h/~/d" },
		{ "sftp://h:22/~", NULL, NULL, "h", 22, "", "sftp://h:22/~" },
		{ "h:~bob/d", NULL, NULL, "h", 0, "~bob/d", "h:~bob/d" },
		{ "sftp://h/~bob/d", NULL, NULL, "h", 0, "~bob/d", "sftp://h/~bob/d" },
		{ "h:a/~/b", NULL, NULL, "h", 0, "a/~/b", "h:a/~/b" },
		{ "h:2024:~x", NULL, NULL, "h", 0, "2024:~x", "h:2024:~x" },
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
	static const struct {
		const char *in, *msg;
	} bad[] = {
		{ "me@:/x", "'me@:/x': no host" },
		{ "[::1:/x", "'[::1:/x': unclosed '['" },
		{ "sftp://host:x/y", "'sftp://host:x/y': bad port 'x' (1-65535)" },
		{ "h:99999:/p", "'h:99999:/p': bad port '99999' (1-65535)" },
		{ "sftp://h:0/p", "'sftp://h:0/p': bad port '0' (1-65535)" },
		{ "sftp://h:abc/p", "'sftp://h:abc/p': bad port 'abc' (1-65535)" },
		{ "h:0:/p", "'h:0:/p': bad port '0' (1-65535)" },
		{ "me:%zz@host:/x", "'me:****@host:/x': bad user or password" },
		/* with a password: the message shows the masked form */
		{ "u:S3cr@tPw@host:99999:/p",
		  "'u:****@host:99999:/p': bad port '99999' (1-65535)" },
		{ "sftp://u:S3cr@tPw@h:0/p", "'sftp://u:****@h:0/p': bad port '0' (1-65535)" },
		{ "sftp://u:S3cr@tPw@h:abc/p", "'sftp://u:****@h:abc/p': bad port 'abc'" },
		{ "sftp://u:S3cr@tPw@h:12ab/p", "'sftp://u:****@h:12ab/p': bad port '12ab'" },
		{ "sftp://u:S3/cr@tPw@h:0/p", "'sftp://u:****@h:0/p': bad port '0'" },
		{ "u:S3cr@tPw@h:123456789:/p", "bad port '123456789'" },
		{ "u:S3cr%zzPw@host:/p", "'u:****@host:/p': bad user or password" },
		{ "sftp://u:S3cr@tPw@/p", "'sftp://u:****@/p': no host" },
		{ "sftp://u:S3cr@tPw@[::1/p", "'sftp://u:****@[::1/p': unclosed '['" },
		{ "sftp://u:S3cr@tPw@[::1]x/p", "the path must start with '/'" },
		{ "sftp://h/a%2", "'sftp://h/a%2': bad percent-encoding in the path" },
		{ "sftp://h/a%00b", "bad percent-encoding in the path" },
		{ "sftp://h/a%zzb", "bad percent-encoding in the path" },
		{ "u:S3cr@tPw@:/p", "'u:****@:/p': no host" },
		{ "u:S3cr@tPw@[::1:/p", "'u:****@[::1:/p': unclosed '['" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct sm_sftp_loc l;
		struct sm_diag d;
		if (sm_sftp_loc_parse(bad[i].in, &l, &d) != SM_EINVAL)
			fail_msg("'%s' parsed or failed otherwise", bad[i].in);
		if (!strstr(d.msg, bad[i].msg))
			fail_msg("'%s': got \"%s\", want \"%s\"", bad[i].in, d.msg, bad[i].msg);
		/* never a password, nor any 4 characters of it; and a location
		 * with a password is never taken for a local path */
		static const char pw[] = "S3cr@tPw";
		if (strstr(bad[i].in, "S3") && !sm_sftp_url(bad[i].in))
			fail_msg("'%s' taken for a local path", bad[i].in);
		for (size_t k = 0; k + 4 <= sizeof(pw) - 1; k++)
			if (memmem(d.msg, strlen(d.msg), pw + k, 4))
				fail_msg("'%s': the message shows '%.4s' of the password: %s",
				         bad[i].in, pw + k, d.msg);
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
