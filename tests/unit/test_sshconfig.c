/* ~/.ssh/config resolution: Host patterns, first value wins, URL overrides,
 * IdentityFile / UserKnownHostsFile accumulation and expansion, defaults,
 * Match, Include, quoting, and the errors with their file:line; and how
 * an encrypted private key is told from a plain one (ssh.c). Each case
 * runs in a fresh mkdtemp HOME. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../deploy/ssh.h"
#include "../../deploy/sshconfig.h"

static char g_home[64]; /* "/tmp/test_sshconfig.XXXXXX" */
static char g_login[256];

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(p);
}

static void home_free(void)
{
	if (g_home[0])
		nftw(g_home, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	g_home[0] = '\0';
}

static void home_new(void)
{
	home_free();
	snprintf(g_home, sizeof(g_home), "/tmp/test_sshconfig.XXXXXX");
	if (!mkdtemp(g_home))
		fail_msg("mkdtemp: %s", strerror(errno));
	char p[PATH_MAX];
	snprintf(p, sizeof(p), "%s/.ssh", g_home);
	assert_int_equal(mkdir(p, 0700), 0);
	assert_int_equal(setenv("HOME", g_home, 1), 0);
	struct passwd *pw = getpwuid(geteuid());
	assert_non_null(pw);
	snprintf(g_login, sizeof(g_login), "%s", pw->pw_name);
}

static int teardown(void **state)
{
	(void)state;
	home_free();
	return 0;
}

/* Write `text` to HOME/rel (parents created) with `mode`. */
static void put_file(const char *rel, const char *text, mode_t mode)
{
	char p[PATH_MAX];
	snprintf(p, sizeof(p), "%s/%s", g_home, rel);
	for (char *s = p + strlen(g_home) + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, 0755) != 0 && errno != EEXIST)
			fail_msg("mkdir %s: %s", p, strerror(errno));
		*s = '/';
	}
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		fail_msg("open %s: %s", p, strerror(errno));
	size_t n = strlen(text);
	assert_int_equal(write(fd, text, n), (ssize_t)n);
	assert_int_equal(fchmod(fd, mode), 0); /* not the umask's idea */
	close(fd);
}

/* `in` with {H} replaced by HOME and {U} by the login name. */
static void sub(const char *in, char *out, size_t n)
{
	size_t o = 0;
	while (*in && o + 1 < n) {
		const char *rep = NULL;
		if (!strncmp(in, "{H}", 3))
			rep = g_home;
		else if (!strncmp(in, "{U}", 3))
			rep = g_login;
		if (rep) {
			o += (size_t)snprintf(out + o, n - o, "%s", rep);
			in += 3;
		} else {
			out[o++] = *in++;
		}
	}
	out[o < n ? o : n - 1] = '\0';
}

static void assert_list(const char *what, const char *name, char **got, size_t n_got,
                        const char *const *want, size_t n_want)
{
	for (size_t i = 0; i < n_got || i < n_want; i++) {
		char w[PATH_MAX];
		if (i < n_want)
			sub(want[i], w, sizeof(w));
		if (i >= n_got)
			fail_msg("%s: %s[%zu]: missing, want '%s'", name, what, i, w);
		if (i >= n_want)
			fail_msg("%s: %s[%zu]: extra '%s'", name, what, i, got[i]);
		if (strcmp(got[i], w))
			fail_msg("%s: %s[%zu]: got '%s', want '%s'", name, what, i, got[i], w);
	}
}

static size_t count(const char *const *v, size_t max)
{
	size_t n = 0;
	while (n < max && v[n])
		n++;
	return n;
}

struct extra_file {
	const char *rel, *text;
};

/* One resolution: ~/.ssh/config (NULL = none) plus other files, the URL's
 * alias/user/port, what should come out. ids/khs {NULL} = the defaults;
 * {"-"} = none at all. */
struct rcase {
	const char *name;
	const char *config;
	struct extra_file extra[4];
	const char *alias, *user;
	int port;
	const char *hostname; /* NULL = the alias */
	int want_port;
	const char *want_user; /* NULL = none */
	const char *ids[8];
	const char *khs[4];
};

static const char *const default_ids[] = { "{H}/.ssh/id_ed25519", "{H}/.ssh/id_ecdsa",
	                                   "{H}/.ssh/id_rsa" };
static const char *const default_khs[] = { "{H}/.ssh/known_hosts" };

#define PATTERNS_CFG                            \
	"# patterns\n"                          \
	"Host *.example.com !bad.example.com\n" \
	"  User web\n"                          \
	"Host db?\n"                            \
	"  Port 2222\n"                         \
	"Host foo BAR\n"                        \
	"  HostName real-%h.internal\n"

#define FIRST_CFG         \
	"User global\n"   \
	"Host a\n"        \
	"  Port 1000\n"   \
	"  User first\n"  \
	"Host *\n"        \
	"  Port 2000\n"   \
	"  User second\n" \
	"  HostName h1\n" \
	"  HostName h2\n"

#define IDS_CFG                            \
	"Host srv\n"                       \
	"  HostName srv.example.org\n"     \
	"  User alice\n"                   \
	"  Port 2022\n"                    \
	"  IdentityFile ~/.ssh/id_%h_%p\n" \
	"  IdentityFile %d/keys/%r@%h\n"   \
	"  IdentityFile /keys/%u/100%%\n"  \
	"  IdentityFile ~\n"               \
	"Host other\n"                     \
	"  IdentityFile ~/k_%r_%p\n"       \
	"Host *\n"                         \
	"  IdentityFile ~/.ssh/common\n"   \
	"  IdentityFile ~/.ssh/common\n"

#define KH_CFG                                         \
	"Host kh\n"                                    \
	"  UserKnownHostsFile ~/kh1 \"/etc/my kh2\"\n" \
	"  UserKnownHostsFile %d/kh_%h\n"              \
	"Host nokh\n"                                  \
	"  UserKnownHostsFile none\n"                  \
	"  IdentityFile none\n"

