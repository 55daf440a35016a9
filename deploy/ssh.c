#include "ssh.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

extern char **environ;

#include <openssl/evp.h>

#include "../common/log.h"
#include "../common/util.h"
#include "knownhosts.h"
#include "sshconfig.h"

#define SSH_CONNECT_TIMEOUT_S 10 /* without ConnectTimeout */
#define SSH_IO_TIMEOUT_MS 60000  /* a blocking call that hears nothing this long fails */
#define SSH_KEEPALIVE_S 15       /* without ServerAliveInterval */
#define SSH_MAX_IDS 100          /* identity files looked at (sshconfig.c keeps as many) */

struct ssh_hop;

struct sm_ssh_conn {
	LIBSSH2_SESSION *s;
	int fd;
	char name[600];      /* user@host:port */
	char *typed;         /* a password typed at the prompt, or NULL */
	long io_ms;          /* the I/O timeout */
	struct ssh_hop *hop; /* ProxyJump: the jump host and the thread relaying to it */
	pid_t proxy_pid;     /* ProxyCommand: the command, or 0 */
};

static pthread_once_t ssh_once = PTHREAD_ONCE_INIT;
static int ssh_init_rc;

static void ssh_global_init(void)
{
	ssh_init_rc = libssh2_init(0);
}

/* The login name into buf (connects run on many threads: getpwuid_r). */
static const char *ssh_login_name(char *buf, size_t n)
{
	struct passwd pw, *res = NULL;
	char tmp[4096];
	if (getpwuid_r(geteuid(), &pw, tmp, sizeof(tmp), &res) != 0 || !res || !pw.pw_name)
		return "root";
	snprintf(buf, n, "%s", pw.pw_name);
	return buf;
}

/* libssh2's last error text, lowercase first letter like our messages. */
static const char *ssh_errmsg(LIBSSH2_SESSION *s, char *buf, size_t n)
{
	char *msg = NULL;
	libssh2_session_last_error(s, &msg, NULL, 0);
	snprintf(buf, n, "%s", msg && *msg ? msg : "unknown error");
	if (buf[0] >= 'A' && buf[0] <= 'Z' && !(buf[1] >= 'A' && buf[1] <= 'Z'))
		buf[0] = (char)(buf[0] + 32);
	return buf;
}

/* ---- TCP ---- */

/* Connect to host:port within timeout_s; the socket is left blocking. */
static enum sm_err ssh_tcp(const char *host, int port, int family, int timeout_s, int *out,
                           struct sm_diag *d)
{
	char ps[16];
	snprintf(ps, sizeof(ps), "%d", port);
	struct addrinfo hints = { .ai_family = family, .ai_socktype = SOCK_STREAM };
	struct addrinfo *res = NULL;
	int rc = getaddrinfo(host, ps, &hints, &res);
	if (rc != 0)
		return sm_diag_set(d, SM_EIO, rc, "ssh: cannot resolve '%s': %s", host,
		                   gai_strerror(rc));
	enum sm_err err = SM_EIO;
	int last_errno = 0;
	bool timed_out = false;
	for (struct addrinfo *a = res; a; a = a->ai_next) {
		int fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
		                a->ai_protocol);
		if (fd < 0) {
			last_errno = errno;
			continue;
		}
		if (connect(fd, a->ai_addr, a->ai_addrlen) != 0 && errno != EINPROGRESS) {
			last_errno = errno;
			close(fd);
			continue;
		}
		struct pollfd p = { .fd = fd, .events = POLLOUT };
		int n = poll(&p, 1, timeout_s * 1000);
		int soerr = 0;
		socklen_t sl = sizeof(soerr);
		if (n == 0) {
			timed_out = true;
			close(fd);
			continue;
		}
		if (n < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0 || soerr) {
			last_errno = n < 0 ? errno : soerr ? soerr : errno;
			close(fd);
			continue;
		}
		fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
		/* SFTP is small requests waiting on small replies: no Nagle */
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		*out = fd;
		err = SM_OK;
		break;
	}
	freeaddrinfo(res);
	if (err == SM_OK)
		return SM_OK;
	if (timed_out && !last_errno)
		return sm_diag_set(d, SM_EAGAIN, ETIMEDOUT,
		                   "ssh: cannot connect to %s:%d: no answer within %d s "
		                   "(ConnectTimeout)",
		                   host, port, timeout_s);
	/* refused, reset, unreachable: a server restarting, a link coming back;
	 * worth another try later (the store decides how long) */
	int e = last_errno ? last_errno : ECONNREFUSED;
	err = sm_diag_errno(d, e, "ssh: cannot connect to %s:%d", host, port);
	if (e == ECONNREFUSED || e == ECONNRESET || e == ECONNABORTED || e == EHOSTUNREACH ||
	    e == ENETUNREACH || e == ENETDOWN || e == EHOSTDOWN || e == ETIMEDOUT || e == EPIPE) {
		err = SM_EAGAIN;
		if (d)
			d->err = err;
	}
	return err;
}

/* ---- host keys ---- */

static const char *ssh_key_name(int hostkey_type)
{
	switch (hostkey_type) {
	case LIBSSH2_HOSTKEY_TYPE_RSA: return "RSA";
	case LIBSSH2_HOSTKEY_TYPE_DSS: return "DSA";
	case LIBSSH2_HOSTKEY_TYPE_ECDSA_256:
	case LIBSSH2_HOSTKEY_TYPE_ECDSA_384:
	case LIBSSH2_HOSTKEY_TYPE_ECDSA_521: return "ECDSA";
	case LIBSSH2_HOSTKEY_TYPE_ED25519: return "ED25519";
	}
	return "unknown";
}

/* The host key's "SHA256:..." fingerprint, as ssh prints it. */
static void ssh_fingerprint(LIBSSH2_SESSION *s, char *out, size_t n)
{
	const unsigned char *h =
	        (const unsigned char *)libssh2_hostkey_hash(s, LIBSSH2_HOSTKEY_HASH_SHA256);
	if (!h) {
		snprintf(out, n, "(unknown)");
		return;
	}
	unsigned char b64[64];
	int len = EVP_EncodeBlock(b64, h, 32);
	while (len > 0 && b64[len - 1] == '=')
		len--;
	snprintf(out, n, "SHA256:%.*s", len, (const char *)b64);
}

/* Host key algorithms in libssh2's names, each with the known_hosts key
 * type it proves. */
static const struct {
	const char *name;
	const char *keytype;
} ssh_hostkey_algs[] = {
	{ "ssh-ed25519", "ssh-ed25519" },
	{ "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp256" },
	{ "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp384" },
	{ "ecdsa-sha2-nistp521", "ecdsa-sha2-nistp521" },
	{ "rsa-sha2-512", "ssh-rsa" },
	{ "rsa-sha2-256", "ssh-rsa" },
	{ "ssh-rsa", "ssh-rsa" },
};

