#!/usr/bin/env bash
# Check the fstaidd Debian package: contrib/deb/check.sh DEB
#
#   1. lintian: no error and no warning (justified exceptions are in
#      contrib/deb/lintian-overrides, installed with the package);
#   2. dpkg-deb -c lists exactly the expected files, modes and owners; the
#      conffiles and control fields are as expected;
#   3. the package installed for real, with its maintainer scripts, into a
#      throwaway Debian root made with debootstrap --variant=minbase (the
#      package tarball is cached in $FSTAID_DEBOOTSTRAP_CACHE, so reruns
#      download nothing): files, owners and modes; the system user
#      fstaidd that postinst creates; `fstaidd version`; `fstaidd check`
#      accepts the example config, as root and as the user fstaidd (run
#      in an empty network namespace: nothing leaves the machine); the
#      example handlers; `systemd-analyze verify` on the installed units
#      (an instance of each template too) with the example drop-ins
#      root-handlers.conf and onfailure.conf;
#   4. the maintainer scripts: with systemd not running they skip it; with
#      systemd "running" (a /run/systemd/system directory in the root and
#      systemctl and deb-systemd-invoke replaced by loggers), install and
#      upgrade only run daemon-reload, never start/restart anything, an
#      edited conffile survives the upgrade (group fstaidd), and removal
#      stops the socket and the service; purge keeps a failover record
#      and the user.
#
# Runs as root (debootstrap, chroot). Installs lintian, debootstrap and
# dpkg-dev with apt-get when missing. Exit 0 when every check passed.
#
# Environment:
#   FSTAID_DEBIAN_SUITE      suite of the throwaway root (default bookworm)
#   FSTAID_DEBIAN_MIRROR     mirror (default: the host's apt sources for the
#                            suite, else http://deb.debian.org/debian)
#   FSTAID_DEBOOTSTRAP_CACHE tarball cache (default /var/cache/fstaid-debootstrap)
# shellcheck disable=SC2015,SC2016 # a && b || fail; dpkg-query formats
set -euo pipefail

