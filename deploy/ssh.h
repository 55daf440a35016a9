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
 *
 * An encrypted identity file (PEM "Proc-Type: 4,ENCRYPTED", PKCS#8
 * "ENCRYPTED PRIVATE KEY", OpenSSH format with a cipher) that no agent
 * holds: with stdin a terminal its passphrase is asked on /dev/tty, echo
 * off ("Enter passphrase for key '...': ", at most 3 tries; an empty answer
 * skips the key), once per run for every connection; otherwise the key is
 * skipped, and when nothing else gets in the error says it is encrypted.
 * Neither a password nor a passphrase is ever printed.
 */
#ifndef SM_SSH_H
#define SM_SSH_H

#include "../common/store/sshlink.h"

#include <stdbool.h>

/* Connections as the SFTP store wants them. */
extern const struct sm_ssh_ops sm_ssh_ops;

/* Whether the private key text (NUL-terminated: a key file's start) is
 * encrypted; false for what it cannot tell. */
bool sm_ssh_key_encrypted(const char *text);

#endif