#define MATCH_CFG                                            \
	"Match host foo\n"                                   \
	"  User m1\n"                                        \
	"Match all\n"                                        \
	"  Port 1234\n"                                      \
	"Host x\n"                                           \
	"  User hx\n"                                        \
	"Host nothere\n"                                     \
	"Match all\n"                                        \
	"  HostName everyone\n"                              \
	"Match host EVERY* user m1\n"                        \
	"  IdentityFile ~/m-%h\n"                            \
	"Match originalhost x !user hx\n"                    \
	"  IdentityFile ~/not-hx\n"                          \
	"Match host nomatch exec false\n"                    \
	"  Port 2\n"                                         \
	"Match originalhost y,!x localuser *,!nobody-here\n" \
	"  User local-matched\n"

#define INC_CFG                                        \
	"Host inc\n"                                   \
	"  Include conf.d/*.conf\n"                    \
	"Host *\n"                                     \
	"  Include extra ~/abs-extra nomatch-*.conf\n" \
	"  Port 99\n"

static const struct rcase rcases[] = {
	{ .name = "missing file", .config = NULL, .alias = "h", .hostname = "h", .want_port = 22 },
	{ .name = "empty file", .config = "\n# only a comment\n\n", .alias = "h", .want_port = 22 },
	{ .name = "star",
	  .config = PATTERNS_CFG,
	  .alias = "www.example.com",
	  .want_port = 22,
	  .want_user = "web" },
	{ .name = "star, case-insensitive",
	  .config = PATTERNS_CFG,
	  .alias = "WWW.Example.COM",
	  .want_port = 22,
	  .want_user = "web" },
	{ .name = "negation", .config = PATTERNS_CFG, .alias = "bad.example.com", .want_port = 22 },
	{ .name = "star needs the dot",
	  .config = PATTERNS_CFG,
	  .alias = "example.com",
	  .want_port = 22 },
	{ .name = "question mark", .config = PATTERNS_CFG, .alias = "db1", .want_port = 2222 },
	{ .name = "question mark is one char",
	  .config = PATTERNS_CFG,
	  .alias = "db12",
	  .want_port = 22 },
	{ .name = "second of several patterns, %h in HostName",
	  .config = PATTERNS_CFG,
	  .alias = "bar",
	  .hostname = "real-bar.internal",
	  .want_port = 22 },
	{ .name = "first of several patterns",
	  .config = PATTERNS_CFG,
	  .alias = "foo",
	  .hostname = "real-foo.internal",
	  .want_port = 22 },
	{ .name = "first value wins (global first)",
	  .config = FIRST_CFG,
	  .alias = "a",
	  .hostname = "h1",
	  .want_port = 1000,
	  .want_user = "global" },
	{ .name = "first value wins (Host *)",
	  .config = FIRST_CFG,
	  .alias = "b",
	  .hostname = "h1",
	  .want_port = 2000,
	  .want_user = "global" },
	{ .name = "url user and port win",
	  .config = FIRST_CFG,
	  .alias = "a",
	  .user = "urluser",
	  .port = 2201,
	  .hostname = "h1",
	  .want_port = 2201,
	  .want_user = "urluser" },
	{ .name = "identity accumulation and tokens",
	  .config = IDS_CFG,
	  .alias = "srv",
	  .hostname = "srv.example.org",
	  .want_port = 2022,
	  .want_user = "alice",
	  .ids = { "{H}/.ssh/id_srv.example.org_2022", "{H}/keys/alice@srv.example.org",
	           "/keys/{U}/100%", "{H}", "{H}/.ssh/common" } },
	{ .name = "%r is the login name without a user",
	  .config = IDS_CFG,
	  .alias = "other",
	  .want_port = 22,
	  .ids = { "{H}/k_{U}_22", "{H}/.ssh/common" } },
	{ .name = "%r and %p follow the url",
	  .config = IDS_CFG,
	  .alias = "other",
	  .user = "bob",
	  .port = 2200,
	  .want_port = 2200,
	  .want_user = "bob",
	  .ids = { "{H}/k_bob_2200", "{H}/.ssh/common" } },
	{ .name = "url values in tokens over the file",
	  .config = IDS_CFG,
	  .alias = "srv",
	  .user = "carol",
	  .port = 7,
	  .hostname = "srv.example.org",
	  .want_port = 7,
	  .want_user = "carol",
	  .ids = { "{H}/.ssh/id_srv.example.org_7", "{H}/keys/carol@srv.example.org",
	           "/keys/{U}/100%", "{H}", "{H}/.ssh/common" } },
	{ .name = "two known_hosts on a line; the first line wins, as in ssh",
	  .config = KH_CFG,
	  .alias = "kh",
	  .want_port = 22,
	  .khs = { "{H}/kh1", "/etc/my kh2" } },
	{ .name = "none: no files, no defaults",
	  .config = KH_CFG,
	  .alias = "nokh",
	  .want_port = 22,
	  .ids = { "-" },
	  .khs = { "-" } },
	{ .name = "Match host (the alias before HostName), then the HostName and user so far",
	  .config = MATCH_CFG,
	  .alias = "foo",
	  .hostname = "everyone",
	  .want_port = 1234,
	  .want_user = "m1",
	  .ids = { "{H}/m-everyone" } },
	{ .name = "Host after Match all; !user",
	  .config = MATCH_CFG,
	  .alias = "x",
	  .hostname = "everyone",
	  .want_port = 1234,
	  .want_user = "hx" },
	{ .name = "Match user sees the URL's user first",
	  .config = MATCH_CFG,
	  .alias = "x",
	  .user = "other",
	  .hostname = "everyone",
	  .want_port = 1234,
	  .want_user = "other",
	  .ids = { "{H}/not-hx" } },
	{ .name = "Match originalhost list with a negation, localuser",
	  .config = MATCH_CFG,
	  .alias = "y",
	  .hostname = "everyone",
	  .want_port = 1234,
	  .want_user = "local-matched" },
	{ .name = "Include glob inside Host",
	  .config = INC_CFG,
	  .extra = { { ".ssh/conf.d/a.conf", "User from-a\nHost other\n  Port 9\n" },
	             { ".ssh/conf.d/b.conf", "Port 4444\n" },
	             { ".ssh/extra", "IdentityFile ~/extra_key\n" },
	             { "abs-extra", "UserKnownHostsFile ~/abs_kh\n" } },
	  .alias = "inc",
	  .want_port = 4444,
	  .want_user = "from-a",
	  .ids = { "{H}/extra_key" },
	  .khs = { "{H}/abs_kh" } },
	{ .name = "Include in an inactive Host never applies",
	  .config = INC_CFG,
	  .extra = { { ".ssh/conf.d/a.conf", "User from-a\nHost other\n  Port 9\n" },
	             { ".ssh/conf.d/b.conf", "Port 4444\n" },
	             { ".ssh/extra", "IdentityFile ~/extra_key\n" },
	             { "abs-extra", "UserKnownHostsFile ~/abs_kh\n" } },
	  .alias = "other",
	  .want_port = 99,
	  .ids = { "{H}/extra_key" },
	  .khs = { "{H}/abs_kh" } },
	{ .name = "quotes and Key=value",
	  .config = "HOSTNAME=q.example\n"
	            "port = 2345\n"
	            "User= \"john smith\"\n"
	            "\tIdentityFile \"~/my keys/id one\"\n"
	            "identityfile ~/other\\ key # a comment\n"
	            "IdentityFile=~/x\"y z\"w\r\n"
	            "Port 1\n",
	  .alias = "q",
	  .hostname = "q.example",
	  .want_port = 2345,
	  .want_user = "john smith",
	  .ids = { "{H}/my keys/id one", "{H}/other key", "{H}/xy zw" } },
	{ .name = "keywords of no bearing on SFTP, unknown ones IgnoreUnknown names, refused "
	          "ones that do not apply or change nothing",
	  .config = "IgnoreUnknown usekeychain,nosuch*\nForwardAgent yes\nUseKeychain yes\n"
	            "NoSuchThing 1\nControlMaster auto\nHost other\n  BindAddress 10.0.0.1\n"
	            "Host *\n  Ciphers +aes128-cbc\n  CanonicalizeHostname no\n  Port 2\n"
	            "  Ciphers aes128-ctr\n",
	  .alias = "u",
	  .want_port = 2 },
};