started=$(date +%s)
here=$(cd "$(dirname "$0")" && pwd)
if [ $# -ne 1 ] || [ ! -f "$1" ]; then
	echo "usage: $0 fstaidd_VERSION_ARCH.deb" >&2
	exit 2
fi
deb=$(realpath "$1")
if [ "$(id -u)" != 0 ]; then
	echo "check.sh: must run as root (debootstrap, chroot)" >&2
	exit 2
fi

step() { echo "== $* ($(($(date +%s) - started))s)"; }
fail() {
	echo "check.sh: FAIL: $*" >&2
	exit 1
}

# --- tools -----------------------------------------------------------------
step "tools"
need=()
command -v lintian >/dev/null || need+=(lintian)
command -v debootstrap >/dev/null || need+=(debootstrap)
dpkg-query -W -f='${Status}\n' dpkg-dev 2>/dev/null | grep -q 'install ok installed' || need+=(dpkg-dev)
command -v systemd-analyze >/dev/null || need+=(systemd)
command -v unshare >/dev/null || need+=(util-linux)
if [ ${#need[@]} -gt 0 ]; then
	echo "installing ${need[*]}"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# --- 1. lintian ------------------------------------------------------------
step "lintian $(lintian --version | awk '{print $2}')"
# -I shows informational tags too; only errors and warnings fail.
set +e
lintian_out=$(lintian -I --display-experimental --fail-on error,warning "$deb" 2>&1)
rc=$?
set -e
lintian_out=$(grep -v '^running with root privileges is not recommended!$' <<<"$lintian_out" || true)
echo "${lintian_out:-(no tags)}" | sed 's/^/  /'
[ "$rc" = 0 ] || fail "lintian reported errors or warnings (exit $rc)"

# --- 2. contents -----------------------------------------------------------
step "contents"
# mode owner path, as dpkg-deb -c lists them (sizes and times left out).
expected_contents='drwxr-xr-x root/root ./etc/
drwxr-xr-x root/root ./etc/fstaidd/
-rw-r----- root/root ./etc/fstaidd/fstaidd.toml
drwxr-xr-x root/root ./lib/
drwxr-xr-x root/root ./lib/systemd/
drwxr-xr-x root/root ./lib/systemd/system/
-rw-r--r-- root/root ./lib/systemd/system/fstaidd-fail.socket
-rw-r--r-- root/root ./lib/systemd/system/fstaidd-fail@.socket
-rw-r--r-- root/root ./lib/systemd/system/fstaidd-onfailure@.service
-rw-r--r-- root/root ./lib/systemd/system/fstaidd.service
-rw-r--r-- root/root ./lib/systemd/system/fstaidd@.service
drwxr-xr-x root/root ./usr/
drwxr-xr-x root/root ./usr/bin/
-rwxr-xr-x root/root ./usr/bin/fstaidd
drwxr-xr-x root/root ./usr/lib/
drwxr-xr-x root/root ./usr/lib/sysusers.d/
-rw-r--r-- root/root ./usr/lib/sysusers.d/fstaidd.conf
drwxr-xr-x root/root ./usr/share/
drwxr-xr-x root/root ./usr/share/doc/
drwxr-xr-x root/root ./usr/share/doc/fstaidd/
-rw-r--r-- root/root ./usr/share/doc/fstaidd/README.Debian
-rw-r--r-- root/root ./usr/share/doc/fstaidd/changelog.Debian.gz
-rw-r--r-- root/root ./usr/share/doc/fstaidd/copyright
drwxr-xr-x root/root ./usr/share/fstaidd/
drwxr-xr-x root/root ./usr/share/fstaidd/examples/
-rwxr-xr-x root/root ./usr/share/fstaidd/examples/aws-elastic-ip.sh
-rwxr-xr-x root/root ./usr/share/fstaidd/examples/handler.sh
drwxr-xr-x root/root ./usr/share/fstaidd/grafana/
-rw-r--r-- root/root ./usr/share/fstaidd/grafana/fstaid.json
drwxr-xr-x root/root ./usr/share/fstaidd/prometheus/
-rw-r--r-- root/root ./usr/share/fstaidd/prometheus/fstaid.rules.test.yml
-rw-r--r-- root/root ./usr/share/fstaidd/prometheus/fstaid.rules.yml
-rw-r--r-- root/root ./usr/share/fstaidd/examples/onfailure.conf
-rw-r--r-- root/root ./usr/share/fstaidd/examples/root-handlers.conf
drwxr-xr-x root/root ./usr/share/lintian/
drwxr-xr-x root/root ./usr/share/lintian/overrides/
-rw-r--r-- root/root ./usr/share/lintian/overrides/fstaidd
drwxr-xr-x root/root ./usr/share/man/
drwxr-xr-x root/root ./usr/share/man/man8/
-rw-r--r-- root/root ./usr/share/man/man8/fstaidd.8.gz
drwxr-xr-x root/root ./var/
drwxr-xr-x root/root ./var/lib/
drwxr-xr-x root/root ./var/lib/fstaidd/'
actual_contents=$(dpkg-deb -c "$deb" | awk '{ print $1, $2, $6 }' | sort -k3)
if [ "$actual_contents" != "$(sort -k3 <<<"$expected_contents")" ]; then
	diff -u <(sort -k3 <<<"$expected_contents") <(echo "$actual_contents") | sed 's/^/  /' >&2 || true
	fail "dpkg-deb -c: the package does not contain exactly the expected files (- expected, + actual)"
fi
echo "$(wc -l <<<"$actual_contents") entries, as expected"

ctrl=$(mktemp -d)
work=""
cleanup() {
	rm -rf "$ctrl"
	if [ -n "$work" ] && [ -d "$work" ]; then
		# Nothing is mounted in the root from this namespace (the /proc
		# of `fstaidd check` lives in a namespace of its own), but never
		# let rm cross into a mount.
		while read -r mnt; do
			umount -l "$mnt" || true
		done < <(awk -v w="$work" 'index($2, w) == 1 { print $2 }' /proc/mounts | sort -r)
		rm -rf --one-file-system "$work"
	fi
}
trap cleanup EXIT
dpkg-deb -e "$deb" "$ctrl"
[ "$(cat "$ctrl/conffiles")" = /etc/fstaidd/fstaidd.toml ] ||
	fail "conffiles: want exactly /etc/fstaidd/fstaidd.toml, got: $(cat "$ctrl/conffiles")"
[ ! -e "$ctrl/preinst" ] || fail "unexpected maintainer script preinst"
for f in postinst prerm postrm; do
	[ -x "$ctrl/$f" ] || fail "maintainer script $f missing or not executable"
done
field() { dpkg-deb -f "$deb" "$1"; }
[ "$(field Package)" = fstaidd ] || fail "Package: $(field Package)"
[ "$(field Section)" = admin ] || fail "Section: $(field Section), want admin"
[ "$(field Priority)" = optional ] || fail "Priority: $(field Priority), want optional"
[ -n "$(field Maintainer)" ] || fail "no Maintainer"
version=$(field Version)
upstream=${version%-*}
echo "fstaidd $version ($(field Architecture)), conffiles and control fields as expected"

# --- 3. install into a throwaway Debian root --------------------------------
suite=${FSTAID_DEBIAN_SUITE:-bookworm}
mirror=${FSTAID_DEBIAN_MIRROR:-}
if [ -z "$mirror" ]; then
	# The host's apt sources, one-line or deb822 format: the first URI of
	# a "deb" source for the suite itself.
	mirror=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
		awk -v s="$suite" '$1 == "deb" { sub(/\[[^]]*\][[:space:]]*/, ""); if ($3 == s) { print $2; exit } }' || true)
fi
if [ -z "$mirror" ]; then
	mirror=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk -v s="$suite" '
		function flush() { if (deb && suites ~ ("(^| )" s "( |$)") && uri != "") { print uri; found = 1; exit } deb = 0; suites = ""; uri = "" }
		/^[[:space:]]*$/ { flush(); next }
		/^Types:/ { deb = ($0 ~ /[: ]deb( |$)/) }
		/^Suites:/ { sub(/^Suites:[[:space:]]*/, ""); suites = $0 }
		/^URIs:/ { uri = $2 }
		END { if (!found) flush() }' || true)
fi
mirror=${mirror:-http://deb.debian.org/debian}
arch=$(dpkg --print-architecture)
cache=${FSTAID_DEBOOTSTRAP_CACHE:-/var/cache/fstaid-debootstrap}
tarball="$cache/$suite-minbase-$arch.tgz"
mkdir -p "$cache"
if [ ! -s "$tarball" ]; then
	step "debootstrap --make-tarball ($suite from $mirror, cached in $cache)"
	# Built under a name of its own and renamed: a concurrent or
	# interrupted run never sees a partial tarball. Delete the tarball to
	# refresh it.
	tmpdir=$(mktemp -d /var/tmp/fstaid-debootstrap.XXXXXX)
	partial="$tarball.$$.tmp"
	debootstrap --variant=minbase --make-tarball="$partial" "$suite" "$tmpdir" "$mirror" >"$cache/make-tarball.log" 2>&1 || {
		tail -20 "$cache/make-tarball.log" >&2
		rm -rf --one-file-system "$tmpdir" "$partial"
		fail "debootstrap --make-tarball failed (log: $cache/make-tarball.log)"
	}
	rm -rf --one-file-system "$tmpdir"
	mv "$partial" "$tarball"
fi

step "debootstrap --variant=minbase --unpack-tarball $tarball"
work=$(mktemp -d /var/tmp/fstaid-deb-check.XXXXXX)
root="$work/root"
debootstrap --variant=minbase --unpack-tarball="$tarball" "$suite" "$root" "$mirror" >"$work/debootstrap.log" 2>&1 || {
	tail -20 "$work/debootstrap.log" >&2
	fail "debootstrap failed"
}

# in_root runs a command in the root with a clean environment.
in_root() {
	chroot "$root" env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
		LC_ALL=C.UTF-8 DEBIAN_FRONTEND=noninteractive "$@"
}
cp "$deb" "$root/tmp/fstaidd.deb"
# systemctl and deb-systemd-invoke log their calls instead (neither the
# real systemctl nor a running systemd exists in a minbase root).
calls=/var/log/fstaid-check-systemd.calls
for cmd in systemctl deb-systemd-invoke; do
	cat >"$root/usr/local/sbin/$cmd" <<EOF
#!/bin/sh
echo "$cmd \$*" >>$calls
EOF
	chmod 0755 "$root/usr/local/sbin/$cmd"
done
: >"$root$calls"
expect_calls() { # WHAT EXPECTED-LINES
	local got
	got=$(cat "$root$calls")
	[ "$got" = "$2" ] || fail "$1: maintainer scripts called
${got:-(nothing)}
want
${2:-(nothing)}"
	: >"$root$calls"
}

step "dpkg -i (systemd not running)"
[ ! -e "$root/run/systemd/system" ] || fail "/run/systemd/system exists in the fresh root"
in_root dpkg -i /tmp/fstaidd.deb >"$work/dpkg.log" 2>&1 || {
	cat "$work/dpkg.log" >&2
	fail "dpkg -i failed"
}
expect_calls "install without systemd" ""
[ "$(in_root dpkg-query -W -f='${Status}' fstaidd)" = "install ok installed" ] || fail "fstaidd is not installed"

step "installed files"
# path mode owner:group, as installed by dpkg
expected_files='/usr/bin/fstaidd 755 root:root
/lib/systemd/system/fstaidd.service 644 root:root
/lib/systemd/system/fstaidd-fail.socket 644 root:root
/lib/systemd/system/fstaidd@.service 644 root:root
/lib/systemd/system/fstaidd-fail@.socket 644 root:root
/lib/systemd/system/fstaidd-onfailure@.service 644 root:root
/etc/fstaidd 755 root:root
/etc/fstaidd/fstaidd.toml 640 root:fstaidd
/usr/lib/sysusers.d/fstaidd.conf 644 root:root
/usr/share/fstaidd/examples/handler.sh 755 root:root
/usr/share/fstaidd/examples/aws-elastic-ip.sh 755 root:root
/usr/share/fstaidd/examples/root-handlers.conf 644 root:root
/usr/share/fstaidd/examples/onfailure.conf 644 root:root
/usr/share/fstaidd/prometheus/fstaid.rules.yml 644 root:root
/usr/share/fstaidd/prometheus/fstaid.rules.test.yml 644 root:root
/usr/share/fstaidd/grafana/fstaid.json 644 root:root
/var/lib/fstaidd 755 root:root
/usr/share/doc/fstaidd/copyright 644 root:root
/usr/share/doc/fstaidd/changelog.Debian.gz 644 root:root
/usr/share/doc/fstaidd/README.Debian 644 root:root
/usr/share/man/man8/fstaidd.8.gz 644 root:root'
while read -r path want; do
	# stat in the root: owner names are the root's (fstaidd's ids may
	# be another user's on this host).
	got=$(in_root stat -c '%a %U:%G' "$path" 2>/dev/null) || fail "$path is not installed"
	[ "$got" = "$want" ] || fail "$path: mode and owner $got, want $want"
done <<<"$expected_files"
cmp -s "$root/etc/fstaidd/fstaidd.toml" "$here/fstaidd.toml" || fail "/etc/fstaidd/fstaidd.toml differs from contrib/deb/fstaidd.toml"
[ "$(in_root dpkg-query -W -f='${Conffiles}' fstaidd | awk '{ print $1 }' | xargs)" = /etc/fstaidd/fstaidd.toml ] ||
	fail "dpkg does not record /etc/fstaidd/fstaidd.toml as a conffile"
zcat "$root/usr/share/doc/fstaidd/changelog.Debian.gz" | head -1 | grep -qF "fstaidd ($version) " ||
	fail "changelog.Debian.gz does not start with this version ($version)"
grep -q '^Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/' "$root/usr/share/doc/fstaidd/copyright" ||
	fail "copyright is not machine-readable (DEP-5)"
echo "owners, modes, conffile, changelog and copyright as expected"

step "the system user fstaidd"
# Created by postinst (systemd-sysusers is not in a minbase root: useradd),
# as /usr/lib/sysusers.d/fstaidd.conf describes it: a system uid, its own
# group, the state directory as home, no login.
pw=$(in_root getent passwd fstaidd) || fail "postinst did not create the user fstaidd"
IFS=: read -r _ _ uid gid _ home shell <<<"$pw"
[ "$uid" -lt 1000 ] && [ "$home" = /var/lib/fstaidd ] && [ "$shell" = /usr/sbin/nologin ] ||
	fail "user fstaidd: $pw, want a system uid, home /var/lib/fstaidd, shell /usr/sbin/nologin"
[ "$(in_root getent group fstaidd | cut -d: -f3)" = "$gid" ] || fail "user fstaidd: primary group is not the group fstaidd"
grep -qx 'u fstaidd - "fstaid failover monitor" /var/lib/fstaidd' "$root/usr/lib/sysusers.d/fstaidd.conf" ||
	fail "/usr/lib/sysusers.d/fstaidd.conf does not describe the same user"
echo "$pw"

step "fstaidd version, fstaidd check, example handlers"
v=$(in_root fstaidd version)
echo "$v"
[[ "$v" == "fstaidd $upstream (commit "[0-9a-f]*")" ]] || fail "fstaidd version: want 'fstaidd $upstream (commit <hash>)'"
# The example config must load; its checks fail (a documentation address,
# and no network at all): exit 1, where a bad config exits 78. A PID and
# mount namespace give the root a /proc that vanishes with the command.
set +e
out=$(unshare --net --mount --pid --fork --mount-proc="$root/proc" \
	chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin fstaidd check 2>&1)
rc=$?
set -e
echo "$out" | sed 's/^/  /'
[ "$rc" = 1 ] || fail "fstaidd check on the example config: exit $rc, want 1 (78 is a configuration error)"
grep -q '^config /etc/fstaidd/fstaidd.toml: OK$' <<<"$out" || fail "fstaidd check does not accept the example config"
grep -q '^  free: no failover record$' <<<"$out" || fail "fstaidd check: the lock directory is not usable"
# The same as the user the service runs as: it must read the config
# (root:fstaidd 0640). The lock directory becomes fstaidd's when systemd
# starts the service (StateDirectory=), not before.
set +e
out=$(unshare --net --mount --pid --fork --mount-proc="$root/proc" \
	chroot --userspec="$uid:$gid" --groups="$gid" "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin fstaidd check 2>&1)
rc=$?
set -e
echo "$out" | sed 's/^/  (as fstaidd) /'
[ "$rc" = 1 ] || fail "fstaidd check as the user fstaidd: exit $rc, want 1 (78 is a configuration error)"
grep -q '^config /etc/fstaidd/fstaidd.toml: OK$' <<<"$out" || fail "fstaidd check as fstaidd cannot read the config"
set +e
out=$(in_root env FSTAID_REASON=manual FSTAID_TARGET=db1 /usr/share/fstaidd/examples/handler.sh 1 false -1 false 2>&1)
rc=$?
set -e
[ "$rc" = 1 ] && grep -q 'primary_exit=1 primary_timedout=false secondary_exit=-1 secondary_timedout=false' <<<"$out" ||
	fail "examples/handler.sh: exit $rc, output: $out"
set +e
out=$(in_root /usr/share/fstaidd/examples/aws-elastic-ip.sh 1 false -1 false 2>&1)
rc=$?
set -e
[ "$rc" = 1 ] && grep -q 'FSTAID_EIP_ALLOCATION_ID is not set' <<<"$out" ||
	fail "examples/aws-elastic-ip.sh without settings: exit $rc, output: $out"
echo "version, example config and example handlers as expected"

step "systemd-analyze verify (installed units; ExecStart pointed into the root)"
units="$work/units"
mkdir "$units"
sed "s|^ExecStart=/usr/bin/fstaidd |ExecStart=$root/usr/bin/fstaidd |" \
	"$root/lib/systemd/system/fstaidd.service" >"$units/fstaidd.service"
grep -q "^ExecStart=$root/usr/bin/fstaidd " "$units/fstaidd.service" ||
	fail "fstaidd.service: no ExecStart=/usr/bin/fstaidd line"
sed "s|^ExecStart=/usr/bin/fstaidd |ExecStart=$root/usr/bin/fstaidd |" \
	"$root/lib/systemd/system/fstaidd@.service" >"$units/fstaidd@.service"
grep -q "^ExecStart=$root/usr/bin/fstaidd " "$units/fstaidd@.service" ||
	fail "fstaidd@.service: no ExecStart=/usr/bin/fstaidd line"
cp "$root/lib/systemd/system/fstaidd-fail.socket" "$root/lib/systemd/system/fstaidd-fail@.socket" "$units/"
# verify insists that ExecStart= exists: the operator writes on-failure.
sed "s|^ExecStart=/etc/fstaidd/on-failure |ExecStart=/bin/true |" \
	"$root/lib/systemd/system/fstaidd-onfailure@.service" >"$units/fstaidd-onfailure@.service"
grep -q "^ExecStart=/bin/true " "$units/fstaidd-onfailure@.service" ||
	fail "fstaidd-onfailure@.service: no ExecStart=/etc/fstaidd/on-failure line"
# With the example drop-ins for root handlers and OnFailure=, as an
# operator installs them, and instance db1's socket with its port, as its
# comment says.
mkdir "$units/fstaidd.service.d" "$units/fstaidd@.service.d" "$units/fstaidd-fail@db1.socket.d"
cp "$root/usr/share/fstaidd/examples/root-handlers.conf" "$root/usr/share/fstaidd/examples/onfailure.conf" "$units/fstaidd.service.d/"
cp "$root/usr/share/fstaidd/examples/root-handlers.conf" "$root/usr/share/fstaidd/examples/onfailure.conf" "$units/fstaidd@.service.d/"
printf '[Socket]\nListenStream=127.0.0.1:8081\n' >"$units/fstaidd-fail@db1.socket.d/listen.conf"
unitsload=/run/systemd/systemd-units-load
had_unitsload=false
[ ! -e "$unitsload" ] || had_unitsload=true
set +e
verify_err=$(systemd-analyze verify "$units/fstaidd.service" "$units/fstaidd-fail.socket" \
	"$units/fstaidd@db1.service" "$units/fstaidd-fail@db1.socket" \
	"$units/fstaidd-onfailure@fstaidd.service" "$units/fstaidd-onfailure@fstaidd@db1.service" 2>&1 >/dev/null)
rc=$?
set -e
$had_unitsload || rm -f "$unitsload"
[ "$rc" = 0 ] && [ -z "$verify_err" ] || fail "systemd-analyze verify: exit $rc:
$verify_err"
echo "no output"

step "dpkg -r (systemd not running)"
in_root dpkg -r fstaidd >"$work/dpkg.log" 2>&1 || {
	cat "$work/dpkg.log" >&2
	fail "dpkg -r failed"
}
expect_calls "remove without systemd" ""
[ ! -e "$root/usr/bin/fstaidd" ] || fail "/usr/bin/fstaidd left after dpkg -r"
[ ! -e "$root/lib/systemd/system/fstaidd.service" ] || fail "fstaidd.service left after dpkg -r"
[ -f "$root/etc/fstaidd/fstaidd.toml" ] || fail "dpkg -r removed the conffile (only purge may)"

# --- 4. maintainer scripts with systemd "running" ---------------------------
step "install, upgrade, remove, purge with systemd running"
mkdir -p "$root/run/systemd/system"
in_root dpkg -P fstaidd >"$work/dpkg.log" 2>&1 || {
	cat "$work/dpkg.log" >&2
	fail "dpkg -P of the removed package failed"
}
: >"$root$calls"
in_root dpkg -i /tmp/fstaidd.deb >"$work/dpkg.log" 2>&1 || {
	cat "$work/dpkg.log" >&2
	fail "dpkg -i with systemd failed"
}
expect_calls "install" "systemctl --system daemon-reload"
# An edited config and an enabled service survive an upgrade, untouched.
echo "# edited by check.sh" >>"$root/etc/fstaidd/fstaidd.toml"
mkdir -p "$root/etc/systemd/system/multi-user.target.wants" "$root/etc/systemd/system/sockets.target.wants"
ln -s /lib/systemd/system/fstaidd.service "$root/etc/systemd/system/multi-user.target.wants/fstaidd.service"
ln -s /lib/systemd/system/fstaidd-fail.socket "$root/etc/systemd/system/sockets.target.wants/fstaidd-fail.socket"
ln -s /lib/systemd/system/fstaidd@.service "$root/etc/systemd/system/multi-user.target.wants/fstaidd@db1.service"
ln -s /lib/systemd/system/fstaidd-fail@.socket "$root/etc/systemd/system/sockets.target.wants/fstaidd-fail@db1.socket"
in_root dpkg -i /tmp/fstaidd.deb >"$work/dpkg.log" 2>&1 || {
	cat "$work/dpkg.log" >&2
	fail "upgrade (dpkg -i over the installed package) failed"
}
expect_calls "upgrade" "systemctl --system daemon-reload"
tail -1 "$root/etc/fstaidd/fstaidd.toml" | grep -qx '# edited by check.sh' || fail "the upgrade overwrote the edited conffile"
[ "$(in_root stat -c %U:%G /etc/fstaidd/fstaidd.toml)" = root:fstaidd ] || fail "after the upgrade the edited conffile is not root:fstaidd"
echo '{"state":"failed-over"}' >"$root/var/lib/fstaidd/fstaid.8080.lock"
# Instance db1 failed over; db2 never did.
mkdir -p "$root/var/lib/fstaidd/db1" "$root/var/lib/fstaidd/db2"
echo '{"state":"failed-over"}' >"$root/var/lib/fstaidd/db1/fstaid.8081.lock"
in_root dpkg -r fstaidd >"$work/dpkg.log" 2>&1 || {
	cat "$work/dpkg.log" >&2
	fail "dpkg -r with systemd failed"
}
expect_calls "remove" "deb-systemd-invoke stop fstaidd-fail.socket fstaidd-fail@*.socket
deb-systemd-invoke stop fstaidd.service fstaidd@*.service
systemctl --system daemon-reload"
in_root dpkg -P fstaidd >"$work/dpkg.log" 2>&1 || {
	cat "$work/dpkg.log" >&2
	fail "dpkg -P failed"
}
expect_calls "purge" "systemctl --system daemon-reload"
[ ! -e "$root/etc/fstaidd/fstaidd.toml" ] || fail "dpkg -P left the conffile"
for link in multi-user.target.wants/fstaidd.service multi-user.target.wants/fstaidd@db1.service sockets.target.wants/fstaidd-fail@db1.socket; do
	[ ! -e "$root/etc/systemd/system/$link" ] || fail "dpkg -P left the enablement link $link"
done
[ -f "$root/var/lib/fstaidd/fstaid.8080.lock" ] || fail "dpkg -P removed a failover record"
[ -f "$root/var/lib/fstaidd/db1/fstaid.8081.lock" ] || fail "dpkg -P removed instance db1's failover record"
[ ! -e "$root/var/lib/fstaidd/db2" ] || fail "dpkg -P left instance db2's empty state directory"
in_root getent passwd fstaidd >/dev/null || fail "dpkg -P removed the user fstaidd (files may still belong to it)"
[ "$(in_root dpkg-query -W -f='${Status}' fstaidd 2>/dev/null || true)" != "install ok installed" ] || fail "fstaidd still installed"
echo "daemon-reload only on install and upgrade; sockets and services (instances too) stopped on removal; records and user kept"

step "clean up"
cleanup
work=""
echo "check.sh: all checks passed for $(basename "$deb") in $(($(date +%s) - started))s"
