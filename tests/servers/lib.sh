# shellcheck shell=bash
# Shared by the test server scripts (radosgw.sh, sshd.sh). Before sourcing,
# a script sets `me` (its name, for messages) and PACKAGES (the Debian
# packages ensure_packages installs when missing, as root); usage() prints
# the script's header comment.

say() { echo "$me: $*" >&2; }
die() {
	say "$*"
	exit 1
}

usage() {
	sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
	exit 2
}

ensure_packages() {
	local missing=() p
	for p in "${PACKAGES[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
	done
	((${#missing[@]})) || return 0
	[ "$(id -u)" -eq 0 ] || die "missing packages ${missing[*]} (run as root to install them)"
	say "installing ${missing[*]}"
	local log
	log=$(mktemp /tmp/$me-apt.XXXXXX)
	# A package may start its service (openssh-server: an sshd on 0.0.0.0:22)
	# unless policy-rc.d says no (101): put one there for the install when none exists.
	local policy=/usr/sbin/policy-rc.d ours_policy=0 rc=0
	if [ ! -e "$policy" ]; then
		printf '#!/bin/sh\n# %s: no service starts while it installs packages\nexit 101\n' "$me" >"$policy"
		chmod 0755 "$policy"
		ours_policy=1
	fi
	{ DEBIAN_FRONTEND=noninteractive apt-get update -q &&
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"; } \
		</dev/null >"$log" 2>&1 || rc=$?
	if ((ours_policy)); then rm -f "$policy"; fi
	if ((rc)); then
		tail -30 "$log" >&2
		rm -f "$log"
		die "could not install ${missing[*]}"
	fi
	rm -f "$log"
}

# absdir DIR [create]: print DIR as an absolute path.
absdir() {
	[ -n "$1" ] || die "empty DIR"
	[ "${2:-}" = create ] && mkdir -p -- "$1"
	(cd -- "$1" 2>/dev/null && pwd) || return 1
}

# Is a TCP socket listening on ADDR:PORT, or on the wildcard address with that
# port? (Asks the kernel: a connect() test is useless here, as this network
# accepts connections to any non-local address.)
listening() { # addr port
	local a=${1#[}
	a=${a%]}
	ss -Hltn "( sport = :$2 )" 2>/dev/null | awk -v a="$a" '
		{ l = $4; sub(/:[0-9]+$/, "", l); gsub(/[][]/, "", l); sub(/%.*/, "", l)
		  if (l == a || l == "0.0.0.0" || l == "::" || l == "*") f = 1 }
		END { exit !f }'
}

# Is ADDR one of this machine's addresses (any 127.x.y.z is)?
local_addr() { # addr
	local a=${1#[}
	a=${a%]}
	[[ $a == 127.* ]] && return 0
	ip -o addr show 2>/dev/null | awk -v a="$a" '{ sub(/\/.*/, "", $4); if ($4 == a) f = 1 } END { exit !f }'
}

show_log() { # name file
	[ -s "$2" ] || return 0
	echo "---- $1: last lines of $2" >&2
	tail -n 25 "$2" >&2
}