static void check_case(const struct rcase *c)
{
	home_new();
	if (c->config)
		put_file(".ssh/config", c->config, 0644);
	for (size_t i = 0; i < 4 && c->extra[i].rel; i++)
		put_file(c->extra[i].rel, c->extra[i].text, 0644);
	struct sm_ssh_host_cfg h;
	struct sm_diag d;
	sm_diag_clear(&d);
	if (sm_ssh_config_resolve(NULL, c->alias, c->user, c->port, &h, &d) != SM_OK)
		fail_msg("%s: %s", c->name, d.msg);
	assert_string_equal(h.alias, c->alias);
	if (strcmp(h.hostname, c->hostname ? c->hostname : c->alias))
		fail_msg("%s: hostname '%s'", c->name, h.hostname);
	if (h.port != c->want_port)
		fail_msg("%s: port %d, want %d", c->name, h.port, c->want_port);
	if (c->want_user ? !h.user || strcmp(h.user, c->want_user) : h.user != NULL)
		fail_msg("%s: user '%s'", c->name, h.user ? h.user : "(null)");
	if (!c->ids[0])
		assert_list("identity_files", c->name, h.identity_files, h.n_identity_files,
		            default_ids, 3);
	else if (!strcmp(c->ids[0], "-"))
		assert_list("identity_files", c->name, h.identity_files, h.n_identity_files, NULL,
		            0);
	else
		assert_list("identity_files", c->name, h.identity_files, h.n_identity_files, c->ids,
		            count(c->ids, 8));
	if (!c->khs[0])
		assert_list("known_hosts", c->name, h.known_hosts, h.n_known_hosts, default_khs, 1);
	else if (!strcmp(c->khs[0], "-"))
		assert_list("known_hosts", c->name, h.known_hosts, h.n_known_hosts, NULL, 0);
	else
		assert_list("known_hosts", c->name, h.known_hosts, h.n_known_hosts, c->khs,
		            count(c->khs, 4));
	sm_ssh_host_cfg_release(&h);
	assert_null(h.alias);
	sm_ssh_host_cfg_release(&h); /* twice is fine */
	sm_ssh_host_cfg_release(NULL);
}

static void test_resolve(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(rcases) / sizeof(rcases[0]); i++)
		check_case(&rcases[i]);
}

/* The defaults of the scalar options, and each of them set. */
struct ocase {
	const char *config;
	enum sm_ssh_strict strict;
	bool ionly;
	int ct, sai, sacm;
};

static const struct ocase ocases[] = {
	{ "", SM_SSH_STRICT_ASK, false, 0, 0, 3 },
	{ "StrictHostKeyChecking yes\n", SM_SSH_STRICT_YES, false, 0, 0, 3 },
	{ "StrictHostKeyChecking no\n", SM_SSH_STRICT_NO, false, 0, 0, 3 },
	{ "StrictHostKeyChecking off\n", SM_SSH_STRICT_NO, false, 0, 0, 3 },
	{ "StrictHostKeyChecking ask\n", SM_SSH_STRICT_ASK, false, 0, 0, 3 },
	{ "StrictHostKeyChecking Accept-New\n", SM_SSH_STRICT_ACCEPT_NEW, false, 0, 0, 3 },
	{ "StrictHostKeyChecking accept-new\nStrictHostKeyChecking no\n", SM_SSH_STRICT_ACCEPT_NEW,
	  false, 0, 0, 3 },
	{ "IdentitiesOnly yes\nIdentitiesOnly no\n", SM_SSH_STRICT_ASK, true, 0, 0, 3 },
	{ "IdentitiesOnly no\n", SM_SSH_STRICT_ASK, false, 0, 0, 3 },
	{ "ConnectTimeout 15 # seconds\nServerAliveInterval=1m30s\nServerAliveCountMax 0\n",
	  SM_SSH_STRICT_ASK, false, 15, 90, 0 },
	{ "ConnectTimeout 0\nServerAliveInterval 60\nServerAliveCountMax 10\n", SM_SSH_STRICT_ASK,
	  false, 0, 60, 10 },
	{ "Host nomatch\n  ConnectTimeout 5\n", SM_SSH_STRICT_ASK, false, 0, 0, 3 },
};

