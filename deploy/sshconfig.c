/*
 * OpenSSH client configuration for one host (see sshconfig.h): one pass over
 * ~/.ssh/config and its Includes, keeping the first value of each keyword
 * that applies to the alias, then one expansion step (`~`, %-tokens) once the
 * host name, port and user are known, as ssh does.
 */
#include "sshconfig.h"

#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <limits.h>
#include <pwd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../common/util.h"

#define SSHCFG_MAX_LINE 4096       /* bytes per line, without the newline */
#define SSHCFG_MAX_FILE (1u << 20) /* bytes per config file */
#define SSHCFG_MAX_DEPTH 16        /* Include nesting, as ssh's READCONF_MAX_DEPTH */
#define SSHCFG_MAX_FILES 256       /* files read through Include, in all */
#define SSHCFG_MAX_VALUES 100      /* IdentityFile / UserKnownHostsFile entries */
#define SSHCFG_MAX_PATH 4096       /* an expanded file or host name */
#define SSHCFG_PW_BUF_MAX (1u << 20)

enum sshcfg_kw {
	SSHCFG_HOST,
	SSHCFG_MATCH,
	SSHCFG_INCLUDE,
	SSHCFG_HOSTNAME,
	SSHCFG_PORT,
	SSHCFG_USER,
	SSHCFG_IDENTITYFILE,
	SSHCFG_IDENTITIESONLY,
	SSHCFG_KNOWNHOSTS,
	SSHCFG_GLOBALKNOWNHOSTS,
	SSHCFG_HASHKNOWNHOSTS,
	SSHCFG_STRICT,
	SSHCFG_CONNECTTIMEOUT,
	SSHCFG_ALIVEINTERVAL,
	SSHCFG_ALIVECOUNTMAX,
	SSHCFG_PROXYJUMP,
	SSHCFG_PROXYCOMMAND,
	SSHCFG_HOSTKEYALIAS,
	SSHCFG_IDENTITYAGENT,
	SSHCFG_BATCHMODE,
	SSHCFG_ADDRESSFAMILY,
	SSHCFG_PASSWORDAUTH,
	SSHCFG_PUBKEYAUTH,
	SSHCFG_IGNOREUNKNOWN,
	SSHCFG_IGNORED, /* known to ssh, no bearing on an SFTP connection */
	SSHCFG_REFUSED, /* known to ssh, changes the connection: refused where it applies */
};

/*
 * Every keyword of OpenSSH's ssh_config (up to 9.x, and Debian's GSSAPI
 * ones). SSHCFG_IGNORED ones change nothing syncmgr does (forwardings,
 * terminals, multiplexing, logging: OpenSSH's sftp turns most of them off
 * itself); SSHCFG_REFUSED ones would make the connection other than ssh's,
 * so the first one that applies to the host stops the run, unless its
 * value is one of `harmless` (comma-separated; "+" = any value adding to
 * the defaults). A keyword not in the table is an error, as in ssh, unless
 * IgnoreUnknown names it.
 */
