#!/bin/sh
# The README's first commands on a machine without the project's packages:
# a fresh clone of this repository must pass `make demo` and `make check`
# first try. (A Makefile that asked pkg-config at parse time linked with no
# libraries on the first run, once `make deps` had installed them: CI never
# saw it, because its machine already had the packages.)
#
# How, without touching the host: a private mount and pid namespace
# (unshare), an overlay on / whose upper directory is a tmpfs, chroot into
# it, `apt-get remove` the -dev packages and a few tools there, `git clone`
# the repository's committed HEAD, then `make demo` and `make check`. When
# the script ends the namespace and every process in it die, and the tmpfs
# with every change goes with them.
#
#   tests/fresh/fresh-root.sh            (root; `make check-fresh` runs it)
# Environment: SMIME_TOP (the repository, default: this checkout),
# FRESH_TARGETS (default "demo check"), FRESH_TMPFS_SIZE (default 6g),
# FRESH_COMMIT (default HEAD: what to clone and test).
# Needs network access to the Debian mirror in /etc/apt/sources.list
# unless /var/cache/apt/archives already holds the packages.
set -eu

top=${SMIME_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
targets=${FRESH_TARGETS:-demo check}
size=${FRESH_TMPFS_SIZE:-6g}
# What a fresh Debian machine lacks: every -dev package the build links
# against, pkg-config, the Check library, and two tools the tests use.
remove="libconfig-dev libssl-dev libmilter-dev libsqlite3-dev libidn2-dev libpq-dev
libcurl4-openssl-dev libldap2-dev libldap-dev libunbound-dev check pkg-config pkgconf pkgconf-bin
swaks jq"
# The servers the e2e tests start privately (postgresql, slapd, nsd) stay:
# make deps would install them, and removing them takes minutes.

fail() { echo "fresh-root: FAIL: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || fail "needs root (unshare, mount, chroot)"
command -v git >/dev/null || fail "missing git"
git -C "$top" rev-parse --verify -q HEAD >/dev/null || fail "$top is not a git checkout"
if [ -n "$(git -C "$top" status --porcelain --untracked-files=no)" ]; then
	echo "fresh-root: note: uncommitted changes in $top are not tested (a clone takes HEAD)"
fi

commit=$(git -C "$top" rev-parse "${FRESH_COMMIT:-HEAD}")
case "$top" in /mnt/* | /mnt) fail "$top lies under /mnt, which the scratch tmpfs hides" ;; esac
echo "fresh-root: testing $commit in a copy-on-write root"

# Made in the namespace before chroot, where the checkout is visible
# wherever it is: a fresh clone of the commit.
# shellcheck disable=SC2016
export COW_PREPARE='git clone -q --no-checkout "'"$top"'" "$1/root/smime-milter" &&
	git -C "$1/root/smime-milter" checkout -q '"$commit"
export COW_TMPFS_SIZE="$size"
# shellcheck disable=SC2016
exec "$(dirname "$0")/cow-root.sh" "remove='$(echo $remove)' targets='$targets' commit=$commit"'
	installed=""
	for p in $remove; do
		dpkg-query -W -f="\${Status}" "$p" 2>/dev/null | grep -q " installed$" &&
			installed="$installed $p"
	done
	echo "fresh-root: removing$installed"
	apt-get remove -y -q $installed | grep -A3 REMOVED || true
	for f in libconfig.pc libcrypto.pc sqlite3.pc libpq.pc libcurl.pc ldap.pc libunbound.pc \
	    libidn2.pc libmilter/mfapi.h check.h; do
		for d in /usr/lib/x86_64-linux-gnu/pkgconfig /usr/lib/*/pkgconfig /usr/include; do
			[ -e "$d/$f" ] && { echo "fresh-root: FAIL: $d/$f still there"; exit 1; }
		done
	done
	if command -v pkg-config >/dev/null; then
		echo "fresh-root: FAIL: pkg-config still installed"; exit 1
	fi
	cd /root/smime-milter
	[ "$(git rev-parse HEAD)" = "$commit" ]
	for t in $targets; do
		echo "fresh-root: make $t (first try)"
		start=$(date +%s)
		if ! make "$t"; then
			echo "fresh-root: FAIL: make $t failed on its first run"
			exit 1
		fi
		echo "fresh-root: make $t passed in $(( $(date +%s) - start ))s"
	done
	echo "fresh-root: ok: make $targets passed first try in a fresh root"
'
