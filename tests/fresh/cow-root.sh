#!/bin/sh
# cow-root.sh COMMAND... — run COMMAND (as root, through /bin/sh -c) in a
# throwaway copy-on-write copy of this machine's root: a private mount and
# pid namespace (unshare), an overlay on / whose upper directory is a tmpfs,
# chroot. Whatever COMMAND installs, creates or removes vanishes with the
# namespace when it ends, and every process it started dies with it (pid 1
# of the namespace exits). Nothing on the host changes.
#
# Environment: COW_TMPFS_SIZE (default 6g); COW_PREPARE: a shell command run
# in the namespace before chroot, with the new root's path as $1;
# COW_NET=private: a network namespace of its own with only loopback up, so
# fixed ports (the installed configuration's inet:8894) cannot collide with
# a test running beside it on the host (without it the host's network is
# shared, as make check-fresh needs for apt-get). Inside,
# /proc is the namespace's, /dev and /sys the host's, /tmp and /run fresh
# tmpfs; every other path reads as on the host (but /mnt).
set -eu
fail() { echo "cow-root: FAIL: $*" >&2; exit 1; }
[ $# -ge 1 ] || fail "usage: cow-root.sh COMMAND..."
[ "$(id -u)" = 0 ] || fail "needs root (unshare, mount, chroot)"
for t in unshare chroot mount; do
	command -v "$t" >/dev/null || fail "missing $t"
done
if [ "${COW_INSIDE:-}" != 1 ]; then
	net=
	[ "${COW_NET:-}" != private ] || net=--net
	exec env COW_INSIDE=1 unshare --mount --pid $net --fork --kill-child "$0" "$@"
fi
if [ "${COW_NET:-}" = private ]; then
	command -v ip >/dev/null || fail "missing ip (Debian package iproute2)"
	ip link set lo up
fi
mount --make-rprivate /
# The scratch space hides the host's /mnt in this namespace only.
mount -t tmpfs -o "size=${COW_TMPFS_SIZE:-6g},mode=0755" cow-root /mnt
mkdir /mnt/upper /mnt/work /mnt/root
mount -t overlay cow-root -o lowerdir=/,upperdir=/mnt/upper,workdir=/mnt/work /mnt/root
r=/mnt/root
mount -t proc proc "$r/proc"
mount --rbind /dev "$r/dev"
mount --rbind /sys "$r/sys"
mount -t tmpfs -o mode=1777 tmpfs "$r/tmp"
mount -t tmpfs -o mode=0755 tmpfs "$r/run"
mkdir -p "$r/run/lock"
[ -z "${COW_PREPARE:-}" ] || sh -c "$COW_PREPARE" cow-prepare "$r"
exec chroot "$r" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
	LANG=C.UTF-8 TERM=dumb DEBIAN_FRONTEND=noninteractive \
	/bin/sh -eu -c "$*"