static const struct {
	const char *name; /* as ssh_config(5) spells it; matched case-insensitively */
	enum sshcfg_kw kw;
	const char *harmless; /* SSHCFG_REFUSED: values that change nothing */
} sshcfg_keywords[] = {
	{ "Host", SSHCFG_HOST, NULL },
	{ "Match", SSHCFG_MATCH, NULL },
	{ "Include", SSHCFG_INCLUDE, NULL },
	{ "HostName", SSHCFG_HOSTNAME, NULL },
	{ "Port", SSHCFG_PORT, NULL },
	{ "User", SSHCFG_USER, NULL },
	{ "IdentityFile", SSHCFG_IDENTITYFILE, NULL },
	{ "IdentitiesOnly", SSHCFG_IDENTITIESONLY, NULL },
	{ "UserKnownHostsFile", SSHCFG_KNOWNHOSTS, NULL },
	{ "GlobalKnownHostsFile", SSHCFG_GLOBALKNOWNHOSTS, NULL },
	{ "HashKnownHosts", SSHCFG_HASHKNOWNHOSTS, NULL },
	{ "StrictHostKeyChecking", SSHCFG_STRICT, NULL },
	{ "ConnectTimeout", SSHCFG_CONNECTTIMEOUT, NULL },
	{ "ServerAliveInterval", SSHCFG_ALIVEINTERVAL, NULL },
	{ "ServerAliveCountMax", SSHCFG_ALIVECOUNTMAX, NULL },
	{ "ProxyJump", SSHCFG_PROXYJUMP, NULL },
	{ "ProxyCommand", SSHCFG_PROXYCOMMAND, NULL },
	{ "HostKeyAlias", SSHCFG_HOSTKEYALIAS, NULL },
	{ "IdentityAgent", SSHCFG_IDENTITYAGENT, NULL },
	{ "BatchMode", SSHCFG_BATCHMODE, NULL },
	{ "AddressFamily", SSHCFG_ADDRESSFAMILY, NULL },
	{ "PasswordAuthentication", SSHCFG_PASSWORDAUTH, NULL },
	{ "PubkeyAuthentication", SSHCFG_PUBKEYAUTH, NULL },
	{ "DSAAuthentication", SSHCFG_PUBKEYAUTH, NULL },
	{ "IgnoreUnknown", SSHCFG_IGNOREUNKNOWN, NULL },
	/* changes the connection: refused where it applies */
	{ "BindAddress", SSHCFG_REFUSED, "" },
	{ "BindInterface", SSHCFG_REFUSED, "" },
	{ "CanonicalizeHostname", SSHCFG_REFUSED, "no,none" },
	{ "CertificateFile", SSHCFG_REFUSED, "none" },
	{ "Ciphers", SSHCFG_REFUSED, "+" },
	{ "MACs", SSHCFG_REFUSED, "+" },
	{ "KexAlgorithms", SSHCFG_REFUSED, "+" },
	{ "HostKeyAlgorithms", SSHCFG_REFUSED, "+" },
	{ "PubkeyAcceptedAlgorithms", SSHCFG_REFUSED, "+" },
	{ "PubkeyAcceptedKeyTypes", SSHCFG_REFUSED, "+" },
	{ "KnownHostsCommand", SSHCFG_REFUSED, "none" },
	{ "PKCS11Provider", SSHCFG_REFUSED, "none" },
	{ "SmartcardDevice", SSHCFG_REFUSED, "none" },
	{ "SecurityKeyProvider", SSHCFG_REFUSED, "internal" },
	{ "RevokedHostKeys", SSHCFG_REFUSED, "none" },
	{ "VerifyHostKeyDNS", SSHCFG_REFUSED, "no" },
	{ "RequiredRSASize", SSHCFG_REFUSED, "1024" },
	{ "Tag", SSHCFG_REFUSED, "" },
	{ "RefuseConnection", SSHCFG_REFUSED, "no" },
	/* no bearing on an SFTP connection */
	{ "AddKeysToAgent", SSHCFG_IGNORED, NULL },
	{ "CanonicalDomains", SSHCFG_IGNORED, NULL }, /* inert without CanonicalizeHostname */
	{ "CanonicalizeFallbackLocal", SSHCFG_IGNORED, NULL },
	{ "CanonicalizeMaxDots", SSHCFG_IGNORED, NULL },
	{ "CanonicalizePermittedCNAMEs", SSHCFG_IGNORED, NULL },
	{ "CASignatureAlgorithms", SSHCFG_IGNORED, NULL }, /* certificates only */
	{ "ChallengeResponseAuthentication", SSHCFG_IGNORED, NULL },
	{ "ChannelTimeout", SSHCFG_IGNORED, NULL },
	{ "CheckHostIP", SSHCFG_IGNORED, NULL },
	{ "Cipher", SSHCFG_IGNORED, NULL }, /* SSH protocol 1 */
	{ "ClearAllForwardings", SSHCFG_IGNORED, NULL },
	{ "Compression", SSHCFG_IGNORED, NULL },
	{ "CompressionLevel", SSHCFG_IGNORED, NULL },
	{ "ConnectionAttempts", SSHCFG_IGNORED, NULL },
	{ "ControlMaster", SSHCFG_IGNORED, NULL },
	{ "ControlPath", SSHCFG_IGNORED, NULL },
	{ "ControlPersist", SSHCFG_IGNORED, NULL },
	{ "DynamicForward", SSHCFG_IGNORED, NULL },
	{ "EnableEscapeCommandline", SSHCFG_IGNORED, NULL },
	{ "EnableSSHKeysign", SSHCFG_IGNORED, NULL },
	{ "EscapeChar", SSHCFG_IGNORED, NULL },
	{ "ExitOnForwardFailure", SSHCFG_IGNORED, NULL },
	{ "FingerprintHash", SSHCFG_IGNORED, NULL },
	{ "ForkAfterAuthentication", SSHCFG_IGNORED, NULL },
	{ "ForwardAgent", SSHCFG_IGNORED, NULL },
	{ "ForwardX11", SSHCFG_IGNORED, NULL },
	{ "ForwardX11Timeout", SSHCFG_IGNORED, NULL },
	{ "ForwardX11Trusted", SSHCFG_IGNORED, NULL },
	{ "GatewayPorts", SSHCFG_IGNORED, NULL },
	{ "GSSAPIAuthentication", SSHCFG_IGNORED, NULL },
	{ "GSSAPIClientIdentity", SSHCFG_IGNORED, NULL },
	{ "GSSAPIDelegateCredentials", SSHCFG_IGNORED, NULL },
	{ "GSSAPIKeyExchange", SSHCFG_IGNORED, NULL },
	{ "GSSAPIKexAlgorithms", SSHCFG_IGNORED, NULL },
	{ "GSSAPIRenewalForcesRekey", SSHCFG_IGNORED, NULL },
	{ "GSSAPIServerIdentity", SSHCFG_IGNORED, NULL },
	{ "GSSAPITrustDns", SSHCFG_IGNORED, NULL },
	{ "HostbasedAcceptedAlgorithms", SSHCFG_IGNORED, NULL },
	{ "HostbasedAuthentication", SSHCFG_IGNORED, NULL },
	{ "HostbasedKeyTypes", SSHCFG_IGNORED, NULL },
	{ "IPQoS", SSHCFG_IGNORED, NULL },
	{ "KbdInteractiveAuthentication", SSHCFG_IGNORED, NULL },
	{ "KbdInteractiveDevices", SSHCFG_IGNORED, NULL },
	{ "KeepAlive", SSHCFG_IGNORED, NULL },
	{ "LocalCommand", SSHCFG_IGNORED, NULL },
	{ "LocalForward", SSHCFG_IGNORED, NULL },
	{ "LogLevel", SSHCFG_IGNORED, NULL },
	{ "LogVerbose", SSHCFG_IGNORED, NULL },
	{ "NoHostAuthenticationForLocalhost", SSHCFG_IGNORED, NULL }, /* stricter without */
	{ "NumberOfPasswordPrompts", SSHCFG_IGNORED, NULL },
	{ "ObscureKeystrokeTiming", SSHCFG_IGNORED, NULL },
	{ "PermitLocalCommand", SSHCFG_IGNORED, NULL },
	{ "PermitRemoteOpen", SSHCFG_IGNORED, NULL },
	{ "PreferredAuthentications", SSHCFG_IGNORED, NULL },
	{ "Protocol", SSHCFG_IGNORED, NULL },
	{ "ProxyUseFdpass", SSHCFG_IGNORED, NULL },
	{ "RekeyLimit", SSHCFG_IGNORED, NULL },
	{ "RemoteCommand", SSHCFG_IGNORED, NULL }, /* sftp sets it to none */
	{ "RemoteForward", SSHCFG_IGNORED, NULL },
	{ "RequestTTY", SSHCFG_IGNORED, NULL },
	{ "RhostsRSAAuthentication", SSHCFG_IGNORED, NULL },
	{ "RSAAuthentication", SSHCFG_IGNORED, NULL },
	{ "SendEnv", SSHCFG_IGNORED, NULL },
	{ "SessionType", SSHCFG_IGNORED, NULL },
	{ "SetEnv", SSHCFG_IGNORED, NULL },
	{ "StdinNull", SSHCFG_IGNORED, NULL },
	{ "StreamLocalBindMask", SSHCFG_IGNORED, NULL },
	{ "StreamLocalBindUnlink", SSHCFG_IGNORED, NULL },
	{ "SyslogFacility", SSHCFG_IGNORED, NULL },
	{ "TCPKeepAlive", SSHCFG_IGNORED, NULL },
	{ "Tunnel", SSHCFG_IGNORED, NULL },
	{ "TunnelDevice", SSHCFG_IGNORED, NULL },
	{ "UpdateHostKeys", SSHCFG_IGNORED, NULL },
	{ "UsePrivilegedPort", SSHCFG_IGNORED, NULL },
	{ "VisualHostKey", SSHCFG_IGNORED, NULL },
	{ "WarnWeakCrypto", SSHCFG_IGNORED, NULL },
	{ "XAuthLocation", SSHCFG_IGNORED, NULL },
};

#define SSHCFG_NKW (sizeof(sshcfg_keywords) / sizeof(sshcfg_keywords[0]))

/* Raw (unexpanded) values of a keyword that accumulates. */
struct sshcfg_list {
	char **v;
	size_t n;
};

/* What the config files said for the alias; -1 / NULL = not set yet. */
struct sshcfg_state {
	const char *alias;
	char *alias_lc; /* Host patterns match the lowercased alias */
	const char *home;
	int nfiles; /* files read through Include */
	char *hostname;
	char *user;
	int port;
	int identities_only;
	int strict;
	int connect_timeout;
	int alive_interval;
	int alive_count_max;
	struct sshcfg_list ids;
	struct sshcfg_list khs;
	bool khs_set; /* UserKnownHostsFile: the first line that applies wins, as in ssh */
	struct sshcfg_list gkhs;
	bool gkhs_set; /* GlobalKnownHostsFile: the same */
	int hash_known_hosts;
	const char *url_user; /* for Match user: the URL's, as ssh's -l */
	const char *login;    /* for Match user and localuser */
	int proxy_kind;       /* ProxyJump / ProxyCommand, whichever comes first: SSHCFG_PROXY_* */
	char *proxy;
	char *host_key_alias;
	char *identity_agent;
	int batch_mode;
	int address_family; /* -1, AF_UNSPEC, AF_INET, AF_INET6 */
	int password_auth;
	int pubkey_auth;
	char *ignore_unknown;  /* IgnoreUnknown's pattern list */
	bool seen[SSHCFG_NKW]; /* a refused keyword applied once: later ones do not count */
};

enum { SSHCFG_PROXY_UNSET = 0, SSHCFG_PROXY_NONE, SSHCFG_PROXY_JUMP, SSHCFG_PROXY_COMMAND };