static void test_options(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(ocases) / sizeof(ocases[0]); i++) {
		const struct ocase *c = &ocases[i];
		home_new();
		put_file(".ssh/config", c->config, 0644);
		struct sm_ssh_host_cfg h;
		struct sm_diag d;
		if (sm_ssh_config_resolve(NULL, "host", NULL, 0, &h, &d) != SM_OK)
			fail_msg("'%s': %s", c->config, d.msg);
		if (h.strict != c->strict || h.identities_only != c->ionly ||
		    h.connect_timeout_s != c->ct || h.server_alive_interval != c->sai ||
		    h.server_alive_count_max != c->sacm)
			fail_msg("'%s': strict %d ionly %d ct %d sai %d sacm %d", c->config,
			         h.strict, h.identities_only, h.connect_timeout_s,
			         h.server_alive_interval, h.server_alive_count_max);
		sm_ssh_host_cfg_release(&h);
	}
}

/* Errors: the message names the file and line ({C} = ~/.ssh/config). */
struct ecase {
	const char *config;
	struct extra_file extra[2];
	enum sm_err err;
	const char *msg; /* a substring, after {H} substitution */
};

static const struct ecase ecases[] = {
	{ "Port\n", { { 0 } }, SM_EINVAL, "{H}/.ssh/config:1: Port needs a value" },
	{ "\nHost a\n  User\n", { { 0 } }, SM_EINVAL, "{H}/.ssh/config:3: User needs a value" },
	{ "IdentityFile \"\"\n", { { 0 } }, SM_EINVAL, "config:1: IdentityFile needs a value" },
	{ "Port # comment\n", { { 0 } }, SM_EINVAL, "config:1: Port needs a value" },
	{ "Host\n", { { 0 } }, SM_EINVAL, "config:1: Host needs a value" },
	{ "Match\n", { { 0 } }, SM_EINVAL, "config:1: Match needs a value" },
	{ "Match user\n", { { 0 } }, SM_EINVAL, "config:1: Match user needs a value" },
	{ "Match colour red\n",
	  { { 0 } },
	  SM_EINVAL,
	  "config:1: unsupported Match attribute 'colour'" },
	{ "\nMatch exec \"true\"\n  Port 3\n",
	  { { 0 } },
	  SM_EINVAL,
	  "{H}/.ssh/config:2: 'Match exec' is not supported by syncmgr" },
	{ "Match host h* final\n",
	  { { 0 } },
	  SM_EINVAL,
	  "config:1: 'Match final' is not supported" },
	{ "Match canonical\n",
	  { { 0 } },
	  SM_EINVAL,
	  "config:1: 'Match canonical' is not supported" },
	{ "NoSuchThing yes\n",
	  { { 0 } },
	  SM_EINVAL,
	  "config:1: bad configuration option 'NoSuchThing'" },
	{ "Host other\n  NoSuchThing yes\n",
	  { { 0 } },
	  SM_EINVAL,
	  "config:2: bad configuration option 'NoSuchThing'" },
	{ "NoSuchThing yes\nIgnoreUnknown nosuchthing\n",
	  { { 0 } },
	  SM_EINVAL,
	  "config:1: bad configuration option" },
	{ "Host h*\n  BindAddress 10.0.0.1\n",
	  { { 0 } },
	  SM_EINVAL,
	  "config:2: 'BindAddress' is not supported by syncmgr" },
	{ "Ciphers aes128-ctr\n", { { 0 } }, SM_EINVAL, "config:1: 'Ciphers' is not supported" },
	{ "Ciphers -aes128-cbc\n", { { 0 } }, SM_EINVAL, "config:1: 'Ciphers' is not supported" },
	{ "CanonicalizeHostname yes\n",
	  { { 0 } },
	  SM_EINVAL,
	  "config:1: 'CanonicalizeHostname' is not supported" },
	{ "CertificateFile ~/.ssh/id-cert.pub\n",
	  { { 0 } },
	  SM_EINVAL,
	  "config:1: 'CertificateFile' is not supported" },
	{ "ProxyCommand\n", { { 0 } }, SM_EINVAL, "config:1: ProxyCommand needs a value" },
	{ "ProxyCommand nc %h %P\n", { { 0 } }, SM_EINVAL, "config:1: unknown token '%P'" },
	{ "AddressFamily ipx\n", { { 0 } }, SM_EINVAL, "config:1: AddressFamily 'ipx'" },
	{ "BatchMode perhaps\n", { { 0 } }, SM_EINVAL, "config:1: BatchMode 'perhaps'" },
	{ "Include\n", { { 0 } }, SM_EINVAL, "config:1: Include needs a value" },
	{ "UserKnownHostsFile=\n",
	  { { 0 } },
	  SM_EINVAL,
	  "config:1: UserKnownHostsFile needs a value" },
	{ "Port 0\n", { { 0 } }, SM_EINVAL, "config:1: Port '0' is not a number in 1-65535" },
	{ "Port 65536\n", { { 0 } }, SM_EINVAL, "config:1: Port '65536'" },
	{ "Port ssh\n", { { 0 } }, SM_EINVAL, "config:1: Port 'ssh'" },
	{ "Host nomatch\n  Port abc\n", { { 0 } }, SM_EINVAL, "config:2: Port 'abc'" },
	{ "Port 22 23\n", { { 0 } }, SM_EINVAL, "config:1: Port takes one value" },
	{ "IdentityFile a b\n", { { 0 } }, SM_EINVAL, "config:1: IdentityFile takes one value" },
	{ "ConnectTimeout -1\n", { { 0 } }, SM_EINVAL, "config:1: ConnectTimeout '-1'" },
	{ "ServerAliveInterval 10x\n", { { 0 } }, SM_EINVAL, "config:1: ServerAliveInterval '10x'" },
	{ "ServerAliveCountMax three\n",
	  { { 0 } },
	  SM_EINVAL,
	  "config:1: ServerAliveCountMax 'three' is not a non-negative integer" },
	{ "ConnectTimeout 99999999999\n", { { 0 } }, SM_EINVAL, "config:1: ConnectTimeout" },
	{ "IdentitiesOnly maybe\n",
	  { { 0 } },
	  SM_EINVAL,
	  "config:1: IdentitiesOnly 'maybe' is not yes or no" },
	{ "StrictHostKeyChecking sometimes\n",
	  { { 0 } },
	  SM_EINVAL,
	  "config:1: StrictHostKeyChecking 'sometimes'" },
	{ "IdentityFile ~/.ssh/%x\n", { { 0 } }, SM_EINVAL, "config:1: unknown token '%x'" },
	{ "UserKnownHostsFile ~/a ~/b%C\n", { { 0 } }, SM_EINVAL, "config:1: unknown token '%C'" },
	{ "HostName %p.example\n",
	  { { 0 } },
	  SM_EINVAL,
	  "config:1: unknown token '%p' in HostName" },
	{ "IdentityFile ~/a%\n", { { 0 } }, SM_EINVAL, "config:1: IdentityFile '~/a%' ends in" },
	{ "User \"john\n", { { 0 } }, SM_EINVAL, "config:1: unterminated quote" },
	{ "Host a\n  Include inc\n",
	  { { ".ssh/inc", "# ok\n\nPort x\n" } },
	  SM_EINVAL,
	  "{H}/.ssh/inc:3: Port 'x'" },
	{ "Include config\n",
	  { { 0 } },
	  SM_EINVAL,
	  "{H}/.ssh/config:1: Include nested more than 16 deep" },
	{ "Include loop\n",
	  { { ".ssh/loop", "Include ~/.ssh/loop\n" } },
	  SM_EINVAL,
	  "{H}/.ssh/loop:1: Include nested more than 16 deep" },
	{ "Include gw\n",
	  { { ".ssh/gw", "Port 1\n" } },
	  SM_EACCES,
	  "bad owner or permissions on ssh config '{H}/.ssh/gw'" },
	{ "Include d\n",
	  { { ".ssh/d/x", "Port 1\n" } },
	  SM_EISDIR,
	  "cannot read ssh config '{H}/.ssh/d': is a directory" },
};

