#!/bin/sh
# Run inside a clean Debian 12 root made by mmdebstrap (tests/package/test_debian_package.py):
# install the gangd package with apt, use it as a line host would, upgrade it, purge it. Each check
# prints "ok: <what>"; the first that fails prints "FAIL: <what>" with what it saw and exits 1.
#   in_root.sh PACKAGE UPGRADE_PACKAGE HTTP_PORT
set -u
PACKAGE=$1 UPGRADE=$2 HTTP_PORT=$3
CONFIG=/etc/gangd/gangd.toml
STATE=/var/lib/gangd
export DEBIAN_FRONTEND=noninteractive

ok() { echo "ok: $1"; }
fail() { echo "FAIL: $1"; shift; for seen in "$@"; do printf '%s\n' "$seen" | sed 's/^/  | /'; done; exit 1; }

# --- install: apt resolves the package's dependencies from Debian -------------------------------
out=$(apt-get install -y --no-install-recommends "$PACKAGE" 2>&1) || fail "apt-get install $PACKAGE" "$out"
ok "apt-get install"
case $out in
    *"gangd: the station is not started: $CONFIG:"*": edit_me: this is the packaged example"*) ok "postinst says the station is not started and why" ;;
    *) fail "postinst names the edit_me reason" "$out" ;;
esac
[ "$(stat -c '%U:%G %a' "$STATE")" = "gangd:gangd 750" ] || fail "$STATE belongs to gangd, 0750" "$(stat -c '%U:%G %a' "$STATE")"
ok "user gangd and $STATE"
[ -L /etc/systemd/system/multi-user.target.wants/gangd.service ] && fail "not enabled by the package"
ok "not enabled by the package"

out=$(gangd --version 2>&1) || fail "gangd --version" "$out"
[ "$out" = "gangd $(dpkg-query -W -f '${Version}' gangd | sed 's/-[^-]*$//')" ] || fail "gangd --version is the package's" "$out"
ok "gangd --version: $out"

out=$(gangd check-config "$CONFIG" 2>&1); status=$?
edit_me_line=$(grep -n '^edit_me =' "$CONFIG" | cut -d: -f1)
case "$status $out" in
    "2 gangd: $CONFIG:$edit_me_line: edit_me: this is the packaged example: set "*"then delete this edit_me line") ok "check-config: $out" ;;
    *) fail "check-config gives the located edit_me reason, exit 2" "status $status" "$out" ;;
esac

man -w gangd >/dev/null 2>&1 || [ -e /usr/share/man/man1/gangd.1.gz ] || fail "man page installed"
zcat /usr/share/man/man1/gangd.1.gz | grep -q -- '--stop-grace' || fail "the man page holds gangd run's options"
ok "man page"

# --- a simulated run as user gangd: both boards programmed and recorded --------------------------
# Event, not timer: gangd's own "job finished" lines are read as it writes them; then SIGTERM, as
# systemd stops it. setpriv execs gangd itself (no intermediate process to forward the signal).
mkfifo /tmp/run.out
HOME=$STATE setpriv --reuid=gangd --regid=gangd --init-groups \
    gangd run --simulate 2 --boards 2 --state-dir "$STATE" --http-address "127.0.0.1:$HTTP_PORT" \
    >/tmp/run.out 2>&1 &
gangd_pid=$!
exec 3</tmp/run.out
finished=$(timeout 120 grep -m 2 '"event": "job finished"' <&3) || true
kill -TERM "$gangd_pid" 2>/dev/null
cat <&3 >/tmp/run.rest &  # drained until gangd, stopping, closes its end
wait "$gangd_pid"; run_status=$?
wait  # the drain
[ "$(printf '%s\n' "$finished" | grep -c '"result": "success"')" = 2 ] || fail "two boards programmed" "$finished" "$(cat /tmp/run.rest)"
[ "$run_status" = 0 ] || fail "gangd run stops cleanly on SIGTERM" "status $run_status" "$(cat /tmp/run.rest)"
records=$(gangd records --state-dir "$STATE" --result success --format jsonl)
[ "$(printf '%s\n' "$records" | grep -c '"result": "success"')" = 2 ] || fail "two records in the journal" "$records"
[ "$(stat -c %U "$STATE/records.sqlite")" = gangd ] || fail "the journal belongs to gangd"
ok "gangd run --simulate 2 --boards 2 as gangd: 2 boards programmed and recorded"