/* The file being read, for messages and Include. */
struct sshcfg_file {
	const char *path;
	int line;
	int depth;
	bool nevermatch; /* included from an inactive block: nothing in it applies */
};

/* Values for the %-tokens; NULL = cannot be expanded here. */
struct sshcfg_tokens {
	const char *d, *h, *n, *p, *r, *u;
};

static void sshcfg_lower(char *s)
{
	for (; *s; s++)
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s - 'A' + 'a');
}

static void sshcfg_list_release(struct sshcfg_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

static enum sm_err sshcfg_list_add(struct sshcfg_list *l, const char *s)
{
	char *dup = strdup(s);
	if (!dup)
		return SM_ENOMEM;
	char **v = realloc(l->v, (l->n + 1) * sizeof(*v));
	if (!v) {
		free(dup);
		return SM_ENOMEM;
	}
	l->v = v;
	l->v[l->n++] = dup;
	return SM_OK;
}

static enum sm_err sshcfg_nomem(struct sm_diag *d)
{
	return sm_diag_set(d, SM_ENOMEM, ENOMEM, "out of memory");
}

/*
 * The next word of *cur, like ssh's argv_split: split at blanks, double and
 * single quotes group (and are removed), backslash escapes a quote, a
 * backslash or (outside quotes) a blank, and a '#' that starts a word ends
 * the line. Unescaped in place; *arg is NULL at the end of the line.
 */
static enum sm_err sshcfg_next_arg(const struct sshcfg_file *f, char **cur, char **arg,
                                   struct sm_diag *d)
{
	char *s = *cur;
	while (*s == ' ' || *s == '\t')
		s++;
	if (*s == '\0' || *s == '#') {
		*cur = s;
		*arg = NULL;
		return SM_OK;
	}
	char *start = s, *o = s;
	char quote = 0;
	for (; *s; s++) {
		if (*s == '\\' &&
		    (s[1] == '"' || s[1] == '\'' || s[1] == '\\' || (!quote && s[1] == ' '))) {
			s++;
			*o++ = *s;
		} else if (!quote && (*s == ' ' || *s == '\t')) {
			break;
		} else if (!quote && (*s == '"' || *s == '\'')) {
			quote = *s;
		} else if (quote && *s == quote) {
			quote = 0;
		} else {
			*o++ = *s;
		}
	}
	if (quote)
		return sm_diag_set(d, SM_EINVAL, 0, "%s:%d: unterminated quote", f->path, f->line);
	if (*s)
		s++; /* the blank that ended the word; o is at or before it */
	*o = '\0';
	*cur = s;
	*arg = start;
	return SM_OK;
}

/* The one value of a single-valued keyword. */
static enum sm_err sshcfg_one_arg(const struct sshcfg_file *f, const char *kw, char **cur,
                                  char **arg, struct sm_diag *d)
{
	char *a = NULL, *extra = NULL;
	enum sm_err err = sshcfg_next_arg(f, cur, &a, d);
	if (err != SM_OK)
		return err;
	if (!a || !*a)
		return sm_diag_set(d, SM_EINVAL, 0, "%s:%d: %s needs a value", f->path, f->line,
		                   kw);
	err = sshcfg_next_arg(f, cur, &extra, d);
	if (err != SM_OK)
		return err;
	if (extra)
		return sm_diag_set(d, SM_EINVAL, 0, "%s:%d: %s takes one value, got also '%s'",
		                   f->path, f->line, kw, extra);
	*arg = a;
	return SM_OK;
}

/* Every %X in v must be one of `allowed` (or %%), as ssh's percent_expand. */
static enum sm_err sshcfg_check_tokens(const struct sshcfg_file *f, const char *kw, const char *v,
                                       const char *allowed, struct sm_diag *d)
{
	for (const char *p = v; *p; p++) {
		if (*p != '%')
			continue;
		p++;
		if (*p == '\0')
			return sm_diag_set(d, SM_EINVAL, 0, "%s:%d: %s '%s' ends in a lone '%%'",
			                   f->path, f->line, kw, v);
		if (*p != '%' && !strchr(allowed, *p))
			return sm_diag_set(d, SM_EINVAL, 0,
			                   "%s:%d: unknown token '%%%c' in %s '%s'", f->path,
			                   f->line, *p, kw, v);
	}
	return SM_OK;
}

static bool sshcfg_parse_flag(const char *s, int *out)
{
	if (!strcasecmp(s, "yes") || !strcasecmp(s, "true"))
		*out = 1;
	else if (!strcasecmp(s, "no") || !strcasecmp(s, "false"))
		*out = 0;
	else
		return false;
	return true;
}

static bool sshcfg_parse_strict(const char *s, int *out)
{
	if (!strcasecmp(s, "yes") || !strcasecmp(s, "true"))
		*out = SM_SSH_STRICT_YES;
	else if (!strcasecmp(s, "no") || !strcasecmp(s, "false") || !strcasecmp(s, "off"))
		*out = SM_SSH_STRICT_NO;
	else if (!strcasecmp(s, "ask"))
		*out = SM_SSH_STRICT_ASK;
	else if (!strcasecmp(s, "accept-new"))
		*out = SM_SSH_STRICT_ACCEPT_NEW;
	else
		return false;
	return true;
}

/* Seconds, as ssh's convtime: "30", "30s", "1m30s", "2h", "1d", "1w"; "none" = 0. */
static bool sshcfg_parse_time(const char *s, int *out)
{
	if (!strcasecmp(s, "none")) {
		*out = 0;
		return true;
	}
	if (!*s)
		return false;
	int64_t total = 0;
	while (*s) {
		if (*s < '0' || *s > '9')
			return false;
		int64_t v = 0;
		for (; *s >= '0' && *s <= '9'; s++) {
			v = v * 10 + (*s - '0');
			if (v > INT_MAX)
				return false;
		}
		int64_t mult = 1;
		switch (*s) {
		case '\0': break;
		case 's':
		case 'S': s++; break;
		case 'm':
		case 'M':
			mult = 60;
			s++;
			break;
		case 'h':
		case 'H':
			mult = 3600;
			s++;
			break;
		case 'd':
		case 'D':
			mult = 86400;
			s++;
			break;
		case 'w':
		case 'W':
			mult = 604800;
			s++;
			break;
		default: return false;
		}
		if (v > (INT_MAX - total) / mult)
			return false;
		total += v * mult;
	}
	*out = (int)total;
	return true;
}

static enum sm_err sshcfg_file(struct sshcfg_state *st, const char *path, int depth,
                               bool nevermatch, bool checkperm, bool *active, struct sm_diag *d);
static enum sm_err sshcfg_expand(const char *v, bool tilde, const struct sshcfg_tokens *t,
                                 char **out, struct sm_diag *d);

/* One Include argument: glob it (relative = under ~/.ssh) and read each match in place. */
static enum sm_err sshcfg_include(struct sshcfg_state *st, const struct sshcfg_file *f,
                                  const char *arg, bool *active, struct sm_diag *d)
{
	char *pattern = NULL;
	if (arg[0] == '~' && (arg[1] == '/' || arg[1] == '\0'))
		pattern = sm_strcat2(st->home, arg + 1);
	else if (arg[0] == '/')
		pattern = strdup(arg);
	else {
		size_t n = strlen(st->home) + strlen(arg) + sizeof("/.ssh/");
		pattern = malloc(n);
		if (pattern)
			snprintf(pattern, n, "%s/.ssh/%s", st->home, arg);
	}
	if (!pattern)
		return sshcfg_nomem(d);

	enum sm_err err = SM_OK;
	glob_t g;
	memset(&g, 0, sizeof(g));
	int r = glob(pattern, 0, NULL, &g);
	if (r == GLOB_NOMATCH)
		goto out; /* as ssh: an Include that matches nothing is fine */
	if (r == GLOB_NOSPACE) {
		err = sshcfg_nomem(d);
		goto out;
	}
	if (r != 0) {
		err = sm_diag_set(d, SM_EIO, 0, "%s:%d: cannot expand Include '%s'", f->path,
		                  f->line, arg);
		goto out;
	}
	if (f->depth + 1 > SSHCFG_MAX_DEPTH) {
		err = sm_diag_set(d, SM_EINVAL, ELOOP, "%s:%d: Include nested more than %d deep",
		                  f->path, f->line, SSHCFG_MAX_DEPTH);
		goto out;
	}
	bool oactive = *active;
	for (size_t i = 0; i < g.gl_pathc; i++) {
		if (++st->nfiles > SSHCFG_MAX_FILES) {
			err = sm_diag_set(d, SM_EINVAL, 0,
			                  "%s:%d: Include reads more than %d files", f->path,
			                  f->line, SSHCFG_MAX_FILES);
			goto out;
		}
		err = sshcfg_file(st, g.gl_pathv[i], f->depth + 1, f->nevermatch || !oactive, true,
		                  active, d);
		/* A Host line in the included file does not change ours. */
		*active = oactive;
		if (err != SM_OK)
			goto out;
	}
out:
	globfree(&g);
	free(pattern);
	return err;
}

static enum sm_err sshcfg_host(struct sshcfg_state *st, const struct sshcfg_file *f, char **cur,
                               bool *active, struct sm_diag *d)
{
	bool pos = false, neg = false, any = false;
	for (;;) {
		char *p = NULL;
		enum sm_err err = sshcfg_next_arg(f, cur, &p, d);
		if (err != SM_OK)
			return err;
		if (!p)
			break;
		if (!*p || (p[0] == '!' && !p[1]))
			return sm_diag_set(d, SM_EINVAL, 0, "%s:%d: Host has an empty pattern",
			                   f->path, f->line);
		any = true;
		bool negated = p[0] == '!';
		if (negated)
			p++;
		sshcfg_lower(p);
		if (sm_ssh_pattern_match(p, st->alias_lc)) {
			if (negated)
				neg = true;
			else
				pos = true;
		}
	}
	if (!any)
		return sm_diag_set(d, SM_EINVAL, 0, "%s:%d: Host needs a value", f->path, f->line);
	*active = !f->nevermatch && pos && !neg;
	return SM_OK;
}

/* ssh's match_pattern_list(): a comma-separated list of patterns, each
 * maybe negated with '!'; true when one matches and no negated one does.
 * `lower`: s is lowercase already and the patterns are compared so. */
static bool sshcfg_pattern_list(const char *s, const char *list, bool lower)
{
	bool pos = false;
	char pat[SSHCFG_MAX_LINE + 1];
	for (const char *p = list; *p;) {
		size_t n = strcspn(p, ",");
		bool neg = *p == '!';
		size_t off = neg ? 1 : 0;
		if (n > off && n - off < sizeof(pat)) {
			memcpy(pat, p + off, n - off);
			pat[n - off] = '\0';
			if (lower)
				sshcfg_lower(pat);
			if (sm_ssh_pattern_match(pat, s)) {
				if (neg)
					return false;
				pos = true;
			}
		}
		p += n + (p[n] == ',');
	}
	return pos;
}

/*
 * `Match`, as ssh evaluates it: every criterion must hold. `host` is the
 * host name so far (HostName with %h expanded, else the alias), lowercase;
 * `originalhost` the alias; `user` the remote user so far (the URL's,
 * else a User line before, else the local login); `localuser` the local
 * login; `all` always; '!' negates one. `exec`, `canonical`, `final`,
 * `localnetwork` and `tagged` are refused when ssh would evaluate them (the
 * criteria before them held): the run stops naming file and line.
 */
static enum sm_err sshcfg_match(struct sshcfg_state *st, const struct sshcfg_file *f, char **cur,
                                bool *active, struct sm_diag *d)
{
	size_t n = 0;
	bool result = true;
	for (;;) {
		char *a = NULL;
		enum sm_err err = sshcfg_next_arg(f, cur, &a, d);
		if (err != SM_OK)
			return err;
		if (!a)
			break;
		n++;
		bool neg = a[0] == '!';
		const char *crit = neg ? a + 1 : a;
		if (!strcasecmp(crit, "all")) {
			if (neg)
				result = false;
			continue;
		}
		bool takes_arg = strcasecmp(crit, "canonical") && strcasecmp(crit, "final");
		char *arg = NULL;
		if (takes_arg) {
			err = sshcfg_next_arg(f, cur, &arg, d);
			if (err != SM_OK)
				return err;
			if (!arg || !*arg)
				return sm_diag_set(d, SM_EINVAL, 0, "%s:%d: Match %s needs a value",
				                   f->path, f->line, crit);
		}
		bool m;
		if (!strcasecmp(crit, "host")) {
			char *h = NULL;
			if (st->hostname) {
				struct sshcfg_tokens ht = { .h = st->alias };
				err = sshcfg_expand(st->hostname, false, &ht, &h, d);
				if (err != SM_OK)
					return err;
			} else if (!(h = strdup(st->alias))) {
				return sshcfg_nomem(d);
			}
			sshcfg_lower(h);
			m = sshcfg_pattern_list(h, arg, true);
			free(h);
		} else if (!strcasecmp(crit, "originalhost")) {
			m = sshcfg_pattern_list(st->alias_lc, arg, true);
		} else if (!strcasecmp(crit, "user")) {
			const char *u = st->url_user && *st->url_user ? st->url_user
			                : st->user                    ? st->user
			                                              : st->login;
			m = u && sshcfg_pattern_list(u, arg, false);
		} else if (!strcasecmp(crit, "localuser")) {
			m = st->login && sshcfg_pattern_list(st->login, arg, false);
		} else if (!strcasecmp(crit, "exec") || !strcasecmp(crit, "canonical") ||
		           !strcasecmp(crit, "final") || !strcasecmp(crit, "localnetwork") ||
		           !strcasecmp(crit, "tagged")) {
			if (result && !f->nevermatch)
				return sm_diag_set(d, SM_EINVAL, 0,
				                   "%s:%d: 'Match %s' is not supported by syncmgr "
				                   "(refusing to connect otherwise than ssh would)",
				                   f->path, f->line, crit);
			m = false; /* not reached by ssh either: an earlier one failed */
		} else {
			return sm_diag_set(d, SM_EINVAL, 0,
			                   "%s:%d: unsupported Match attribute '%s'", f->path,
			                   f->line, crit);
		}
		if (neg)
			m = !m;
		if (!m)
			result = false;
	}
	if (n == 0)
		return sm_diag_set(d, SM_EINVAL, 0, "%s:%d: Match needs a value", f->path, f->line);
	*active = !f->nevermatch && result;
	return SM_OK;
}

/* Is v one of a refused keyword's harmless values (sshcfg_keywords)? */
static bool sshcfg_harmless(const char *harmless, const char *v)
{
	for (const char *p = harmless; *p;) {
		size_t n = strcspn(p, ",");
		if (n == 1 && *p == '+' && v[0] == '+')
			return true;
		if (n && strlen(v) == n && !strncasecmp(p, v, n))
			return true;
		p += n + (p[n] == ',');
	}
	return false;
}

/* IdentityFile / UserKnownHostsFile: one or several names, kept when active
 * (IdentityFile lines accumulate; the caller keeps only the first
 * UserKnownHostsFile line that applies). */
static enum sm_err sshcfg_files(const struct sshcfg_file *f, const char *kw, char **cur,
                                bool several, bool active, struct sshcfg_list *l, struct sm_diag *d)
{
	size_t n = 0;
	for (;;) {
		char *a = NULL;
		enum sm_err err = sshcfg_next_arg(f, cur, &a, d);
		if (err != SM_OK)
			return err;
		if (!a)
			break;
		if (!*a)
			return sm_diag_set(d, SM_EINVAL, 0, "%s:%d: %s needs a value", f->path,
			                   f->line, kw);
		if (n++ > 0 && !several)
			return sm_diag_set(d, SM_EINVAL, 0,
			                   "%s:%d: %s takes one value, got also '%s'", f->path,
			                   f->line, kw, a);
		if (!active)
			continue;
		err = sshcfg_check_tokens(f, kw, a, "dhpru", d);
		if (err != SM_OK)
			return err;
		if (l->n >= SSHCFG_MAX_VALUES)
			return sm_diag_set(d, SM_EINVAL, 0, "%s:%d: more than %d %s values",
			                   f->path, f->line, SSHCFG_MAX_VALUES, kw);
		if (sshcfg_list_add(l, a) != SM_OK)
			return sshcfg_nomem(d);
	}
	if (n == 0)
		return sm_diag_set(d, SM_EINVAL, 0, "%s:%d: %s needs a value", f->path, f->line,
		                   kw);
	return SM_OK;
}

/* One line (NUL-terminated, ours to modify). */
static enum sm_err sshcfg_line(struct sshcfg_state *st, const struct sshcfg_file *f, char *line,
                               bool *active, struct sm_diag *d)
{
	char *s = line;
	while (*s == ' ' || *s == '\t')
		s++;
	if (*s == '\0' || *s == '#')
		return SM_OK;
	char *word = s;
	while (*s && *s != ' ' && *s != '\t' && *s != '=')
		s++;
	char *word_end = s;
	while (*s == ' ' || *s == '\t')
		s++;
	if (*s == '=') /* `Key=value`, `Key = value`: one '=' is a separator */
		s++;
	*word_end = '\0';

	size_t k = 0;
	while (k < SSHCFG_NKW && strcasecmp(word, sshcfg_keywords[k].name))
		k++;
	if (k == SSHCFG_NKW) { /* as ssh: an error, unless IgnoreUnknown names it */
		char lw[SSHCFG_MAX_LINE + 1];
		snprintf(lw, sizeof(lw), "%s", word);
		sshcfg_lower(lw);
		if (st->ignore_unknown && sshcfg_pattern_list(lw, st->ignore_unknown, true))
			return SM_OK;
		return sm_diag_set(
		        d, SM_EINVAL, 0,
		        "%s:%d: bad configuration option '%s' (as ssh says; IgnoreUnknown "
		        "can name it)",
		        f->path, f->line, word);
	}
	const char *kw = sshcfg_keywords[k].name;
	if (sshcfg_keywords[k].kw == SSHCFG_IGNORED)
		return SM_OK;
	if (sshcfg_keywords[k].kw == SSHCFG_REFUSED) {
		/* the first line that applies is the one ssh would use */
		while (*s == ' ' || *s == '\t')
			s++;
		if (!*active || st->seen[k])
			return SM_OK;
		st->seen[k] = true;
		char *v1 = NULL;
		enum sm_err e1 = sshcfg_next_arg(f, &s, &v1, d);
		if (e1 != SM_OK)
			return e1;
		if (v1 && sshcfg_harmless(sshcfg_keywords[k].harmless, v1))
			return SM_OK;
		return sm_diag_set(d, SM_EINVAL, 0,
		                   "%s:%d: '%s' is not supported by syncmgr (refusing to connect "
		                   "otherwise than ssh would)",
		                   f->path, f->line, kw);
	}
	if (sshcfg_keywords[k].kw == SSHCFG_PROXYCOMMAND) {
		/* the rest of the line, as the shell will read it */
		while (*s == ' ' || *s == '\t')
			s++;
		if (!*s)
			return sm_diag_set(d, SM_EINVAL, 0, "%s:%d: ProxyCommand needs a value",
			                   f->path, f->line);
		if (!*active || st->proxy_kind != SSHCFG_PROXY_UNSET)
			return SM_OK;
		if (!strcasecmp(s, "none")) {
			st->proxy_kind = SSHCFG_PROXY_NONE;
			return SM_OK;
		}
		enum sm_err e2 = sshcfg_check_tokens(f, kw, s, "dhnpru", d);
		if (e2 != SM_OK)
			return e2;
		if (!(st->proxy = strdup(s)))
			return sshcfg_nomem(d);
		st->proxy_kind = SSHCFG_PROXY_COMMAND;
		return SM_OK;
	}

	char *v = NULL;
	int n = 0;
	int64_t i64 = 0;
	enum sm_err err = SM_OK;
	switch (sshcfg_keywords[k].kw) {
	case SSHCFG_HOST: return sshcfg_host(st, f, &s, active, d);
	case SSHCFG_MATCH: return sshcfg_match(st, f, &s, active, d);
	case SSHCFG_IGNOREUNKNOWN:
		err = sshcfg_next_arg(f, &s, &v, d);
		if (err != SM_OK)
			return err;
		if (!v || !*v)
			return sm_diag_set(d, SM_EINVAL, 0, "%s:%d: IgnoreUnknown needs a value",
			                   f->path, f->line);
		if (*active && !st->ignore_unknown) {
			if (!(st->ignore_unknown = strdup(v)))
				return sshcfg_nomem(d);
			sshcfg_lower(st->ignore_unknown);
		}
		return SM_OK;
	case SSHCFG_INCLUDE:
		for (;;) {
			err = sshcfg_next_arg(f, &s, &v, d);
			if (err != SM_OK)
				return err;
			if (!v)
				break;
			if (!*v)
				return sm_diag_set(d, SM_EINVAL, 0, "%s:%d: Include needs a value",
				                   f->path, f->line);
			n++;
			err = sshcfg_include(st, f, v, active, d);
			if (err != SM_OK)
				return err;
		}
		if (n == 0)
			return sm_diag_set(d, SM_EINVAL, 0, "%s:%d: Include needs a value", f->path,
			                   f->line);
		return SM_OK;
	case SSHCFG_IDENTITYFILE: return sshcfg_files(f, kw, &s, false, *active, &st->ids, d);
	case SSHCFG_KNOWNHOSTS: {
		bool take = *active && !st->khs_set;
		enum sm_err err = sshcfg_files(f, kw, &s, true, take, &st->khs, d);
		st->khs_set = st->khs_set || (take && err == SM_OK);
		return err;
	}
	case SSHCFG_GLOBALKNOWNHOSTS: {
		bool take = *active && !st->gkhs_set;
		enum sm_err err = sshcfg_files(f, kw, &s, true, take, &st->gkhs, d);
		st->gkhs_set = st->gkhs_set || (take && err == SM_OK);
		return err;
	}
	default: break;
	}

	err = sshcfg_one_arg(f, kw, &s, &v, d);
	if (err != SM_OK)
		return err;
	switch (sshcfg_keywords[k].kw) {
	case SSHCFG_HOSTNAME:
		if (!*active || st->hostname)
			return SM_OK;
		err = sshcfg_check_tokens(f, kw, v, "h", d);
		if (err != SM_OK)
			return err;
		st->hostname = strdup(v);
		return st->hostname ? SM_OK : sshcfg_nomem(d);
	case SSHCFG_USER:
		if (!*active || st->user)
			return SM_OK;
		st->user = strdup(v);
		return st->user ? SM_OK : sshcfg_nomem(d);
	case SSHCFG_PORT:
		if (!sm_parse_i64(v, 1, 65535, &i64))
			return sm_diag_set(d, SM_EINVAL, 0,
			                   "%s:%d: Port '%s' is not a number in 1-65535", f->path,
			                   f->line, v);
		if (*active && st->port < 0)
			st->port = (int)i64;
		return SM_OK;
	case SSHCFG_IDENTITIESONLY:
	case SSHCFG_HASHKNOWNHOSTS:
	case SSHCFG_BATCHMODE:
	case SSHCFG_PASSWORDAUTH:
	case SSHCFG_PUBKEYAUTH: {
		enum sshcfg_kw kk = sshcfg_keywords[k].kw;
		/* PubkeyAuthentication's host-bound forms are yes for a client */
		if (kk == SSHCFG_PUBKEYAUTH &&
		    (!strcasecmp(v, "unbound") || !strcasecmp(v, "host-bound")))
			n = 1;
		else if (!sshcfg_parse_flag(v, &n))
			return sm_diag_set(d, SM_EINVAL, 0, "%s:%d: %s '%s' is not yes or no",
			                   f->path, f->line, kw, v);
		int *slot = kk == SSHCFG_IDENTITIESONLY   ? &st->identities_only
		            : kk == SSHCFG_HASHKNOWNHOSTS ? &st->hash_known_hosts
		            : kk == SSHCFG_BATCHMODE      ? &st->batch_mode
		            : kk == SSHCFG_PASSWORDAUTH   ? &st->password_auth
		                                          : &st->pubkey_auth;
		if (*active && *slot < 0)
			*slot = n;
		return SM_OK;
	}
	case SSHCFG_PROXYJUMP:
		if (!*active || st->proxy_kind != SSHCFG_PROXY_UNSET)
			return SM_OK;
		if (!strcasecmp(v, "none")) {
			st->proxy_kind = SSHCFG_PROXY_NONE;
			return SM_OK;
		}
		if (!(st->proxy = strdup(v)))
			return sshcfg_nomem(d);
		st->proxy_kind = SSHCFG_PROXY_JUMP;
		return SM_OK;
	case SSHCFG_HOSTKEYALIAS:
	case SSHCFG_IDENTITYAGENT: {
		char **slot = sshcfg_keywords[k].kw == SSHCFG_HOSTKEYALIAS ? &st->host_key_alias
		                                                           : &st->identity_agent;
		if (sshcfg_keywords[k].kw == SSHCFG_IDENTITYAGENT && v[0] != '$') {
			err = sshcfg_check_tokens(f, kw, v, "dhpru", d);
			if (err != SM_OK)
				return err;
		}
		if (!*active || *slot)
			return SM_OK;
		return (*slot = strdup(v)) ? SM_OK : sshcfg_nomem(d);
	}
	case SSHCFG_ADDRESSFAMILY:
		if (!strcasecmp(v, "any"))
			n = AF_UNSPEC;
		else if (!strcasecmp(v, "inet"))
			n = AF_INET;
		else if (!strcasecmp(v, "inet6"))
			n = AF_INET6;
		else
			return sm_diag_set(d, SM_EINVAL, 0,
			                   "%s:%d: AddressFamily '%s' is not any, inet or inet6",
			                   f->path, f->line, v);
		if (*active && st->address_family < 0)
			st->address_family = n;
		return SM_OK;
	case SSHCFG_STRICT:
		if (!sshcfg_parse_strict(v, &n))
			return sm_diag_set(d, SM_EINVAL, 0,
			                   "%s:%d: %s '%s' is not yes, no, ask, accept-new or off",
			                   f->path, f->line, kw, v);
		if (*active && st->strict < 0)
			st->strict = n;
		return SM_OK;
	case SSHCFG_CONNECTTIMEOUT:
	case SSHCFG_ALIVEINTERVAL:
		if (!sshcfg_parse_time(v, &n))
			return sm_diag_set(d, SM_EINVAL, 0,
			                   "%s:%d: %s '%s' is not a non-negative number of seconds",
			                   f->path, f->line, kw, v);
		if (sshcfg_keywords[k].kw == SSHCFG_CONNECTTIMEOUT) {
			if (*active && st->connect_timeout < 0)
				st->connect_timeout = n;
		} else if (*active && st->alive_interval < 0) {
			st->alive_interval = n;
		}
		return SM_OK;
	case SSHCFG_ALIVECOUNTMAX:
		if (!sm_parse_i64(v, 0, INT_MAX, &i64))
			return sm_diag_set(d, SM_EINVAL, 0,
			                   "%s:%d: %s '%s' is not a non-negative integer", f->path,
			                   f->line, kw, v);
		if (*active && st->alive_count_max < 0)
			st->alive_count_max = (int)i64;
		return SM_OK;
	default: break;
	}
	return SM_OK;
}

/*
 * Read a whole config file (capped) into *buf (NUL-terminated). A file that
 * does not exist sets *missing. `checkperm`: refuse a file that others could
 * have written, as ssh does for ~/.ssh/config and included files.
 */
static enum sm_err sshcfg_read(const char *path, bool checkperm, char **buf, size_t *len,
                               bool *missing, struct sm_diag *d)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		if (errno == ENOENT || errno == ENOTDIR) {
			*missing = true;
			return SM_OK;
		}
		return sm_diag_errno(d, errno, "cannot read ssh config '%s'", path);
	}
	enum sm_err err = SM_OK;
	char *p = NULL;
	size_t n = 0, cap = 0;
	struct stat sb;
	if (fstat(fd, &sb) != 0) {
		err = sm_diag_errno(d, errno, "cannot read ssh config '%s'", path);
		goto out;
	}
	if (S_ISDIR(sb.st_mode)) {
		err = sm_diag_errno(d, EISDIR, "cannot read ssh config '%s'", path);
		goto out;
	}
	if (checkperm && ((sb.st_uid != 0 && sb.st_uid != getuid()) || (sb.st_mode & 022))) {
		err = sm_diag_set(
		        d, SM_EACCES, EPERM,
		        "bad owner or permissions on ssh config '%s' (writable by others)", path);
		goto out;
	}
	for (;;) {
		if (n + 1 >= cap) {
			size_t ncap = cap ? cap * 2 : 4096;
			if (ncap > SSHCFG_MAX_FILE + 2)
				ncap = SSHCFG_MAX_FILE + 2;
			char *q = realloc(p, ncap);
			if (!q) {
				err = sshcfg_nomem(d);
				goto out;
			}
			p = q;
			cap = ncap;
		}
		ssize_t r = read(fd, p + n, cap - 1 - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			err = sm_diag_errno(d, errno, "cannot read ssh config '%s'", path);
			goto out;
		}
		if (r == 0)
			break;
		n += (size_t)r;
		if (n > SSHCFG_MAX_FILE) {
			err = sm_diag_set(d, SM_EINVAL, EFBIG,
			                  "ssh config '%s' is larger than %u bytes", path,
			                  SSHCFG_MAX_FILE);
			goto out;
		}
	}
	if (!p) { /* cannot happen: the loop allocates first */
		err = sshcfg_nomem(d);
		goto out;
	}
	p[n] = '\0';
	*buf = p;
	*len = n;
	p = NULL;