static void check_error(const char *name, enum sm_err want_err, const char *want_msg,
                        const char *path)
{
	struct sm_ssh_host_cfg h;
	memset(&h, 0x5a, sizeof(h));
	struct sm_ssh_host_cfg before = h;
	struct sm_diag d;
	sm_diag_clear(&d);
	enum sm_err err = sm_ssh_config_resolve(path, "host", NULL, 0, &h, &d);
	char w[PATH_MAX];
	sub(want_msg, w, sizeof(w));
	if (err != want_err)
		fail_msg("%s: err %d (%s), want %d", name, err, d.msg, want_err);
	if (!strstr(d.msg, w))
		fail_msg("%s: message '%s', want '%s'", name, d.msg, w);
	if (memcmp(&h, &before, sizeof(h)))
		fail_msg("%s: *out written on error", name);
}

#define NOBODY 65534 /* nobody / nogroup */

/* Hand HOME (the tree home_new() made) over to nobody, reachable by it. */
static void home_give_to_nobody(void)
{
	char p[PATH_MAX];
	snprintf(p, sizeof(p), "%s/.ssh", g_home);
	const char *const dirs[] = { g_home, p };
	for (size_t i = 0; i < 2; i++) {
		assert_int_equal(chown(dirs[i], NOBODY, NOBODY), 0);
		assert_int_equal(chmod(dirs[i], 0755), 0);
	}
	snprintf(p, sizeof(p), "%s/.ssh/config", g_home);
	assert_int_equal(lchown(p, NOBODY, NOBODY), 0);
}

/*
 * check_error() for a case that root would not see (root reads any file):
 * under root, in a child that drops to nobody/nogroup and reports through
 * a pipe and its exit status; otherwise in a child as the current user.
 * Never skipped.
 */
static void check_error_unprivileged(const char *name, enum sm_err want_err, const char *want_msg)
{
	bool root = geteuid() == 0;
	if (root)
		home_give_to_nobody();
	char w[PATH_MAX];
	sub(want_msg, w, sizeof(w));
	int pfd[2];
	assert_int_equal(pipe(pfd), 0);
	fflush(NULL);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(pfd[0]);
		char msg[SM_DIAG_MAX + 256] = "";
		int rc = 1;
		if (root &&
		    (setgroups(0, NULL) != 0 || setgid(NOBODY) != 0 || setuid(NOBODY) != 0)) {
			snprintf(msg, sizeof(msg), "cannot become nobody: %s", strerror(errno));
			goto out;
		}
		if (root && (geteuid() != NOBODY || getegid() != NOBODY || setuid(0) == 0)) {
			snprintf(msg, sizeof(msg), "still privileged after dropping to nobody");
			goto out;
		}
		struct sm_ssh_host_cfg h;
		memset(&h, 0x5a, sizeof(h));
		struct sm_ssh_host_cfg before = h;
		struct sm_diag d;
		sm_diag_clear(&d);
		enum sm_err err = sm_ssh_config_resolve(NULL, "host", NULL, 0, &h, &d);
		if (err != want_err)
			snprintf(msg, sizeof(msg), "as uid %d: err %d (%s), want %d",
			         (int)geteuid(), err, d.msg, want_err);
		else if (!strstr(d.msg, w))
			snprintf(msg, sizeof(msg), "as uid %d: message '%.400s', want '%.400s'",
			         (int)geteuid(), d.msg, w);
		else if (memcmp(&h, &before, sizeof(h)))
			snprintf(msg, sizeof(msg), "*out written on error");
		else
			rc = 0;
	out:
		if (write(pfd[1], msg, strlen(msg)) < 0)
			rc = 2;
		_exit(rc);
	}
	close(pfd[1]);
	char msg[SM_DIAG_MAX + 256];
	size_t n = 0;
	for (;;) {
		ssize_t k = read(pfd[0], msg + n, sizeof(msg) - 1 - n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		n += (size_t)k;
	}
	msg[n] = '\0';
	close(pfd[0]);
	int status = 0;
	while (waitpid(pid, &status, 0) < 0)
		assert_int_equal(errno, EINTR);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		fail_msg("%s: %s (child status %d)", name, *msg ? msg : "the check did not run",
		         status);
}

