/*
 * What the SFTP store needs of an SSH layer: a connected, authenticated
 * libssh2 session to a host. deploy/ssh.c provides it and the run hands it
 * to the stores in their configuration, so backends never include deploy/.
 */
#ifndef SM_SSHLINK_H
#define SM_SSHLINK_H

#include <libssh2.h>

#include "../err.h"

/* Where to connect, as the URL gave it; NULL / 0 for what it left out
 * (~/.ssh/config and the defaults fill those in). */
struct sm_ssh_target {
	const char *host;
	const char *user;
	const char *password;
	int port;
};

struct sm_ssh_conn;

struct sm_ssh_ops {
	/* Connect, check the host key, authenticate. *out only on success. */
	enum sm_err (*connect)(const struct sm_ssh_target *t, struct sm_ssh_conn **out,
	                       struct sm_diag *d);
	/* The session (owned by the connection; in blocking mode when it
	 * comes, and a caller may drive it non-blocking from then on). */
	LIBSSH2_SESSION *(*session)(struct sm_ssh_conn *c);
	/* The connection's socket, for poll() by a caller driving the
	 * session in non-blocking mode. */
	int (*fd)(struct sm_ssh_conn *c);
	/* How long a call may hear nothing before the link counts as dead
	 * (ServerAliveInterval x (ServerAliveCountMax + 1), or the default). */
	long (*io_timeout_ms)(struct sm_ssh_conn *c);
	/* "user@host:port" for messages. */
	const char *(*name)(struct sm_ssh_conn *c);
	/* The password typed at the terminal for this connection, or NULL:
	 * the caller reuses it for its later connections instead of asking
	 * again (borrowed until close). */
	const char *(*typed_password)(struct sm_ssh_conn *c);
	void (*close)(struct sm_ssh_conn *c); /* accepts NULL */
};

#endif