out:
	free(p);
	close(fd);
	return err;
}

static enum sm_err sshcfg_file(struct sshcfg_state *st, const char *path, int depth,
                               bool nevermatch, bool checkperm, bool *active, struct sm_diag *d)
{
	char *buf = NULL;
	size_t len = 0;
	bool missing = false;
	enum sm_err err = sshcfg_read(path, checkperm, &buf, &len, &missing, d);
	if (err != SM_OK || missing)
		return err;

	struct sshcfg_file f = { .path = path, .line = 0, .depth = depth, .nevermatch = nevermatch };
	char *p = buf, *end = buf + len;
	while (p < end) {
		f.line++;
		char *nl = memchr(p, '\n', (size_t)(end - p));
		char *le = nl ? nl : end;
		if (le - p > SSHCFG_MAX_LINE) {
			err = sm_diag_set(d, SM_EINVAL, 0, "%s:%d: line longer than %d bytes", path,
			                  f.line, SSHCFG_MAX_LINE);
			goto out;
		}
		if (memchr(p, '\0', (size_t)(le - p))) {
			err = sm_diag_set(d, SM_EINVAL, 0, "%s:%d: nul byte in line", path, f.line);
			goto out;
		}
		*le = '\0';
		for (char *t = le; t > p && (t[-1] == ' ' || t[-1] == '\t' || t[-1] == '\r');)
			*--t = '\0';
		err = sshcfg_line(st, &f, p, active, d);
		if (err != SM_OK)
			goto out;
		p = le + 1;
	}
out:
	free(buf);
	return err;
}

