/*
 * OpenSSH client configuration ($HOME/.ssh/config) for one host: Host
 * blocks with patterns (`*`, `?`, `!negation`, several per line), Match
 * (host, originalhost, user, localuser, all, `!` negations), Include, and
 * the keywords HostName, Port, User, IdentityFile, IdentitiesOnly,
 * UserKnownHostsFile, GlobalKnownHostsFile, HashKnownHosts,
 * StrictHostKeyChecking, ConnectTimeout, ServerAliveInterval,
 * ServerAliveCountMax, ProxyJump, ProxyCommand, HostKeyAlias,
 * IdentityAgent, BatchMode, AddressFamily, PasswordAuthentication,
 * PubkeyAuthentication and IgnoreUnknown. As in ssh, the first value
 * obtained for a keyword wins (IdentityFile lines accumulate;
 * UserKnownHostsFile may name several files on its one line), keywords are
 * case-insensitive, `Key value` and `Key=value` both work, values may be
 * double-quoted, and `~` and the tokens %d %h %p %r %u %% (ProxyCommand:
 * also %n) are expanded.
 *
 * Nothing is ignored silently that would make the connection other than
 * ssh's: ssh's other keywords either change nothing for SFTP (forwardings,
 * terminals, multiplexing, logging: ignored) or, where they apply to the
 * host (BindAddress, Ciphers, CertificateFile, `Match exec`, ...), are an
 * error naming the keyword, file and line; an unknown keyword is an error
 * anywhere, as in ssh, unless IgnoreUnknown names it.
 */
#ifndef SM_SSHCONFIG_H
#define SM_SSHCONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "../common/err.h"

enum sm_ssh_strict {
	SM_SSH_STRICT_ASK = 0, /* ssh's default: refuse unknown hosts when not interactive */
	SM_SSH_STRICT_YES,
	SM_SSH_STRICT_ACCEPT_NEW,
	SM_SSH_STRICT_NO, /* accept unknown hosts (a changed key is still refused) */
};

struct sm_ssh_host_cfg {
	char *alias;           /* the name as given (URL host) */
	char *hostname;        /* HostName (with %h expanded), else the alias */
	int port;              /* Port, else 22 */
	char *user;            /* User, else NULL (the caller falls back to the login name) */
	char **identity_files; /* IdentityFile values in order, expanded; when none
	                        * is configured: ~/.ssh/id_ed25519, id_ecdsa, id_rsa */
	size_t n_identity_files;
	bool identities_only;
	char **known_hosts; /* UserKnownHostsFile values, expanded; default
	                     * ~/.ssh/known_hosts */
	size_t n_known_hosts;
	char **global_known_hosts; /* GlobalKnownHostsFile values, expanded; default
	                            * /etc/ssh/ssh_known_hosts, /etc/ssh/ssh_known_hosts2 */
	size_t n_global_known_hosts;
	bool hash_known_hosts; /* HashKnownHosts: accept-new writes hashed names */
	enum sm_ssh_strict strict;
	int connect_timeout_s;      /* ConnectTimeout; 0 = not set */
	int server_alive_interval;  /* ServerAliveInterval seconds; 0 = not set */
	int server_alive_count_max; /* ServerAliveCountMax; default 3 */
	/* ProxyJump or ProxyCommand, whichever applies first ("none": neither) */
	char *proxy_jump;     /* the hops as written: "[user@]host[:port],..." or NULL */
	char *proxy_command;  /* %-tokens expanded, for /bin/sh -c; or NULL */
	char *host_key_alias; /* HostKeyAlias: the name known_hosts is searched for, or NULL */
	char *identity_agent; /* IdentityAgent, expanded: a socket, "none", or NULL ($SSH_AUTH_SOCK) */
	bool batch_mode;      /* BatchMode: never ask at the terminal */
	int address_family; /* AddressFamily: AF_UNSPEC, AF_INET or AF_INET6 */
	bool password_auth; /* PasswordAuthentication (default yes) */
	bool pubkey_auth;   /* PubkeyAuthentication (default yes) */
};

/*
 * Resolve `alias` with the config file `path` (NULL: $HOME/.ssh/config; a
 * missing file is not an error, an unreadable one is). `user` and `port`
 * (NULL / 0 when absent) come from the URL and win over the file, as
 * ssh's command line does; they are also what %r and %p expand to. A
 * malformed line is an error naming the file and line. *out written only on
 * success.
 */
enum sm_err sm_ssh_config_resolve(const char *path, const char *alias, const char *user, int port,
                                  struct sm_ssh_host_cfg *out, struct sm_diag *d);
void sm_ssh_host_cfg_release(struct sm_ssh_host_cfg *c); /* accepts NULL */

/* ssh's pattern matching: `*`, `?`, no other specials. */
bool sm_ssh_pattern_match(const char *pattern, const char *s);

#endif
