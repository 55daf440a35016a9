/*
 * SSH sessions (libssh2) honouring $HOME/.ssh/config: the host's HostName,
 * Port, User, IdentityFile, IdentitiesOnly, UserKnownHostsFile,
 * StrictHostKeyChecking, ConnectTimeout and ServerAliveInterval. Host keys
 * are checked against known_hosts: an unknown host is refused with its
 * fingerprint and the ssh-keyscan hint (or added, with StrictHostKeyChecking
 * accept-new / no), a changed key is always refused. Authentication tries
 * ssh-agent ($SSH_AUTH_SOCK, unless IdentitiesOnly), then the identity
 * files, then a password from the URL, then a password typed at the
 * terminal when stdin is one (never otherwise).
 */
#ifndef SM_SSH_H
#define SM_SSH_H

#include "../common/store/sshlink.h"

/* Connections as the SFTP store wants them. */
extern const struct sm_ssh_ops sm_ssh_ops;

#endif