/* The local account: name (NULL when the uid has none) and home directory. */
static enum sm_err sshcfg_passwd(char **name, char **dir, struct sm_diag *d)
{
	long hint = sysconf(_SC_GETPW_R_SIZE_MAX);
	size_t size = hint > 0 ? (size_t)hint : 16384;
	char *buf = NULL;
	struct passwd pw, *res = NULL;
	int r;
	for (;;) {
		char *nb = realloc(buf, size);
		if (!nb) {
			free(buf);
			return sshcfg_nomem(d);
		}
		buf = nb;
		r = getpwuid_r(geteuid(), &pw, buf, size, &res);
		if (r != ERANGE || size >= SSHCFG_PW_BUF_MAX)
			break;
		size *= 2;
	}
	enum sm_err err = SM_OK;
	*name = NULL;
	*dir = NULL;
	if (r == 0 && res) {
		*name = strdup(pw.pw_name);
		*dir = pw.pw_dir && *pw.pw_dir ? strdup(pw.pw_dir) : NULL;
		if (!*name || (pw.pw_dir && *pw.pw_dir && !*dir)) {
			free(*name);
			free(*dir);
			*name = NULL;
			*dir = NULL;
			err = sshcfg_nomem(d);
		}
	}
	free(buf);
	return err;
}