static void test_errors(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(ecases) / sizeof(ecases[0]); i++) {
		const struct ecase *c = &ecases[i];
		home_new();
		put_file(".ssh/config", c->config, 0644);
		for (size_t j = 0; j < 2 && c->extra[j].rel; j++)
			put_file(c->extra[j].rel, c->extra[j].text,
			         !strcmp(c->extra[j].rel, ".ssh/gw") ? 0664 : 0644);
		check_error(c->config, c->err, c->msg, NULL);
	}
}

static void test_error_limits(void **state)
{
	(void)state;
	home_new();

	/* A line over 4096 bytes. */
	size_t n = 5000;
	char *big = malloc(n + 64);
	assert_non_null(big);
	int o = snprintf(big, n + 64, "Port 22\nUser ");
	memset(big + o, 'u', n);
	snprintf(big + o + n, 64, "\n");
	put_file(".ssh/config", big, 0644);
	check_error("long line", SM_EINVAL, "{H}/.ssh/config:2: line longer than 4096 bytes", NULL);
	free(big);

	/* A file over the size cap, made of harmless comment lines. */
	size_t total = ((1u << 20) / 100 + 2) * 100; /* whole 100-byte lines */
	big = malloc(total + 1);
	assert_non_null(big);
	for (size_t i = 0; i < total; i += 100) {
		memset(big + i, '#', 99);
		big[i + 99] = '\n';
	}
	big[total] = '\0';
	put_file(".ssh/config", big, 0644);
	check_error("huge file", SM_EINVAL, "is larger than", NULL);
	free(big);

	/* Include fan-out: 257 files in all (nesting alone stays under 16). */
	big = malloc(4096);
	assert_non_null(big);
	o = snprintf(big, 4096, "Include");
	for (int i = 0; i < 257; i++)
		o += snprintf(big + o, 4096 - (size_t)o, " leaf");
	snprintf(big + o, 4096 - (size_t)o, "\n");
	put_file(".ssh/config", big, 0644);
	put_file(".ssh/leaf", "Port 1\n", 0644);
	check_error("fan-out", SM_EINVAL, "{H}/.ssh/config:1: Include reads more than 256 files",
	            NULL);
	free(big);

	/* ~/.ssh/config writable by others: refused as ssh does; an explicit path
	 * (like ssh -F) is not checked. */
	put_file(".ssh/config", "Port 2\n", 0666);
	check_error("world-writable config", SM_EACCES,
	            "bad owner or permissions on ssh config '{H}/.ssh/config'", NULL);
	char p[PATH_MAX];
	snprintf(p, sizeof(p), "%s/.ssh/config", g_home);
	struct sm_ssh_host_cfg h;
	struct sm_diag d;
	assert_int_equal(sm_ssh_config_resolve(p, "host", NULL, 0, &h, &d), SM_OK);
	assert_int_equal(h.port, 2);
	sm_ssh_host_cfg_release(&h);

	/* The config path is a directory: unreadable. */
	snprintf(p, sizeof(p), "%s/.ssh", g_home);
	check_error("directory", SM_EISDIR, "cannot read ssh config '{H}/.ssh': is a directory", p);

	/* Unreadable: root reads anything, so the check runs as nobody. */
	put_file(".ssh/config", "Port 2\n", 0000);
	check_error_unprivileged("mode 000", SM_EACCES,
	                         "cannot read ssh config '{H}/.ssh/config': permission denied");

	/* Bad arguments. */
	memset(&h, 0x5a, sizeof(h));
	assert_int_equal(sm_ssh_config_resolve(NULL, "", NULL, 0, &h, &d), SM_EINVAL);
	assert_int_equal(sm_ssh_config_resolve(NULL, NULL, NULL, 0, &h, &d), SM_EINVAL);
	assert_int_equal(sm_ssh_config_resolve(NULL, "h", NULL, -1, &h, &d), SM_EINVAL);
	assert_int_equal(sm_ssh_config_resolve(NULL, "h", NULL, 65536, &h, &d), SM_EINVAL);
}

/* An explicit path that does not exist is fine too, and HOME still gives the defaults. */
static void test_explicit_missing(void **state)
{
	(void)state;
	home_new();
	put_file(".ssh/config", "Port 9\n", 0644); /* not read: another path is given */
	char p[PATH_MAX];
	snprintf(p, sizeof(p), "%s/nope/config", g_home);
	struct sm_ssh_host_cfg h;
	struct sm_diag d;
	if (sm_ssh_config_resolve(p, "Host1", "", 0, &h, &d) != SM_OK)
		fail_msg("%s", d.msg);
	assert_string_equal(h.hostname, "Host1");
	assert_int_equal(h.port, 22);
	assert_null(h.user);
	assert_list("identity_files", "explicit", h.identity_files, h.n_identity_files, default_ids,
	            3);
	assert_list("known_hosts", "explicit", h.known_hosts, h.n_known_hosts, default_khs, 1);
	sm_ssh_host_cfg_release(&h);
}

