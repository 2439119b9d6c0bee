#!/bin/sh
# package.sh: builds the Debian package (dpkg-buildpackage -us -uc -b) from a copy of the source
# tree, unpacks it into a fresh root and checks what an admin gets: the programs run and accept
# the installed example configs, the version is VERSION's, man pages and systemd units are in
# place, /etc/braid is private, and the dependencies are the libraries braid links.
set -u
cd "$(dirname "$0")/.."
for t in dpkg-buildpackage dh dpkg-deb; do
    command -v $t >/dev/null || { echo "SKIP package: $t not installed (apt-get install debhelper)"; exit 0; }
done
T=$(mktemp -d /tmp/braid-pkg.XXXXXX)
trap 'rm -rf "$T"' EXIT
fail=0
check() { # check DESC COMMAND...
    d=$1
    shift
    if "$@"; then echo "  ok: $d"; else echo "  FAIL: $d"; fail=1; fi
}
V=$(cat VERSION)
mkdir "$T/braid-$V"
# the files git knows (committed or not) as they are in the working tree
git ls-files -co --exclude-standard -z | tar --null -T - -cf - | tar -x -C "$T/braid-$V"
check "debian/changelog's version is VERSION's ($V)" \
    test "$(cd "$T/braid-$V" && dpkg-parsechangelog -S Version)" = "$V"
(cd "$T/braid-$V" && dpkg-buildpackage -us -uc -b) >"$T/build.log" 2>&1
rc=$?
check "dpkg-buildpackage -us -uc -b builds the package" test $rc -eq 0
[ $rc -eq 0 ] || { tail -30 "$T/build.log"; exit 1; }
deb=$(ls "$T"/braid_"$V"_*.deb)
dpkg-deb -x "$deb" "$T/root"
R=$T/root
check "braid-master --version in the package says $V" \
    sh -c "'$R/usr/sbin/braid-master' --version | grep -q '^braid-master $V (tun build'"
check "braid-master -t accepts the installed example config" \
    sh -c "'$R/usr/sbin/braid-master' -t -c '$R/usr/share/doc/braid/examples/master.conf' >/dev/null 2>&1"
check "braid-slave -t accepts the installed example config" \
    sh -c "'$R/usr/sbin/braid-slave' -t -c '$R/usr/share/doc/braid/examples/slave.conf' >/dev/null 2>&1"
for f in usr/share/man/man8/braid-master.8.gz usr/share/man/man8/braid-slave.8.gz \
         usr/share/man/man5/braid.conf.5.gz; do
    check "man page $f, rendered without warnings" \
        sh -c "zcat '$R/$f' | groff -man -ww -z 2>&1 | (! grep -q .)"
done
for u in braid-master braid-slave; do
    check "$u.service runs /usr/sbin/$u -c /etc/braid/${u#braid-}.conf as Type=notify" \
        sh -c "grep -q '^ExecStart=/usr/sbin/$u -c /etc/braid/${u#braid-}.conf$' '$R/lib/systemd/system/$u.service' &&
               grep -q '^Type=notify$' '$R/lib/systemd/system/$u.service'"
done
check "/etc/braid is drwx------ (it holds private keys)" \
    sh -c "dpkg-deb -c '$deb' | grep -q '^drwx------ root/root .* ./etc/braid/$'"
deps=$(dpkg-deb -f "$deb" Depends)
for lib in libev4 libsodium23 libconfig9 libc-ares2 libsystemd0; do
    check "Depends names $lib" sh -c "echo '$deps' | grep -q '$lib'"
done
dpkg-deb -e "$deb" "$T/ctl"
check "installing does not start the units" sh -c "! grep -q 'deb-systemd-invoke' '$T/ctl/postinst'"
check "installing enables a unit only if the admin had enabled it before (an upgrade)" \
    test "$(grep -c "helper enable '" "$T/ctl/postinst")" = "$(grep -c 'was-enabled' "$T/ctl/postinst")"
check "a first install gives /etc/braid to group braid, mode 750 (a config it reads at a reload)" \
    grep -q "chmod 750 /etc/braid" "$T/ctl/postinst"
check "installing creates the system user braid (for user = \"braid\")" \
    grep -q "adduser --system --group --no-create-home --home /nonexistent --quiet braid" "$T/ctl/postinst"
if [ $fail -eq 0 ]; then echo "PASS package"; else echo "FAIL package"; fi
exit $fail