/* Append n bytes to b unless the result would exceed SSHCFG_MAX_PATH. */
static enum sm_err sshcfg_put(struct sm_buf *b, const char *v, const char *s, size_t n,
                              struct sm_diag *d)
{
	if (n >= SSHCFG_MAX_PATH || b->len + n >= SSHCFG_MAX_PATH)
		return sm_diag_set(d, SM_EINVAL, ENAMETOOLONG, "'%s' expands to more than %d bytes",
		                   v, SSHCFG_MAX_PATH - 1);
	return sm_buf_append(b, s, n) == SM_OK ? SM_OK : sshcfg_nomem(d);
}

/* `~`/`~/` (when `tilde`) and %-tokens of v; tokens were checked when v was read. */
static enum sm_err sshcfg_expand(const char *v, bool tilde, const struct sshcfg_tokens *t,
                                 char **out, struct sm_diag *d)
{
	struct sm_buf b = { .limit = SSHCFG_MAX_PATH };
	enum sm_err err = sshcfg_put(&b, v, "", 0, d);
	const char *p = v;
	if (err == SM_OK && tilde && p[0] == '~' && (p[1] == '/' || p[1] == '\0')) {
		err = sshcfg_put(&b, v, t->d, strlen(t->d), d);
		p++;
	}
	while (err == SM_OK && *p) {
		const char *pct = strchr(p, '%');
		err = sshcfg_put(&b, v, p, pct ? (size_t)(pct - p) : strlen(p), d);
		if (err != SM_OK || !pct)
			break;
		const char *val = NULL;
		switch (pct[1]) {
		case '%': val = "%"; break;
		case 'd': val = t->d; break;
		case 'h': val = t->h; break;
		case 'n': val = t->n; break;
		case 'p': val = t->p; break;
		case 'r': val = t->r; break;
		case 'u': val = t->u; break;
		default: break;
		}
		if (!val) {
			err = sm_diag_set(
			        d, SM_EINVAL, 0,
			        "cannot expand '%%%c' in '%s': no local user name for uid %u",
			        pct[1] ? pct[1] : ' ', v, (unsigned)geteuid());
			break;
		}
		err = sshcfg_put(&b, v, val, strlen(val), d);
		p = pct + 2;
	}
	if (err != SM_OK) {
		sm_buf_release(&b);
		return err;
	}
	*out = b.p;
	return SM_OK;
}