# --- the unit and the udev rules as installed ----------------------------------------------------
out=$(systemd-analyze verify /lib/systemd/system/gangd.service 2>&1) || fail "systemd-analyze verify" "$out"
[ -z "$out" ] || fail "systemd-analyze verify has nothing to say" "$out"
ok "systemd-analyze verify gangd.service"
# udevadm verify came with systemd 253; bookworm's 252 reads every rules file in `udevadm test`,
# logging each mistake as FILE:LINE. A broken rule beside ours shows that mistakes are reported.
echo 'SUBSYSTEM=="hidraw", ATTRS{idVendor}="1fc9", GROUP=="gangd"' > /etc/udev/rules.d/99-broken.rules
out=$(udevadm test /sys/class/mem/null 2>&1)
rm /etc/udev/rules.d/99-broken.rules
printf '%s\n' "$out" | grep -q '99-broken.rules:1' || fail "udevadm test reports a broken rule" "$out"
printf '%s\n' "$out" | grep -q 'Reading rules file: /lib/udev/rules.d/70-gangd.rules' \
    || printf '%s\n' "$out" | grep -q '70-gangd.rules' || fail "udevadm test reads 70-gangd.rules" "$out"
printf '%s\n' "$out" | grep '70-gangd.rules:' && fail "70-gangd.rules parses without a complaint" "$out"
grep -q 'GROUP="gangd", MODE="0660"' /lib/udev/rules.d/70-gangd.rules || fail "70-gangd.rules gives the boards to gangd"
ok "udev rules parse"

# --- upgrade: the edited configuration and the journal stay ---------------------------------------
sed -i '/^edit_me =/d; s/^"1-1.1" = "A1"/"1-1.1" = "Z9"/' "$CONFIG"
grep -q '"Z9"' "$CONFIG" || fail "the test edits the configuration"
out=$(apt-get install -y --no-install-recommends "$UPGRADE" 2>&1) || fail "apt-get install (upgrade) $UPGRADE" "$out"
[ "$(dpkg-query -W -f '${Version}' gangd)" = "$(dpkg-deb -f "$UPGRADE" Version)" ] || fail "upgraded"
grep -q '"1-1.1" = "Z9"' "$CONFIG" && ! grep -q '^edit_me' "$CONFIG" || fail "the edited configuration is kept" "$(head -20 "$CONFIG")"
[ ! -e "$CONFIG.dpkg-new" ] || fail "no conffile prompt for an unchanged example"
after=$(gangd records --state-dir "$STATE" --result success --format jsonl)
[ "$after" = "$records" ] || fail "the journal's records are kept" "$records" "$after"
ok "upgrade keeps the edited configuration and the journal"

# --- purge: the configuration goes, the journal stays ---------------------------------------------
out=$(apt-get purge -y gangd 2>&1) || fail "apt-get purge gangd" "$out"
[ ! -e "$CONFIG" ] || fail "purge removes $CONFIG"
[ ! -e /usr/bin/gangd ] && [ ! -e /opt/gangd ] || fail "purge removes the programs" "$(find /opt/gangd | head)"
[ -s "$STATE/records.sqlite" ] || fail "purge keeps the journal" "$(ls -la "$STATE")"
case $out in *"/var/lib/gangd is kept: the journal"*) ;; *) fail "purge says the journal is kept" "$out" ;; esac
ok "purge removes the configuration and keeps the journal"
echo "all checks passed"
