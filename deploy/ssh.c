#include "ssh.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <termios.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "../common/log.h"
#include "../common/util.h"
#include "knownhosts.h"
#include "sshconfig.h"

#define SSH_CONNECT_TIMEOUT_S 10 /* without ConnectTimeout */
#define SSH_IO_TIMEOUT_MS 60000  /* a blocking call that hears nothing this long fails */
#define SSH_KEEPALIVE_S 15       /* without ServerAliveInterval */

struct sm_ssh_conn {
	LIBSSH2_SESSION *s;
	int fd;
	char name[600]; /* user@host:port */
	char *typed;    /* a password typed at the prompt, or NULL */
	long io_ms;     /* the I/O timeout */
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
static enum sm_err ssh_tcp(const char *host, int port, int timeout_s, int *out, struct sm_diag *d)
{
	char ps[16];
	snprintf(ps, sizeof(ps), "%d", port);
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
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

static bool ssh_auth_agent(LIBSSH2_SESSION *s, const char *user, int *tried)
{
	const char *sock = getenv("SSH_AUTH_SOCK");
	if (!sock || !*sock)
		return false;
	LIBSSH2_AGENT *a = libssh2_agent_init(s);
	bool ok = false;
	if (!a)
		return false;
	if (libssh2_agent_connect(a) == 0 && libssh2_agent_list_identities(a) == 0) {
		struct libssh2_agent_publickey *id = NULL, *prev = NULL;
		while (!ok && libssh2_agent_get_identity(a, &id, prev) == 0) {
			(*tried)++;
			ok = libssh2_agent_userauth(a, user, id) == 0;
			prev = id;
		}
		libssh2_agent_disconnect(a);
	}
	libssh2_agent_free(a);
	return ok;
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
static enum ssh_key_auth ssh_auth_encrypted(LIBSSH2_SESSION *s, const char *user, const char *key)
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
	if (!ssh_interactive())
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

static enum sm_err ssh_auth(struct sm_ssh_conn *c, const struct sm_ssh_host_cfg *hc,
                            const char *user, const char *password, struct sm_diag *d)
{
	LIBSSH2_SESSION *s = c->s;
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
	if (ssh_method_offered(methods, "publickey")) {
		if (!hc->identities_only && ssh_auth_agent(s, user, &agent_keys))
			return SM_OK;
		for (size_t i = 0; i < hc->n_identity_files; i++) {
			const char *key = hc->identity_files[i];
			if (access(key, R_OK) != 0)
				continue;
			int rc;
			if (ssh_key_file_encrypted(key)) {
				enum ssh_key_auth r = ssh_auth_encrypted(s, user, key);
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
	bool pw_offered = ssh_method_offered(methods, "password");
	bool pw_tried = pw_offered && password; /* then the refusal is the password's */
	if (password && pw_offered &&
	    libssh2_userauth_password_ex(s, user, (unsigned)strlen(user), password,
	                                 (unsigned)strlen(password), NULL) == 0)
		return SM_OK;
	if (!password && pw_offered && isatty(STDIN_FILENO)) {
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

/* ---- connections ---- */

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
	if (c->typed) {
		memset(c->typed, 0, strlen(c->typed));
		free(c->typed);
	}
	free(c);
}

static enum sm_err ssh_connect(const struct sm_ssh_target *t, struct sm_ssh_conn **out,
                               struct sm_diag *d)
{
	pthread_once(&ssh_once, ssh_global_init);
	if (ssh_init_rc != 0)
		return sm_diag_set(d, SM_EIO, ssh_init_rc, "ssh: libssh2 failed to initialise");
	struct sm_ssh_host_cfg hc;
	enum sm_err err = sm_ssh_config_resolve(NULL, t->host, t->user, t->port, &hc, d);
	if (err != SM_OK)
		return err;
	struct sm_ssh_conn *c = calloc(1, sizeof(*c));
	if (!c) {
		err = sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
		goto out;
	}
	c->fd = -1;
	char login[256];
	const char *user = hc.user ? hc.user : ssh_login_name(login, sizeof(login));
	snprintf(c->name, sizeof(c->name), "%s@%s:%d", user, hc.hostname, hc.port);
	int ct = hc.connect_timeout_s > 0 ? hc.connect_timeout_s : SSH_CONNECT_TIMEOUT_S;
	err = ssh_tcp(hc.hostname, hc.port, ct, &c->fd, d);
	if (err != SM_OK)
		goto out;
	c->s = libssh2_session_init();
	if (!c->s) {
		err = sm_diag_set(d, SM_ENOMEM, 0, "out of memory");
		goto out;
	}
	struct ssh_khfiles khf;
	ssh_khfiles(&hc, &khf);
	char khname[600];
	sm_kh_name(hc.hostname, hc.port, khname, sizeof(khname));
	ssh_prefer_known(c->s, &khf, khname);
	libssh2_session_set_blocking(c->s, 1);
	libssh2_session_set_timeout(c->s, (long)ct * 1000);
	if (libssh2_session_handshake(c->s, c->fd) != 0) {
		char em[256];
		err = sm_diag_set(d, SM_EAGAIN, 0, "ssh: handshake with %s:%d failed: %s",
		                  hc.hostname, hc.port, ssh_errmsg(c->s, em, sizeof(em)));
		goto out;
	}
	err = ssh_check_host(c->s, &khf, khname, &hc, d);
	if (err != SM_OK)
		goto out;
	err = ssh_auth(c, &hc, user, t->password, d);
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