/* Expand the raw names (or the defaults when none is configured) into v/n,
 * leaving out "none" and duplicates. */
static enum sm_err sshcfg_expand_list(const struct sshcfg_list *raw, const char *const *defaults,
                                      size_t n_defaults, const struct sshcfg_tokens *t, char ***v,
                                      size_t *n, struct sm_diag *d)
{
	size_t total = raw->n ? raw->n : n_defaults;
	char **out = calloc(total ? total : 1, sizeof(*out));
	if (!out)
		return sshcfg_nomem(d);
	size_t k = 0;
	enum sm_err err = SM_OK;
	for (size_t i = 0; i < total; i++) {
		const char *src = raw->n ? raw->v[i] : defaults[i];
		if (!strcasecmp(src, "none"))
			continue; /* as ssh: the keyword was given, so no defaults */
		char *e = NULL;
		err = sshcfg_expand(src, true, t, &e, d);
		if (err != SM_OK)
			goto out;
		bool dup = false;
		for (size_t j = 0; j < k && !dup; j++)
			dup = !strcmp(out[j], e);
		if (dup)
			free(e);
		else
			out[k++] = e;
	}
	*v = out;
	*n = k;
	out = NULL;
out:
	if (out) {
		for (size_t i = 0; i < k; i++)
			free(out[i]);
		free(out);
	}
	return err;
}

enum sm_err sm_ssh_config_resolve(const char *path, const char *alias, const char *user, int port,
                                  struct sm_ssh_host_cfg *out, struct sm_diag *d)
{
	static const char *const def_ids[] = { "~/.ssh/id_ed25519", "~/.ssh/id_ecdsa",
		                               "~/.ssh/id_rsa" };
	static const char *const def_khs[] = { "~/.ssh/known_hosts" };
	static const char *const def_gkhs[] = { "/etc/ssh/ssh_known_hosts",
		                                "/etc/ssh/ssh_known_hosts2" };