/* Is `type` in the comma-separated list? */
static bool ssh_in_list(const char *list, const char *type)
{
	size_t n = strlen(type);
	for (const char *p = list; *p;) {
		size_t l = strcspn(p, ",");
		if (l == n && memcmp(p, type, n) == 0)
			return true;
		p += l + (p[l] == ',');
	}
	return false;
}

/* The known_hosts files of a host: the user's, then the global ones. */
struct ssh_khfiles {
	const char *v[2 * 100 + 2];
	size_t n;
};

static void ssh_khfiles(const struct sm_ssh_host_cfg *hc, struct ssh_khfiles *f)
{
	f->n = 0;
	for (size_t i = 0; i < hc->n_known_hosts && f->n < 100; i++)
		f->v[f->n++] = hc->known_hosts[i];
	for (size_t i = 0; i < hc->n_global_known_hosts && f->n < 200; i++)
		f->v[f->n++] = hc->global_known_hosts[i];
}

/*
 * Ask for the host key types known_hosts already has for this host first,
 * as ssh does: otherwise a server with several keys may show one we do not
 * know and be refused.
 */
static void ssh_prefer_known(LIBSSH2_SESSION *s, const struct ssh_khfiles *f, const char *khname)
{
	/* only names this libssh2 has: its method_pref() overlaps memcpy()s
	 * when it strips unknown ones (1.10) */
	const char **algs = NULL;
	int na = libssh2_session_supported_algs(s, LIBSSH2_METHOD_HOSTKEY, &algs);
	char types[512];
	sm_kh_types(f->v, f->n, khname, types, sizeof(types));
	char known[256] = "", rest[256] = "";
	size_t nk = sizeof(ssh_hostkey_algs) / sizeof(ssh_hostkey_algs[0]);
	for (size_t i = 0; i < nk; i++) {
		bool supported = false;
		for (int j = 0; j < na && !supported; j++)
			supported = strcmp(algs[j], ssh_hostkey_algs[i].name) == 0;
		if (!supported)
			continue;
		char *dst = ssh_in_list(types, ssh_hostkey_algs[i].keytype) ? known : rest;
		size_t len = strlen(dst);
		snprintf(dst + len, 256 - len, "%s%s", len ? "," : "", ssh_hostkey_algs[i].name);
	}
	if (na > 0)
		libssh2_free(s, algs);
	/* with nothing known, OpenSSH's order (ed25519 first) rather than
	 * libssh2's (ECDSA first): the key a user checks is the one ssh shows */
	char pref[520];
	snprintf(pref, sizeof(pref), "%s%s%s", known, known[0] && rest[0] ? "," : "", rest);
	if (!pref[0])
		return;
	libssh2_session_method_pref(s, LIBSSH2_METHOD_HOSTKEY, pref);
}

/* A key type as ssh names it in messages ("ssh-rsa" -> "RSA"). */
static const char *ssh_keytype_name(const char *t)
{
	if (!strcmp(t, "ssh-rsa"))
		return "RSA";
	if (!strcmp(t, "ssh-dss"))
		return "DSA";
	if (!strncmp(t, "ecdsa-", 6))
		return "ECDSA";
	if (!strcmp(t, "ssh-ed25519"))
		return "ED25519";
	return t;
}

/* " -f FILE" for ssh-keygen when the file is not the default it edits. */
static void ssh_keygen_file(const char *file, char *out, size_t n)
{
	const char *home = getenv("HOME");
	char def[SM_KH_PATH_MAX];
	snprintf(def, sizeof(def), "%s/.ssh/known_hosts", home ? home : "");
	if (home && strcmp(file, def) == 0)
		out[0] = '\0';
	else
		snprintf(out, n, " -f '%s'", file);
}

static enum sm_err ssh_check_host(LIBSSH2_SESSION *s, const struct ssh_khfiles *f, const char *name,
                                  const struct sm_ssh_host_cfg *hc, struct sm_diag *d)
{
	size_t len = 0;
	int type = 0;
	const char *key = libssh2_session_hostkey(s, &len, &type);
	char fp[80];
	ssh_fingerprint(s, fp, sizeof(fp));
	if (!key)
		return sm_diag_set(d, SM_EIO, 0, "ssh: %s sent no host key", name);
	struct sm_kh_verdict v;
	sm_kh_check(f->v, f->n, name, (const unsigned char *)key, len, &v);
	char kf[SM_KH_PATH_MAX + 8];
	switch (v.status) {
	case SM_KH_MATCH: return SM_OK;
	case SM_KH_REVOKED:
		return sm_diag_set(d, SM_EFATAL, 0,
		                   "ssh: the host key of %s (%s %s) is marked @revoked in %s:%d: "
		                   "refusing to connect",
		                   name, ssh_key_name(type), fp, v.file, v.line);
	case SM_KH_CHANGED:
		ssh_keygen_file(v.file, kf, sizeof(kf));
		return sm_diag_set(d, SM_EFATAL, 0,
		                   "ssh: the host key of %s has CHANGED (now %s %s), it does not "
		                   "match the %s key in %s:%d: refusing to connect; if the change "
		                   "is expected, remove the old key with: ssh-keygen -R '%s'%s",
		                   name, ssh_key_name(type), fp, ssh_keytype_name(v.keytype),
		                   v.file, v.line, name, kf);
	case SM_KH_CA_ONLY:
		return sm_diag_set(d, SM_EFATAL, 0,
		                   "ssh: %s is known only through the @cert-authority line %s:%d, "
		                   "and host certificates are not supported (libssh2): refusing "
		                   "to connect; check the fingerprint (%s %s), then add the host's "
		                   "own key with: ssh-keyscan -p %d %s >> %s",
		                   name, v.file, v.line, ssh_key_name(type), fp, hc->port,
		                   hc->hostname, v.file);
	case SM_KH_UNKNOWN: break;
	}
	const char *file = hc->n_known_hosts ? hc->known_hosts[0] : NULL;
	if ((hc->strict != SM_SSH_STRICT_ACCEPT_NEW && hc->strict != SM_SSH_STRICT_NO) || !file) {
		if (!file)
			return sm_diag_set(
			        d, SM_EFATAL, 0,
			        "ssh: %s is not a known host (its %s key is %s), and "
			        "UserKnownHostsFile is none: add the key to a known_hosts "
			        "file (ssh-keyscan -p %d %s) and name that file",
			        name, ssh_key_name(type), fp, hc->port, hc->hostname);
		if (hc->host_key_alias) /* ssh-keyscan writes the host's name, not the alias */
			return sm_diag_set(
			        d, SM_EFATAL, 0,
			        "ssh: %s (HostKeyAlias of %s:%d) is not a known host (its "
			        "%s key is %s); check the fingerprint, then add it with: "
			        "ssh-keyscan -p %d %s | sed 's/^[^ ]*/%s/' >> %s",
			        name, hc->hostname, hc->port, ssh_key_name(type), fp, hc->port,
			        hc->hostname, name, file);
		return sm_diag_set(d, SM_EFATAL, 0,
		                   "ssh: %s is not a known host (its %s key is %s); check the "
		                   "fingerprint, then add it with: ssh-keyscan -p %d %s >> %s",
		                   name, ssh_key_name(type), fp, hc->port, hc->hostname, file);
	}
	/* accept-new: remember it, appending one line as ssh does (never
	 * rewriting the file: its comments and other entries stay as they are) */
	char line[16384];
	int fd = -1;
	struct sm_diag ld;
	bool ok = sm_kh_line(name, (const unsigned char *)key, len, hc->hash_known_hosts, line,
	                     sizeof(line), &ld) == SM_OK &&
	          (fd = open(file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600)) >= 0 &&
	          write(fd, line, strlen(line)) == (ssize_t)strlen(line);
	if (fd >= 0 && close(fd) != 0)
		ok = false;
	if (!ok)
		sm_log(SM_LOG_WARN, "ssh: could not add %s to %s", name, file);
	else
		sm_log(SM_LOG_INFO, "ssh: added %s (%s %s) to %s", name, ssh_key_name(type), fp,
		       file);
	return SM_OK;
}

