#!/usr/bin/env bash
# test-unprivileged: `make test` (gofmt check, go vet, go test -race) as a
# user without privileges. `make test-unprivileged` and CI run it.
#
# Not root: runs make test as it is.
#
# Root: runs make test as $UNPRIV_USER (default nobody, in its own primary
# group, no supplementary groups) through setpriv(1) (util-linux, on every
# Debian), with no capabilities to inherit and no_new_privs set, so that no
# setuid or file-capability program can give any back. That user gets its
# own HOME, GOPATH, GOMODCACHE, GOCACHE and TMPDIR under $UNPRIV_DIR
# (default /var/tmp/dgramlab-unprivileged, kept between runs so that its
# build cache stays warm; point it at a fresh directory for a cold run):
#
#   $UNPRIV_DIR/         root's, 0755
#     proxy/             root's module download cache, copied (readable)
#     home/              the user's, 0700: HOME, go/ (GOPATH, GOMODCACHE),
#                        .cache/go-build (GOCACHE), tmp/ (TMPDIR)
#     src.XXXXXX/        a copy of the tree, only if the user cannot read
#                        it (removed afterwards)
#
# Root's own caches are never shared: /root is not readable by others. The
# modules are downloaded as root first (no network when root's module cache
# already has them), then the user fetches them from the copy with
# GOPROXY=file://..., so its run needs no network at all.
set -euo pipefail
cd "$(dirname "$0")/.."
src=$PWD
make=${MAKE:-make}
go=${GO:-go}

say() { echo "test-unprivileged: $*"; }
die() { echo "test-unprivileged: $*" >&2; exit 1; }

if [ "$(id -u)" -ne 0 ]; then
	say "running as $(id -un) (uid $(id -u)): make test"
	exec "$make" --no-print-directory test GO="$go"
fi

user=${UNPRIV_USER:-nobody}
uid=$(id -u "$user") || die "no user $user (set UNPRIV_USER)"
gid=$(id -g "$user")
[ "$uid" -ne 0 ] || die "$user is root"
command -v setpriv >/dev/null || die "setpriv (util-linux) is not on PATH"
gobin=$(command -v "$go") || die "$go is not on PATH"
makebin=$(command -v "$make") || die "$make is not on PATH"

# asuser runs a command as the user, without privileges, in the
# environment built below.
asuser() {
	setpriv --reuid="$uid" --regid="$gid" --clear-groups --inh-caps=-all --no-new-privs \
		env "${userenv[@]}" "$@"
}

dir=${UNPRIV_DIR:-/var/tmp/dgramlab-unprivileged}
case $dir in /*) ;; *) die "UNPRIV_DIR must be absolute: $dir" ;; esac
# Root writes in $dir (proxy/, src.*/): it must be root's and nobody else's
# to write, not a link someone left there.
if [ -e "$dir" ] || [ -L "$dir" ]; then
	[ -d "$dir" ] && [ ! -L "$dir" ] && [ "$(stat -c %u "$dir")" = 0 ] &&
		[ $((0$(stat -c %a "$dir") & 022)) -eq 0 ] ||
		die "$dir must be a directory that only root can write (remove it, or set UNPRIV_DIR)"
fi
install -d -o root -g root -m 0755 "$dir" "$dir/proxy"
home=$dir/home
install -d -o "$uid" -g "$gid" -m 0700 "$home"

# The modules: root's cache first (downloading only what it lacks), then
# a copy of its download cache, which a file:// GOPROXY serves.
say "go mod download (as root)"
"$gobin" mod download
rootmod=$("$gobin" env GOMODCACHE)
cp -R --preserve=mode,timestamps -u "$rootmod/cache/download/." "$dir/proxy/"
chmod -R a+rX,go-w "$dir/proxy"

userenv=(
	HOME="$home" USER="$user" LOGNAME="$user"
	XDG_CACHE_HOME="$home/.cache" XDG_CONFIG_HOME="$home/.config"
	GOPATH="$home/go" GOMODCACHE="$home/go/pkg/mod" GOCACHE="$home/.cache/go-build"
	GOENV="$home/.config/go/env" TMPDIR="$home/tmp" GOTMPDIR=
	GOPROXY="file://$dir/proxy" GOSUMDB=off GONOSUMDB= GOPRIVATE= GONOPROXY=
	GOTOOLCHAIN="$("$gobin" env GOTOOLCHAIN)" GOFLAGS="$("$gobin" env GOFLAGS) -modcacherw"
)
asuser mkdir -p "$home/tmp" "$home/.config"

# The tree: in place if the user can read all of it, else a fresh copy.
unreadable=$(asuser find "$src" -path "$src/.git" -prune -o ! -readable -print -quit 2>&1) ||
	unreadable=${unreadable:-"$src (find failed)"}
if [ -n "$unreadable" ]; then
	copy=$(mktemp -d "$dir/src.XXXXXX")
	trap 'rm -rf "$copy"' EXIT
	say "$user cannot read all of $src (${unreadable%%$'\n'*}): testing a copy in $copy"
	tar -C "$src" --exclude=./.git -cf - . | tar -C "$copy" --no-same-owner -xf -
	chmod -R a+rX,go-w "$copy"
	chmod 0755 "$copy"
	src=$copy
fi

say "make test as $user (uid $uid, gid $gid, no capabilities) in $src, caches in $home"
cd "$src"
asuser "$makebin" --no-print-directory test GO="$gobin"
say "passed as $user"