	if (!alias || !*alias)
		return sm_diag_set(d, SM_EINVAL, 0, "empty ssh host name");
	if (port < 0 || port > 65535)
		return sm_diag_set(d, SM_EINVAL, 0, "port %d is not in 1-65535", port);

	char *login = NULL, *pwdir = NULL;
	enum sm_err err = sshcfg_passwd(&login, &pwdir, d);
	if (err != SM_OK)
		return err;

	struct sshcfg_state st = {
		.alias = alias,
		.port = -1,
		.identities_only = -1,
		.hash_known_hosts = -1,
		.url_user = user,
		.login = login,
		.batch_mode = -1,
		.address_family = -1,
		.password_auth = -1,
		.pubkey_auth = -1,
		.strict = -1,
		.connect_timeout = -1,
		.alive_interval = -1,
		.alive_count_max = -1,
	};
	struct sm_ssh_host_cfg c;
	memset(&c, 0, sizeof(c));
	char *cfgpath = NULL;
	const char *env_home = getenv("HOME");
	st.home = env_home && *env_home ? env_home : pwdir;
	if (!st.home) {
		err = sm_diag_set(d, SM_EINVAL, 0,
		                  "HOME is not set and uid %u has no home directory",
		                  (unsigned)geteuid());
		goto out;
	}
	st.alias_lc = strdup(alias);
	if (!st.alias_lc) {
		err = sshcfg_nomem(d);
		goto out;
	}
	sshcfg_lower(st.alias_lc);
	if (!path) {
		cfgpath = sm_strcat2(st.home, "/.ssh/config");
		if (!cfgpath) {
			err = sshcfg_nomem(d);
			goto out;
		}
	}

	bool active = true;
	err = sshcfg_file(&st, path ? path : cfgpath, 0, false, !path, &active, d);
	if (err != SM_OK)
		goto out;

	c.alias = strdup(alias);
	if (!c.alias) {
		err = sshcfg_nomem(d);
		goto out;
	}
	if (st.hostname) {
		struct sshcfg_tokens ht = { .h = alias };
		err = sshcfg_expand(st.hostname, false, &ht, &c.hostname, d);
		if (err != SM_OK)
			goto out;
	} else {
		c.hostname = strdup(alias);
		if (!c.hostname) {
			err = sshcfg_nomem(d);
			goto out;
		}
	}
	const char *u = user && *user ? user : st.user;
	if (u) {
		c.user = strdup(u);
		if (!c.user) {
			err = sshcfg_nomem(d);
			goto out;
		}
	}
	c.port = port > 0 ? port : st.port > 0 ? st.port : 22;
	c.identities_only = st.identities_only > 0;
	c.hash_known_hosts = st.hash_known_hosts > 0;
	c.strict = st.strict >= 0 ? (enum sm_ssh_strict)st.strict : SM_SSH_STRICT_ASK;
	c.connect_timeout_s = st.connect_timeout > 0 ? st.connect_timeout : 0;
	c.server_alive_interval = st.alive_interval > 0 ? st.alive_interval : 0;
	c.server_alive_count_max = st.alive_count_max >= 0 ? st.alive_count_max : 3;

	char portstr[16];
	snprintf(portstr, sizeof(portstr), "%d", c.port);
	struct sshcfg_tokens t = {
		.d = st.home,
		.h = c.hostname,
		.p = portstr,
		.r = c.user ? c.user : login,
		.u = login,
	};
	err = sshcfg_expand_list(&st.ids, def_ids, sizeof(def_ids) / sizeof(def_ids[0]), &t,
	                         &c.identity_files, &c.n_identity_files, d);
	if (err != SM_OK)
		goto out;
	err = sshcfg_expand_list(&st.khs, def_khs, sizeof(def_khs) / sizeof(def_khs[0]), &t,
	                         &c.known_hosts, &c.n_known_hosts, d);
	if (err != SM_OK)
		goto out;
	err = sshcfg_expand_list(&st.gkhs, def_gkhs, sizeof(def_gkhs) / sizeof(def_gkhs[0]), &t,
	                         &c.global_known_hosts, &c.n_global_known_hosts, d);
	if (err != SM_OK)
		goto out;
	c.batch_mode = st.batch_mode > 0;
	c.address_family = st.address_family >= 0 ? st.address_family : AF_UNSPEC;
	c.password_auth = st.password_auth != 0;
	c.pubkey_auth = st.pubkey_auth != 0;
	if (st.proxy_kind == SSHCFG_PROXY_JUMP) {
		c.proxy_jump = st.proxy;
		st.proxy = NULL;
	} else if (st.proxy_kind == SSHCFG_PROXY_COMMAND) {
		struct sshcfg_tokens pt = t;
		pt.n = alias;
		err = sshcfg_expand(st.proxy, false, &pt, &c.proxy_command, d);
		if (err != SM_OK)
			goto out;
	}
	if (st.host_key_alias && !(c.host_key_alias = strdup(st.host_key_alias))) {
		err = sshcfg_nomem(d);
		goto out;
	}
	if (st.identity_agent) {
		const char *ia = st.identity_agent;
		if (!strcmp(ia, "SSH_AUTH_SOCK"))
			ia = "$SSH_AUTH_SOCK";
		if (ia[0] == '$') { /* an environment variable naming the socket */
			const char *env = getenv(ia + 1);
			c.identity_agent = strdup(env && *env ? env : "none");
			if (!c.identity_agent)
				err = sshcfg_nomem(d);
		} else if (!strcasecmp(ia, "none")) {
			if (!(c.identity_agent = strdup("none")))
				err = sshcfg_nomem(d);
		} else {
			err = sshcfg_expand(ia, true, &t, &c.identity_agent, d);
		}
		if (err != SM_OK)
			goto out;
	}

	*out = c;
	memset(&c, 0, sizeof(c));
out:
	sm_ssh_host_cfg_release(&c);
	free(cfgpath);
	free(st.proxy);
	free(st.host_key_alias);
	free(st.identity_agent);
	free(st.ignore_unknown);
	sshcfg_list_release(&st.gkhs);
	sshcfg_list_release(&st.khs);
	sshcfg_list_release(&st.ids);
	free(st.user);
	free(st.hostname);
	free(st.alias_lc);
	free(pwdir);
	free(login);
	return err;
}

void sm_ssh_host_cfg_release(struct sm_ssh_host_cfg *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n_identity_files; i++)
		free(c->identity_files[i]);
	free(c->identity_files);
	for (size_t i = 0; i < c->n_known_hosts; i++)
		free(c->known_hosts[i]);
	free(c->known_hosts);
	for (size_t i = 0; i < c->n_global_known_hosts; i++)
		free(c->global_known_hosts[i]);
	free(c->global_known_hosts);
	free(c->proxy_jump);
	free(c->proxy_command);
	free(c->host_key_alias);
	free(c->identity_agent);
	free(c->user);
	free(c->hostname);
	free(c->alias);
	memset(c, 0, sizeof(*c));
}

/* Iterative glob match: on a mismatch, let the last `*` eat one more byte. */
bool sm_ssh_pattern_match(const char *pattern, const char *s)
{
	if (!pattern || !s)
		return false;
	const char *p = pattern, *star = NULL, *mark = NULL;
	while (*s) {
		if (*p == '*') {
			star = p++;
			mark = s;
		} else if (*p && (*p == '?' || *p == *s)) {
			p++;
			s++;
		} else if (star) {
			p = star + 1;
			s = ++mark;
		} else {
			return false;
		}
	}
	while (*p == '*')
		p++;
	return *p == '\0';
}