/* ---- authentication ---- */

static bool ssh_method_offered(const char *list, const char *m)
{
	size_t n = strlen(m);
	for (const char *p = list; p && *p;) {
		const char *e = strchr(p, ',');
		size_t len = e ? (size_t)(e - p) : strlen(p);
		if (len == n && strncmp(p, m, n) == 0)
			return true;
		p = e ? e + 1 : NULL;
	}
	return false;
}

/* Whether a private key file holds an RSA key (PEM header, or the .pub). */
static bool ssh_key_is_rsa(const char *path)
{
	char pub[4096], line[128] = "";
	snprintf(pub, sizeof(pub), "%s.pub", path);
	FILE *f = fopen(pub, "r");
	if (f) {
		bool rsa = fgets(line, sizeof(line), f) && strncmp(line, "ssh-rsa ", 8) == 0;
		fclose(f);
		return rsa;
	}
	f = fopen(path, "r");
	if (!f)
		return false;
	bool rsa = fgets(line, sizeof(line), f) && strstr(line, "RSA PRIVATE KEY");
	fclose(f);
	return rsa;
}

/* ---- encrypted identities ---- */

#define SSH_KEY_HEAD_MAX 16384 /* what of a key file is read to tell whether it is encrypted */
#define SSH_PASS_TRIES 3       /* passphrase prompts per key, as ssh */

/* Decode base64 from s (whitespace skipped, stops at anything else) into
 * out, at most n bytes; returns the count. */