/* ProxyJump / ProxyCommand (the first of either wins; "none" too; tokens
 * in ProxyCommand), HostKeyAlias, IdentityAgent, BatchMode, AddressFamily,
 * Password- and PubkeyAuthentication. */
static void test_proxy_and_more(void **state)
{
	(void)state;
	home_new();
	put_file(".ssh/config",
	         "Host j1\n  ProxyJump a,me@b:2222\n  ProxyCommand nc %h %p\n"
	         "Host c1\n  HostName real.example\n  Port 2200\n  User bob\n"
	         "  ProxyCommand ssh -W '[%h]:%p' -l %r gw # %n %%\n  ProxyJump x\n"
	         "Host n1\n  ProxyJump none\nHost n1 n2\n  ProxyJump later\n"
	         "Host o1\n  HostKeyAlias alias1\n  IdentityAgent ~/agent-%h\n  BatchMode yes\n"
	         "  AddressFamily inet6\n  PasswordAuthentication no\n  PubkeyAuthentication "
	         "host-bound\n"
	         "Host o2\n  IdentityAgent none\n  PubkeyAuthentication no\n  AddressFamily inet\n"
	         "Host o3\n  IdentityAgent $SM_TEST_AGENT\n",
	         0644);
	struct sm_ssh_host_cfg h;
	struct sm_diag d;
	if (sm_ssh_config_resolve(NULL, "j1", NULL, 0, &h, &d) != SM_OK)
		fail_msg("%s", d.msg);
	assert_string_equal(h.proxy_jump, "a,me@b:2222");
	assert_null(h.proxy_command);
	assert_false(h.batch_mode);
	assert_int_equal(h.address_family, AF_UNSPEC);
	assert_true(h.password_auth);
	assert_true(h.pubkey_auth);
	assert_null(h.host_key_alias);
	assert_null(h.identity_agent);
	sm_ssh_host_cfg_release(&h);
	if (sm_ssh_config_resolve(NULL, "c1", NULL, 0, &h, &d) != SM_OK)
		fail_msg("%s", d.msg);
	assert_null(h.proxy_jump);
	assert_string_equal(h.proxy_command, "ssh -W '[real.example]:2200' -l bob gw # c1 %");
	sm_ssh_host_cfg_release(&h);
	for (int i = 0; i < 2; i++) {
		if (sm_ssh_config_resolve(NULL, i ? "n2" : "n1", NULL, 0, &h, &d) != SM_OK)
			fail_msg("%s", d.msg);
		if (i)
			assert_string_equal(h.proxy_jump, "later");
		else
			assert_null(h.proxy_jump);
		assert_null(h.proxy_command);
		sm_ssh_host_cfg_release(&h);
	}
	if (sm_ssh_config_resolve(NULL, "o1", NULL, 0, &h, &d) != SM_OK)
		fail_msg("%s", d.msg);
	assert_string_equal(h.host_key_alias, "alias1");
	char want[PATH_MAX];
	snprintf(want, sizeof(want), "%s/agent-o1", g_home);
	assert_string_equal(h.identity_agent, want);
	assert_true(h.batch_mode);
	assert_int_equal(h.address_family, AF_INET6);
	assert_false(h.password_auth);
	assert_true(h.pubkey_auth);
	sm_ssh_host_cfg_release(&h);
	if (sm_ssh_config_resolve(NULL, "o2", NULL, 0, &h, &d) != SM_OK)
		fail_msg("%s", d.msg);
	assert_string_equal(h.identity_agent, "none");
	assert_false(h.pubkey_auth);
	assert_int_equal(h.address_family, AF_INET);
	sm_ssh_host_cfg_release(&h);
	setenv("SM_TEST_AGENT", "/run/agent.sock", 1);
	if (sm_ssh_config_resolve(NULL, "o3", NULL, 0, &h, &d) != SM_OK)
		fail_msg("%s", d.msg);
	assert_string_equal(h.identity_agent, "/run/agent.sock");
	sm_ssh_host_cfg_release(&h);
	unsetenv("SM_TEST_AGENT");
}

/* GlobalKnownHostsFile (default: /etc/ssh/ssh_known_hosts{,2}; several on
 * a line, the first line wins, `~` and tokens expanded) and HashKnownHosts. */
static void test_global_known_hosts(void **state)
{
	(void)state;
	static const char *const def[] = { "/etc/ssh/ssh_known_hosts",
		                           "/etc/ssh/ssh_known_hosts2" };
	home_new();
	put_file(".ssh/config", "Host other\n  GlobalKnownHostsFile /x\n", 0644);
	struct sm_ssh_host_cfg h;
	struct sm_diag d;
	if (sm_ssh_config_resolve(NULL, "host", NULL, 0, &h, &d) != SM_OK)
		fail_msg("%s", d.msg);
	assert_list("global", "default", h.global_known_hosts, h.n_global_known_hosts, def, 2);
	assert_false(h.hash_known_hosts);
	sm_ssh_host_cfg_release(&h);

	static const char *const two[] = { "{H}/g1", "/etc/g-host" };
	put_file(".ssh/config",
	         "Host host\n  GlobalKnownHostsFile ~/g1 /etc/g-%h\n  GlobalKnownHostsFile /no\n"
	         "  HashKnownHosts yes\n",
	         0644);
	if (sm_ssh_config_resolve(NULL, "host", NULL, 0, &h, &d) != SM_OK)
		fail_msg("%s", d.msg);
	assert_list("global", "set", h.global_known_hosts, h.n_global_known_hosts, two, 2);
	assert_true(h.hash_known_hosts);
	sm_ssh_host_cfg_release(&h);

	put_file(".ssh/config", "GlobalKnownHostsFile none\nHashKnownHosts maybe\n", 0644);
	assert_int_equal(sm_ssh_config_resolve(NULL, "host", NULL, 0, &h, &d), SM_EINVAL);
	assert_non_null(strstr(d.msg, "config:2: HashKnownHosts 'maybe' is not yes or no"));
	put_file(".ssh/config", "GlobalKnownHostsFile none\n", 0644);
	if (sm_ssh_config_resolve(NULL, "host", NULL, 0, &h, &d) != SM_OK)
		fail_msg("%s", d.msg);
	assert_int_equal(h.n_global_known_hosts, 0);
	sm_ssh_host_cfg_release(&h);
	home_free();
}

struct pcase {
	const char *pattern, *s;
	bool match;
};

static const struct pcase pcases[] = {
	{ "*", "", true },
	{ "*", "abc", true },
	{ "", "", true },
	{ "", "a", false },
	{ "abc", "abc", true },
	{ "abc", "abcd", false },
	{ "abcd", "abc", false },
	{ "a*c", "abc", true },
	{ "a*c", "ac", true },
	{ "a*c", "ab", false },
	{ "a*c", "abcbc", true },
	{ "a*c", "abcb", false },
	{ "?", "a", true },
	{ "?", "", false },
	{ "?", "ab", false },
	{ "a?c", "abc", true },
	{ "a?c", "ac", false },
	{ "*?", "", false },
	{ "*?", "x", true },
	{ "**a", "a", true },
	{ "a*b*c", "axxbyyc", true },
	{ "a*b*c", "axxbyy", false },
	{ "*.example.com", "www.example.com", true },
	{ "*.example.com", "example.com", false },
	{ "10.0.0.*", "10.0.0.17", true },
	{ "10.0.0.?", "10.0.0.17", false },
	{ "[ab]", "[ab]", true },
	{ "[ab]", "a", false },
	{ "ABC", "abc", false }, /* exact: Host lowercases both sides itself */
	{ "*a*a*a*a*a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", false },
};

static void test_pattern(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(pcases) / sizeof(pcases[0]); i++) {
		const struct pcase *c = &pcases[i];
		if (sm_ssh_pattern_match(c->pattern, c->s) != c->match)
			fail_msg("'%s' vs '%s': want %d", c->pattern, c->s, c->match);
	}
	assert_false(sm_ssh_pattern_match(NULL, "a"));
	assert_false(sm_ssh_pattern_match("a", NULL));
}

/* Telling an encrypted private key from a plain one by its first lines
 * (the starts of real ssh-keygen outputs; the rest is never read). */
static void test_key_encrypted(void **state)
{
	(void)state;
	static const struct {
		const char *text;
		bool encrypted;
	} keys[] = {
		/* OpenSSH format, aes256-ctr (ssh-keygen -N pass), across lines */
		{ "-----BEGIN OPENSSH PRIVATE KEY-----\n"
		  "b3BlbnNzaC1rZXktdjEAAAAACmFlczI1Ni1jdHIAAAAGYmNyeXB0AAAAGAAAABCFO1tVd0\n"
		  "WSGWn+DBB6YALjAAAAEAAAAAEAAAAzAAAAC3NzaC1lZDI1NTE5AAAAIKGFs7M/kXQ+qoaC\n",
		  true },
		{ "-----BEGIN OPENSSH PRIVATE KEY-----\r\n"
		  "b3BlbnNzaC1rZXktdjEAAAAACmFl\r\nczI1Ni1jdHI=\r\n",
		  true },
		/* OpenSSH format, cipher "none" */
		{ "-----BEGIN OPENSSH PRIVATE KEY-----\n"
		  "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n"
		  "QyNTUxOQAAACDlAxVpT4miXQna6E1765AU4qndaqCfC/5xzu+MNb4TvAAAAJDh+VSB4flU\n",
		  false },
		/* traditional PEM, encrypted and not */
		{ "-----BEGIN EC PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n"
		  "DEK-Info: AES-128-CBC,ED1399F9164C51498CEABE30DB7B92A6\n\nMHcC\n",
		  true },
		{ "-----BEGIN RSA PRIVATE KEY-----\r\nProc-Type: 4,ENCRYPTED\r\nDEK-Info: x\r\n",
		  true },
		{ "-----BEGIN EC PRIVATE KEY-----\n"
		  "MHcCAQEEILE5wCOOLv4A6oCkQgl+81loMvkFRM9kGHQQc2+bIEb6oAoGCCqGSM49\n",
		  false },
		/* PKCS#8, encrypted and not */
		{ "-----BEGIN ENCRYPTED PRIVATE KEY-----\n"
		  "MIHsMFcGCSqGSIb3DQEFDTBKMCkGCSqGSIb3DQEFDDAcBAj/LEHHSvh7NAICCAAw\n",
		  true },
		{ "-----BEGIN PRIVATE KEY-----\n"
		  "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgjCmUNWraO3XCMIAh\n",
		  false },
		/* what cannot be told: not encrypted (libssh2 then says why) */
		{ "", false },
		{ "PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: aes256-cbc\n", false },
		{ "-----BEGIN OPENSSH PRIVATE KEY-----\n", false },
		{ "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAABAGFlcw==\n",
		  false },
		{ "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEA/////25vbmU=\n",
		  false },
		{ "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjAAAAAACmFlczI1Ni1jdHI=\n",
		  false },
		{ "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNz", false },
		{ "-----BEGIN EC PRIVATE KEY-----", false },
		{ "-----BEGIN EC PRIVATE KEY-----\nDEK-Info: x\nProc-Type: 4,ENCRYPTED\n", false },
	};
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (sm_ssh_key_encrypted(keys[i].text) != keys[i].encrypted)
			fail_msg("key %zu (%.40s...): want %s", i, keys[i].text,
			         keys[i].encrypted ? "encrypted" : "not encrypted");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_resolve, teardown),
		cmocka_unit_test_teardown(test_options, teardown),
		cmocka_unit_test_teardown(test_errors, teardown),
		cmocka_unit_test_teardown(test_error_limits, teardown),
		cmocka_unit_test_teardown(test_explicit_missing, teardown),
		cmocka_unit_test_teardown(test_global_known_hosts, teardown),
		cmocka_unit_test_teardown(test_proxy_and_more, teardown),
		cmocka_unit_test(test_pattern),
		cmocka_unit_test(test_key_encrypted),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