static size_t ssh_b64_decode(const char *s, unsigned char *out, size_t n)
{
	static const char tbl[] =
	        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t got = 0;
	unsigned acc = 0;
	int bits = 0;
	for (; *s && got < n; s++) {
		if (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')
			continue;
		const char *v = strchr(tbl, *s);
		if (!v)
			break; /* '=' padding or the END line */
		acc = (acc << 6) | (unsigned)(v - tbl);
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[got++] = (unsigned char)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	return got;
}

bool sm_ssh_key_encrypted(const char *text)
{
	const char *begin = strstr(text, "-----BEGIN ");
	if (!begin)
		return false;
	const char *eol = strchr(begin, '\n');
	const char *body = eol ? eol + 1 : begin + strlen(begin);
	/* PKCS#8 */
	if (strncmp(begin, "-----BEGIN ENCRYPTED PRIVATE KEY-----", 37) == 0)
		return true;
	/* OpenSSH's own format: "openssh-key-v1\0", then the cipher name as
	 * an SSH string (uint32 length, bytes) */
	if (strncmp(begin, "-----BEGIN OPENSSH PRIVATE KEY-----", 35) == 0) {
		static const char magic[] = "openssh-key-v1"; /* and its NUL */
		unsigned char raw[64];
		size_t n = ssh_b64_decode(body, raw, sizeof(raw));
		if (n < sizeof(magic) + 4 || memcmp(raw, magic, sizeof(magic)) != 0)
			return false;
		const unsigned char *p = raw + sizeof(magic);
		uint32_t len =
		        (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
		if (len > n - sizeof(magic) - 4)
			return false; /* cut short: let libssh2 say what is wrong */
		return !(len == 4 && memcmp(p + 4, "none", 4) == 0);
	}
	/* traditional PEM: "Proc-Type: 4,ENCRYPTED" is the first header */
	if (strncmp(body, "Proc-Type:", 10) == 0) {
		const char *enc = strstr(body, "ENCRYPTED");
		return enc && enc < body + strcspn(body, "\r\n");
	}
	return false;
}

/* Whether the private key file at path is encrypted (unreadable or
 * unknown: not, and libssh2 will say why it cannot use it). */
static bool ssh_key_file_encrypted(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK); /* a FIFO: no wait */
	if (fd < 0)
		return false;
	char *buf = malloc(SSH_KEY_HEAD_MAX + 1);
	size_t got = 0;
	while (buf && got < SSH_KEY_HEAD_MAX) {
		ssize_t r = read(fd, buf + got, SSH_KEY_HEAD_MAX - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	close(fd);
	if (!buf)
		return false;
	buf[got] = '\0';
	bool enc = sm_ssh_key_encrypted(buf);
	free(buf);
	return enc;
}

/* ---- the agent ---- */

#define SSH_PUB_MAX 4096 /* a public key blob (RSA 16k bits: ~2 KiB) */

/* The public key blobs of the identity files, where known (the .pub file,
 * else the public part an OpenSSH-format private key holds in clear), for
 * matching the agent's keys; and which of them the agent tried. */
struct ssh_pubs {
	unsigned char *blob[SSH_MAX_IDS];
	size_t len[SSH_MAX_IDS];
	bool via_agent[SSH_MAX_IDS];
	size_t n;
};

static uint32_t ssh_get32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* The public key of the identity file at path into out; false when
 * neither the .pub file nor the private key tells it. */
static bool ssh_identity_pub(const char *path, unsigned char *out, size_t cap, size_t *len)
{
	char pub[4200];
	snprintf(pub, sizeof(pub), "%s.pub", path);
	char *text = malloc(SSH_KEY_HEAD_MAX + 1);
	if (!text)
		return false;
	bool ok = false;
	FILE *f = fopen(pub, "re");
	if (f) {
		if (fgets(text, SSH_KEY_HEAD_MAX, f)) {
			char *b64 = strchr(text, ' ');
			if (b64) {
				b64 += strspn(b64, " ");
				b64[strcspn(b64, " \r\n")] = '\0';
				*len = ssh_b64_decode(b64, out, cap);
				ok = *len > 4 && ssh_get32(out) < *len;
			}
		}
		fclose(f);
	} else if ((f = fopen(path, "re"))) {
		size_t got = fread(text, 1, SSH_KEY_HEAD_MAX, f);
		fclose(f);
		text[got] = '\0';
		static const char head[] = "-----BEGIN OPENSSH PRIVATE KEY-----";
		static const char magic[] = "openssh-key-v1"; /* and its NUL */
		const char *b = strstr(text, head);
		unsigned char *raw = b ? malloc(SSH_KEY_HEAD_MAX) : NULL;
		size_t n = raw ? ssh_b64_decode(b + sizeof(head), raw, SSH_KEY_HEAD_MAX) : 0;
		size_t off = sizeof(magic);
		if (raw && n > off && memcmp(raw, magic, sizeof(magic)) == 0) {
			/* ciphername, kdfname, kdfoptions, then the key count */
			for (int i = 0; i < 3 && off + 4 <= n; i++)
				off += 4 + ssh_get32(raw + off);
			if (off + 8 <= n && ssh_get32(raw + off) >= 1) {
				uint32_t pl = ssh_get32(raw + off + 4);
				if (pl <= cap && off + 8 + pl <= n) {
					memcpy(out, raw + off + 8, pl);
					*len = pl;
					ok = true;
				}
			}
		}
		free(raw);
	}
	free(text);
	return ok;
}

static void ssh_pubs_load(struct ssh_pubs *p, const struct sm_ssh_host_cfg *hc)
{
	memset(p, 0, sizeof(*p));
	p->n = hc->n_identity_files < SSH_MAX_IDS ? hc->n_identity_files : SSH_MAX_IDS;
	unsigned char buf[SSH_PUB_MAX];
	for (size_t i = 0; i < p->n; i++) {
		size_t len = 0;
		if (!ssh_identity_pub(hc->identity_files[i], buf, sizeof(buf), &len))
			continue;
		if ((p->blob[i] = malloc(len))) {
			memcpy(p->blob[i], buf, len);
			p->len[i] = len;
		}
	}
}

static void ssh_pubs_release(struct ssh_pubs *p)
{
	for (size_t i = 0; i < p->n; i++)
		free(p->blob[i]);
}

/* The identity file whose public key is blob, or -1. */
static int ssh_pubs_find(const struct ssh_pubs *p, const unsigned char *blob, size_t len)
{
	for (size_t i = 0; i < p->n; i++)
		if (p->blob[i] && p->len[i] == len && memcmp(p->blob[i], blob, len) == 0)
			return (int)i;
	return -1;
}

/*
 * Public-key authentication with the agent's keys (IdentityAgent's socket,
 * else $SSH_AUTH_SOCK; "none": no agent), as ssh does: all of them, or
 * with IdentitiesOnly only those of the identity files, which then need
 * no passphrase. The files whose keys the agent offered are marked, so
 * they are not offered again.
 */
static bool ssh_auth_agent(LIBSSH2_SESSION *s, const struct sm_ssh_host_cfg *hc, const char *user,
                           struct ssh_pubs *pubs, int *tried)
{
	const char *sock = hc->identity_agent ? hc->identity_agent : getenv("SSH_AUTH_SOCK");
	if (!sock || !*sock || !strcmp(sock, "none"))
		return false;
	LIBSSH2_AGENT *a = libssh2_agent_init(s);
	bool ok = false;
	if (!a)
		return false;
	libssh2_agent_set_identity_path(a, sock);
	if (libssh2_agent_connect(a) == 0 && libssh2_agent_list_identities(a) == 0) {
		struct libssh2_agent_publickey *id = NULL, *prev = NULL;
		while (!ok && libssh2_agent_get_identity(a, &id, prev) == 0) {
			prev = id;
			int file = ssh_pubs_find(pubs, id->blob, id->blob_len);
			if (hc->identities_only && file < 0)
				continue; /* not one of the configured identities */
			if (file >= 0)
				pubs->via_agent[file] = true;
			(*tried)++;
			ok = libssh2_agent_userauth(a, user, id) == 0;
		}
		libssh2_agent_disconnect(a);
	}
	libssh2_agent_free(a);
	return ok;
}

/*
 * Passphrases typed for encrypted identities, by key file: asked once per
 * run, whichever thread connects first, and reused by every later
 * connection (the SSH layer has no per-run state to carry them, unlike the
 * typed password the SFTP store hands back). The lock is held while a
 * prompt is on the terminal, so one prompt shows at a time.
 */
struct ssh_pass {
	struct ssh_pass *next;
	char *pass;
	char path[];
};
static pthread_mutex_t ssh_pass_mu = PTHREAD_MUTEX_INITIALIZER;
static struct ssh_pass *ssh_passes;

/* A copy of the passphrase known for path, or NULL. Call with the lock. */
static char *ssh_pass_get(const char *path)
{
	for (struct ssh_pass *p = ssh_passes; p; p = p->next)
		if (strcmp(p->path, path) == 0)
			return strdup(p->pass);
	return NULL;
}

/* Remember pass for path (best effort). Call with the lock. */
static void ssh_pass_put(const char *path, const char *pass)
{
	size_t n = strlen(path) + 1;
	struct ssh_pass *p = malloc(sizeof(*p) + n);
	if (!p)
		return;
	if (!(p->pass = strdup(pass))) {
		free(p);
		return;
	}
	memcpy(p->path, path, n);
	p->next = ssh_passes;
	ssh_passes = p;
}

static void ssh_wipe(char *s)
{
	if (s) {
		volatile char *v = s;
		while (*v)
			*v++ = '\0';
	}
}

/* Read a password from the terminal, echo off. */
static bool ssh_prompt(const char *prompt, char *buf, size_t n)
{
	FILE *tty = fopen("/dev/tty", "r+");
	if (!tty)
		return false;
	struct termios old, quiet;
	bool restore = tcgetattr(fileno(tty), &old) == 0;
	if (restore) {
		quiet = old;
		quiet.c_lflag &= ~(tcflag_t)ECHO;
		tcsetattr(fileno(tty), TCSAFLUSH, &quiet);
	}
	fputs(prompt, tty);
	fflush(tty);
	bool ok = fgets(buf, (int)n, tty) != NULL;
	if (restore)
		tcsetattr(fileno(tty), TCSAFLUSH, &old);
	fputc('\n', tty);
	fclose(tty);
	if (ok)
		buf[strcspn(buf, "\r\n")] = '\0';
	return ok;
}

/* Can we ask at the terminal? As for passwords: only when stdin is one. */
static bool ssh_interactive(void)
{
	return isatty(STDIN_FILENO) != 0;
}

enum ssh_key_auth {
	SSH_KEY_OK,
	SSH_KEY_REFUSED,          /* decrypted, and the server said no */
	SSH_KEY_NO_TERMINAL,      /* no passphrase known and none can be asked */
	SSH_KEY_WRONG_PASSPHRASE, /* every try was wrong, or none was typed */
};

/*
 * Public-key authentication with an encrypted identity: the passphrase
 * typed earlier in the run, else asked at the terminal (echo off, up to
 * SSH_PASS_TRIES times, "Enter passphrase for key '...': " as ssh asks). A
 * wrong passphrase fails in libssh2 before anything is sent (the public
 * key is derived from the private one), so it costs the server nothing.
 */
static enum ssh_key_auth ssh_auth_encrypted(LIBSSH2_SESSION *s, const char *user, const char *key,
                                            bool may_ask)
{
	unsigned ulen = (unsigned)strlen(user);
	pthread_mutex_lock(&ssh_pass_mu);
	char *known = ssh_pass_get(key);
	pthread_mutex_unlock(&ssh_pass_mu);
	if (known) {
		int rc = libssh2_userauth_publickey_fromfile_ex(s, user, ulen, NULL, key, known);
		ssh_wipe(known);
		free(known);
		return rc == 0 ? SSH_KEY_OK : SSH_KEY_REFUSED;
	}
	if (!may_ask)
		return SSH_KEY_NO_TERMINAL;
	/* one prompt at a time; another thread may have had it typed */
	pthread_mutex_lock(&ssh_pass_mu);
	enum ssh_key_auth res = SSH_KEY_WRONG_PASSPHRASE;
	if ((known = ssh_pass_get(key))) {
		pthread_mutex_unlock(&ssh_pass_mu);
		int rc = libssh2_userauth_publickey_fromfile_ex(s, user, ulen, NULL, key, known);
		ssh_wipe(known);
		free(known);
		return rc == 0 ? SSH_KEY_OK : SSH_KEY_REFUSED;
	}
	for (int i = 0; i < SSH_PASS_TRIES; i++) {
		char prompt[4200], pass[1024];
		snprintf(prompt, sizeof(prompt),
		         "%s for key '%s': ", i ? "Bad passphrase, try again" : "Enter passphrase",
		         key);
		if (!ssh_prompt(prompt, pass, sizeof(pass))) {
			if (i == 0)
				res = SSH_KEY_NO_TERMINAL; /* no /dev/tty */
			break;
		}
		if (!*pass)
			break; /* an empty answer skips the key, as in ssh */
		int rc = libssh2_userauth_publickey_fromfile_ex(s, user, ulen, NULL, key, pass);
		int e = rc ? libssh2_session_last_errno(s) : 0;
		if (rc == 0 || e != LIBSSH2_ERROR_FILE) {
			ssh_pass_put(key, pass); /* it opened the key */
			res = rc == 0 ? SSH_KEY_OK : SSH_KEY_REFUSED;
		}
		ssh_wipe(pass);
		if (rc == 0 || e != LIBSSH2_ERROR_FILE)
			break;
	}
	pthread_mutex_unlock(&ssh_pass_mu);
	return res;
}

static enum sm_err ssh_auth_with(struct sm_ssh_conn *c, const struct sm_ssh_host_cfg *hc,
                                 const char *user, const char *password, struct ssh_pubs *pubs,
                                 struct sm_diag *d)
{
	LIBSSH2_SESSION *s = c->s;
	bool may_ask = ssh_interactive() && !hc->batch_mode;
	char *list = libssh2_userauth_list(s, user, (unsigned)strlen(user));
	if (!list && libssh2_userauth_authenticated(s))
		return SM_OK; /* "none" was enough */
	if (!list && libssh2_session_last_errno(s) != LIBSSH2_ERROR_NONE &&
	    libssh2_session_last_errno(s) != LIBSSH2_ERROR_EAGAIN) {
		char em[256]; /* the link failed: not a refusal */
		return sm_diag_set(d, SM_EAGAIN, 0, "ssh: %s: %s", c->name,
		                   ssh_errmsg(s, em, sizeof(em)));
	}
	char methods[256];
	snprintf(methods, sizeof(methods), "%s", list ? list : "");
	int agent_keys = 0;
	const char *rsa_refused = NULL;    /* an RSA identity the server turned down */
	const char *locked_key = NULL;     /* an encrypted identity off a terminal */
	const char *wrong_pass_key = NULL; /* an identity whose passphrase was not typed right */
	if (hc->pubkey_auth && ssh_method_offered(methods, "publickey")) {
		if (ssh_auth_agent(s, hc, user, pubs, &agent_keys))
			return SM_OK;
		for (size_t i = 0; i < hc->n_identity_files; i++) {
			const char *key = hc->identity_files[i];
			if ((i < pubs->n && pubs->via_agent[i]) || access(key, R_OK) != 0)
				continue; /* offered from the agent already */
			int rc;
			if (ssh_key_file_encrypted(key)) {
				enum ssh_key_auth r = ssh_auth_encrypted(s, user, key, may_ask);
				if (r == SSH_KEY_OK)
					return SM_OK;
				if (r == SSH_KEY_NO_TERMINAL && !locked_key)
					locked_key = key;
				if (r == SSH_KEY_WRONG_PASSPHRASE && !wrong_pass_key)
					wrong_pass_key = key;
				if (r != SSH_KEY_REFUSED)
					continue;
				rc = -1;
			} else {
				rc = libssh2_userauth_publickey_fromfile_ex(
				        s, user, (unsigned)strlen(user), NULL, key, NULL);
			}
			if (rc == 0)
				return SM_OK;
			char em[256];
			int e = libssh2_session_last_errno(s);
			if (e == LIBSSH2_ERROR_FILE || e == LIBSSH2_ERROR_METHOD_NOT_SUPPORTED)
				sm_log(SM_LOG_INFO, "ssh: cannot use identity %s: %s", key,
				       ssh_errmsg(s, em, sizeof(em)));
			else if (!rsa_refused && ssh_key_is_rsa(key))
				rsa_refused = key;
		}
	}
	bool pw_offered = hc->password_auth && ssh_method_offered(methods, "password");
	bool pw_tried = pw_offered && password; /* then the refusal is the password's */
	if (password && pw_offered &&
	    libssh2_userauth_password_ex(s, user, (unsigned)strlen(user), password,
	                                 (unsigned)strlen(password), NULL) == 0)
		return SM_OK;
	if (!password && pw_offered && may_ask) {
		char prompt[700], pw[512];
		snprintf(prompt, sizeof(prompt), "%s's password: ", c->name);
		if (ssh_prompt(prompt, pw, sizeof(pw))) {
			int rc = libssh2_userauth_password_ex(s, user, (unsigned)strlen(user), pw,
			                                      (unsigned)strlen(pw), NULL);
			if (rc == 0)
				c->typed = strdup(pw); /* asked once per run, not per connection */
			memset(pw, 0, sizeof(pw));
			pw_tried = true;
			if (rc == 0)
				return SM_OK;
		}
	}
	if (locked_key && !pw_tried)
		return sm_diag_set(d, SM_EFATAL, 0,
		                   "ssh: key '%s' is encrypted and no ssh-agent holds it; add it "
		                   "with ssh-add or use an unencrypted key",
		                   locked_key);
	if (wrong_pass_key && !pw_tried)
		return sm_diag_set(d, SM_EFATAL, 0,
		                   "ssh: %s: permission denied (%s): wrong passphrase for key '%s'",
		                   c->name, methods[0] ? methods : "no method offered",
		                   wrong_pass_key);
	if (rsa_refused)
		return sm_diag_set(d, SM_EFATAL, 0,
		                   "ssh: %s: permission denied (%s): the RSA key %s was refused, "
		                   "probably because libssh2 %s signs RSA keys with SHA-1, which "
		                   "OpenSSH 8.8 and later refuse; use an ed25519 or ECDSA key "
		                   "(ssh-keygen -t ed25519)",
		                   c->name, methods[0] ? methods : "no method offered", rsa_refused,
		                   LIBSSH2_VERSION);
	return sm_diag_set(d, SM_EFATAL, 0, "ssh: %s: permission denied (%s)", c->name,
	                   methods[0] ? methods : "no method offered");
}

static enum sm_err ssh_auth(struct sm_ssh_conn *c, const struct sm_ssh_host_cfg *hc,
                            const char *user, const char *password, struct sm_diag *d)
{
	struct ssh_pubs pubs;
	ssh_pubs_load(&pubs, hc);
	enum sm_err err = ssh_auth_with(c, hc, user, password, &pubs, d);
	ssh_pubs_release(&pubs);
	return err;
}

/* ---- connections ---- */

static void ssh_close(struct sm_ssh_conn *c);
static void ssh_hop_free(struct ssh_hop *h);

#define SSH_JUMP_MAX 8           /* hops of ProxyJump, nested ones included */
#define SSH_HOP_BUF (256u << 10) /* bytes relayed at once each way */
#define SSH_HOP_CLOSE_MS 2000    /* a dead jump host delays a close no longer */
#define SSH_PROXY_WAIT_MS 2000   /* a ProxyCommand that ignores SIGHUP is killed */

/*
 * ProxyJump: the target's session runs over one end of a socketpair; this
 * thread relays between the other end and a direct-tcpip channel of the
 * jump host's session (the only user of that session from then on,
 * non-blocking). libssh2 wants a socket to read and write, and a thread
 * in this process keeps each hop's known_hosts check, agent and
 * passphrase handling ours (a `ssh -W` child would read another
 * configuration: ssh takes ~ from the password database, not $HOME). The
 * relay ends when either side ends: the target's session closed, or the
 * jump host or the channel gone (the target's session then sees EOF and
 * its connection is replaced).
 */
struct ssh_hop {
	struct sm_ssh_conn *conn; /* the jump host */
	LIBSSH2_CHANNEL *ch;
	int fd; /* the relay's end of the socketpair */
	pthread_t th;
	bool started;
};

static void *ssh_hop_relay(void *arg)
{
	struct ssh_hop *h = arg;
	LIBSSH2_SESSION *s = h->conn->s;
	char *up = malloc(SSH_HOP_BUF), *down = malloc(SSH_HOP_BUF);
	size_t up_len = 0, up_off = 0, down_len = 0, down_off = 0;
	bool sock_eof = false, chan_eof = false;
	while (up && down) {
		bool moved = false;
		if (!chan_eof && down_len == 0) { /* channel -> socket buffer */
			ssize_t n = libssh2_channel_read(h->ch, down, SSH_HOP_BUF);
			if (n > 0) {
				down_len = (size_t)n;
				down_off = 0;
				moved = true;
			} else if (n == 0 || n == LIBSSH2_ERROR_EAGAIN) {
				chan_eof = libssh2_channel_eof(h->ch) != 0;
			} else {
				break; /* the jump host's session failed */
			}
		}
		if (down_off < down_len) {
			ssize_t n = send(h->fd, down + down_off, down_len - down_off,
			                 MSG_NOSIGNAL | MSG_DONTWAIT);
			if (n > 0) {
				down_off += (size_t)n;
				moved = true;
				if (down_off == down_len)
					down_len = down_off = 0;
			} else if (n < 0 && errno != EAGAIN && errno != EINTR) {
				break; /* the target's side is gone */
			}
		}
		if (!sock_eof && up_len == 0) { /* socket -> channel buffer */
			ssize_t n = recv(h->fd, up, SSH_HOP_BUF, MSG_DONTWAIT);
			if (n > 0) {
				up_len = (size_t)n;
				up_off = 0;
				moved = true;
			} else if (n == 0) {
				sock_eof = true;
			} else if (errno != EAGAIN && errno != EINTR) {
				break;
			}
		}
		if (up_off < up_len) {
			ssize_t n = libssh2_channel_write(h->ch, up + up_off, up_len - up_off);
			if (n > 0) {
				up_off += (size_t)n;
				moved = true;
				if (up_off == up_len)
					up_len = up_off = 0;
			} else if (n != LIBSSH2_ERROR_EAGAIN) {
				break;
			}
		}
		if (sock_eof && up_len == 0) {
			libssh2_channel_send_eof(h->ch);
			break; /* the target's session is closed: done */
		}
		if (chan_eof && down_len == 0)
			break; /* the far side closed: the target's session sees EOF */
		int next = 0;
		libssh2_keepalive_send(s, &next);
		if (moved)
			continue;
		int dir = libssh2_session_block_directions(s);
		struct pollfd p[2] = {
			{ .fd = h->conn->fd,
			  .events =
			          (short)(POLLIN |
			                  ((dir & LIBSSH2_SESSION_BLOCK_OUTBOUND) ? POLLOUT : 0)) },
			{ .fd = h->fd,
			  .events = (short)((!sock_eof && up_len == 0 ? POLLIN : 0) |
			                    (down_len ? POLLOUT : 0)) },
		};
		int wait_ms = next > 0 && next < 1000 ? next * 1000 : 1000;
		if (poll(p, 2, wait_ms) < 0 && errno != EINTR)
			break;
	}
	free(up);
	free(down);
	shutdown(h->fd, SHUT_RDWR); /* the target's session sees the end */
	return NULL;
}

static void ssh_hop_free(struct ssh_hop *h)
{
	if (!h)
		return;
	if (h->started) {
		shutdown(h->fd, SHUT_RDWR);
		pthread_join(h->th, NULL);
	}
	if (h->conn && h->conn->s) {
		libssh2_session_set_blocking(h->conn->s, 1);
		libssh2_session_set_timeout(h->conn->s, SSH_HOP_CLOSE_MS);
	}
	if (h->ch)
		libssh2_channel_free(h->ch);
	ssh_close(h->conn);
	if (h->fd >= 0)
		close(h->fd);
	free(h);
}

static enum sm_err ssh_open(const char *host, const char *user, const char *password, int port,
                            bool override, const char *jump, int depth, struct sm_ssh_conn **out,
                            struct sm_diag *d);

/* One ProxyJump hop, "[user@]host[:port]", "[user@][v6]:port" or
 * "ssh://[user@]host[:port]", into user ("" for none), host and port (0). */
static bool ssh_parse_hop(const char *spec, size_t n, char *user, size_t un, char *host, size_t hn,
                          int *port)
{
	char buf[1024];
	if (n >= sizeof(buf))
		return false;
	memcpy(buf, spec, n);
	buf[n] = '\0';
	char *p = buf;
	if (!strncmp(p, "ssh://", 6))
		p += 6;
	size_t plen = strlen(p);
	if (plen && p[plen - 1] == '/')
		p[--plen] = '\0';
	char *at = strrchr(p, '@');
	user[0] = '\0';
	if (at) {
		*at = '\0';
		if (!*p || (size_t)snprintf(user, un, "%s", p) >= un)
			return false;
		p = at + 1;
	}
	*port = 0;
	char *colon = NULL;
	if (*p == '[') {
		char *e = strchr(p, ']');
		if (!e || (e[1] && e[1] != ':'))
			return false;
		*e = '\0';
		colon = e[1] ? e + 1 : NULL;
		p++;
	} else {
		colon = strchr(p, ':');
		if (colon && strchr(colon + 1, ':'))
			return false; /* a bare IPv6 address wants brackets */
	}
	if (colon) {
		*colon = '\0';
		char *end = NULL;
		long v = strtol(colon + 1, &end, 10);
		if (!colon[1] || *end || v < 1 || v > 65535)
			return false;
		*port = (int)v;
	}
	return *p && (size_t)snprintf(host, hn, "%s", p) < hn;
}

/* ProxyJump: connect to the last hop (through the ones before it, or its
 * own configuration when it is the only one), open a channel from it to
 * the target and relay it to c->fd. */
static enum sm_err ssh_via_jump(struct sm_ssh_conn *c, const struct sm_ssh_host_cfg *hc, int depth,
                                struct sm_diag *d)
{
	const char *list = hc->proxy_jump;
	const char *last = strrchr(list, ',');
	const char *spec = last ? last + 1 : list;
	char user[256], host[1024];
	int port = 0;
	if (!ssh_parse_hop(spec, strlen(spec), user, sizeof(user), host, sizeof(host), &port))
		return sm_diag_set(
		        d, SM_EINVAL, 0,
		        "ssh: ProxyJump of %s: cannot read '%s' (want [user@]host[:port])",
		        hc->alias, spec);
	char *rest = last ? sm_strndup(list, (size_t)(last - list)) : NULL;
	if (last && !rest)
		return sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
	struct ssh_hop *h = calloc(1, sizeof(*h));
	enum sm_err err = SM_OK;
	if (!h) {
		free(rest);
		return sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
	}
	h->fd = -1;
	err = ssh_open(host, user[0] ? user : NULL, NULL, port, rest != NULL, rest, depth + 1,
	               &h->conn, d);
	free(rest);
	if (err != SM_OK)
		goto fail;
	h->ch = libssh2_channel_direct_tcpip_ex(h->conn->s, hc->hostname, hc->port, "127.0.0.1",
	                                        22);
	if (!h->ch) {
		char em[256];
		/* the target down or unreachable from there: worth another try later */
		err = sm_diag_set(d, SM_EAGAIN, 0, "ssh: jump host %s cannot reach %s:%d: %s",
		                  h->conn->name, hc->hostname, hc->port,
		                  ssh_errmsg(h->conn->s, em, sizeof(em)));
		goto fail;
	}
	int sp[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) != 0) {
		err = sm_diag_errno(d, errno, "ssh: socketpair");
		goto fail;
	}
	c->fd = sp[0];
	h->fd = sp[1];
	libssh2_session_set_blocking(h->conn->s, 0);
	if (pthread_create(&h->th, NULL, ssh_hop_relay, h) != 0) {
		err = sm_diag_set(d, SM_ENOMEM, 0, "cannot start a ProxyJump thread");
		goto fail;
	}
	h->started = true;
	c->hop = h;
	return SM_OK;
fail:
	ssh_hop_free(h);
	return err;
}

/* ProxyCommand: /bin/sh -c "exec COMMAND" with its stdin and stdout on the
 * other end of a socketpair (stderr stays ours, as with ssh). */
static enum sm_err ssh_via_command(struct sm_ssh_conn *c, const struct sm_ssh_host_cfg *hc,
                                   struct sm_diag *d)
{
	int sp[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) != 0)
		return sm_diag_errno(d, errno, "ssh: socketpair");
	char *cmd = sm_strcat2("exec ", hc->proxy_command);
	posix_spawn_file_actions_t fa;
	bool fa_ok = posix_spawn_file_actions_init(&fa) == 0;
	int rc = !cmd || !fa_ok ? ENOMEM
	         : posix_spawn_file_actions_adddup2(&fa, sp[1], STDIN_FILENO) ||
	                         posix_spawn_file_actions_adddup2(&fa, sp[1], STDOUT_FILENO)
	                 ? ENOMEM
	                 : 0;
	pid_t pid = 0;
	if (rc == 0) {
		char *argv[] = { "sh", "-c", cmd, NULL };
		rc = posix_spawn(&pid, "/bin/sh", &fa, NULL, argv, environ);
	}
	if (fa_ok)
		posix_spawn_file_actions_destroy(&fa);
	free(cmd);
	close(sp[1]);
	if (rc != 0) {
		close(sp[0]);
		return sm_diag_set(d, SM_EIO, rc, "ssh: cannot run the ProxyCommand of %s: %s",
		                   hc->alias, strerror(rc));
	}
	c->fd = sp[0];
	c->proxy_pid = pid;
	return SM_OK;
}

static void ssh_close(struct sm_ssh_conn *c)
{
	if (!c)
		return;
	if (c->s) {
		libssh2_session_disconnect(c->s, "bye");
		libssh2_session_free(c->s);
	}
	if (c->fd >= 0)
		close(c->fd);
	ssh_hop_free(c->hop);
	if (c->proxy_pid > 0) {
		/* as ssh: the command is told to go, and waited for */
		kill(c->proxy_pid, SIGHUP);
		int st;
		pid_t r = 0;
		for (int i = 0; i < SSH_PROXY_WAIT_MS / 10 && r == 0; i++) {
			r = waitpid(c->proxy_pid, &st, WNOHANG);
			if (r == 0)
				sm_sleep_ms(10);
		}
		if (r == 0) {
			kill(c->proxy_pid, SIGKILL);
			waitpid(c->proxy_pid, &st, 0);
		}
	}
	if (c->typed) {
		memset(c->typed, 0, strlen(c->typed));
		free(c->typed);
	}
	free(c);
}

/*
 * Connect to `host` as ~/.ssh/config says, through its ProxyJump or
 * ProxyCommand. `override`: the hops of an outer ProxyJump replace the
 * host's own (`jump`, NULL for none), as ssh's -J does for the hop before
 * the target.
 */
static enum sm_err ssh_open(const char *host, const char *user, const char *password, int port,
                            bool override, const char *jump, int depth, struct sm_ssh_conn **out,
                            struct sm_diag *d)
{
	if (depth > SSH_JUMP_MAX)
		return sm_diag_set(d, SM_EINVAL, 0,
		                   "ssh: more than %d ProxyJump hops to reach %s (a loop?)",
		                   SSH_JUMP_MAX, host);
	struct sm_ssh_host_cfg hc;
	enum sm_err err = sm_ssh_config_resolve(NULL, host, user, port, &hc, d);
	if (err != SM_OK)
		return err;
	if (override) {
		free(hc.proxy_jump);
		free(hc.proxy_command);
		hc.proxy_command = NULL;
		hc.proxy_jump = jump ? sm_strdup(jump) : NULL;
		if (jump && !hc.proxy_jump) {
			sm_ssh_host_cfg_release(&hc);
			return sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
		}
	}
	struct sm_ssh_conn *c = calloc(1, sizeof(*c));
	if (!c) {
		err = sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
		goto out;
	}
	c->fd = -1;
	char login[256];
	const char *ruser = hc.user ? hc.user : ssh_login_name(login, sizeof(login));
	snprintf(c->name, sizeof(c->name), "%s@%s:%d", ruser, hc.hostname, hc.port);
	int ct = hc.connect_timeout_s > 0 ? hc.connect_timeout_s : SSH_CONNECT_TIMEOUT_S;
	const char *via = "";
	if (hc.proxy_jump) {
		err = ssh_via_jump(c, &hc, depth, d);
		via = " (through ProxyJump)";
	} else if (hc.proxy_command) {
		err = ssh_via_command(c, &hc, d);
		via = " (through ProxyCommand)";
	} else {
		err = ssh_tcp(hc.hostname, hc.port, hc.address_family, ct, &c->fd, d);
	}
	if (err != SM_OK)
		goto out;
	c->s = libssh2_session_init();
	if (!c->s) {
		err = sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
		goto out;
	}
	struct ssh_khfiles khf;
	ssh_khfiles(&hc, &khf);
	char khname[1100];
	if (hc.host_key_alias)
		snprintf(khname, sizeof(khname), "%s", hc.host_key_alias);
	else
		sm_kh_name(hc.hostname, hc.port, khname, sizeof(khname));
	ssh_prefer_known(c->s, &khf, khname);
	libssh2_session_set_blocking(c->s, 1);
	libssh2_session_set_timeout(c->s, (long)ct * 1000);
	if (libssh2_session_handshake(c->s, c->fd) != 0) {
		char em[256];
		err = sm_diag_set(d, SM_EAGAIN, 0, "ssh: handshake with %s:%d%s failed: %s",
		                  hc.hostname, hc.port, via, ssh_errmsg(c->s, em, sizeof(em)));
		goto out;
	}
	err = ssh_check_host(c->s, &khf, khname, &hc, d);
	if (err != SM_OK)
		goto out;
	err = ssh_auth(c, &hc, ruser, password, d);
	if (err != SM_OK)
		goto out;
	int alive = hc.server_alive_interval > 0 ? hc.server_alive_interval : SSH_KEEPALIVE_S;
	libssh2_keepalive_config(c->s, 1, (unsigned)alive);
	long io_ms = hc.server_alive_interval > 0 ? (long)hc.server_alive_interval * 1000 *
	                                                    (hc.server_alive_count_max + 1)
	                                          : SSH_IO_TIMEOUT_MS;
	libssh2_session_set_timeout(c->s, io_ms);
	c->io_ms = io_ms;
	*out = c;
	c = NULL;
out:
	ssh_close(c);
	sm_ssh_host_cfg_release(&hc);
	return err;
}

static enum sm_err ssh_connect(const struct sm_ssh_target *t, struct sm_ssh_conn **out,
                               struct sm_diag *d)
{
	pthread_once(&ssh_once, ssh_global_init);
	if (ssh_init_rc != 0)
		return sm_diag_set(d, SM_EIO, ssh_init_rc, "ssh: libssh2 failed to initialise");
	return ssh_open(t->host, t->user, t->password, t->port, false, NULL, 0, out, d);
}

static LIBSSH2_SESSION *ssh_session(struct sm_ssh_conn *c)
{
	return c->s;
}

static int ssh_fd(struct sm_ssh_conn *c)
{
	return c->fd;
}

static long ssh_io_timeout_ms(struct sm_ssh_conn *c)
{
	return c->io_ms;
}

static const char *ssh_name(struct sm_ssh_conn *c)
{
	return c->name;
}

static const char *ssh_typed_password(struct sm_ssh_conn *c)
{
	return c->typed;
}

const struct sm_ssh_ops sm_ssh_ops = {
	.connect = ssh_connect,
	.session = ssh_session,
	.fd = ssh_fd,
	.io_timeout_ms = ssh_io_timeout_ms,
	.name = ssh_name,
	.typed_password = ssh_typed_password,
	.close = ssh_close,
};
