#!/usr/bin/env bash
# HAKMEM_* in a privileged program (issue 13, defect 3): libhakmem in
# /etc/ld.so.preload runs inside setuid programs too, and there the invoking
# user must not steer it (HAKMEM_HISTORY would choose where a root process
# writes a file).  The options are read with secure_getenv, so in an AT_SECURE
# process every HAKMEM_* variable is ignored.
# A setuid-root copy of tests/progs/env_probe (the core linked in) is run by
# uid 65534 with HAKMEM_RING_CAP, HAKMEM_MODE=evolving and HAKMEM_HISTORY set:
#   control (same binary, no setuid bit): the variables are honoured, the
#            history file is created (when SQLite is there);
#   setuid:  AT_SECURE=1, the defaults hold, no history file appears.
# Needs root (to make the setuid copy and to switch users): otherwise it skips.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
PROBE=$PROGS/env_probe
need_exe "$PROBE"
[ "$(id -u)" -eq 0 ] || skip "needs root (to create a setuid-root program and run it as another user)"
need_cmd setpriv util-linux
chmod 0755 "$T"
mkdir "$T/w" && chown 65534:65534 "$T/w"
cp "$PROBE" "$T/plain" && chmod 0755 "$T/plain"
cp "$PROBE" "$T/suid" && chown 0:0 "$T/suid" && chmod 4755 "$T/suid"
fails=0
bad() { echo "FAIL: $*"; fails=$((fails + 1)); }
as_nobody() {   # history file, program
  env HAKMEM_RING_CAP=7 HAKMEM_MODE=evolving HAKMEM_HISTORY="$1" HAKMEM_STATS=0 \
    setpriv --reuid=65534 --regid=65534 --clear-groups "$2" 300
}
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p; s/^$1=\([^ ]*\).*/\1/p" <<<"$2" | head -n 1; }

ctl=$(as_nobody "$T/w/control.db" "$T/plain") || bad "control run failed: $ctl"
echo "control: $ctl"
[ "$(field secure "$ctl")" = 0 ] || bad "control run is AT_SECURE: $ctl"
[ "$(field ring_cap "$ctl")" = 7 ] || bad "control run ignored HAKMEM_RING_CAP: $ctl"
[ "$(field mode "$ctl")" = evolving ] || bad "control run ignored HAKMEM_MODE: $ctl"
[ "$(field history "$ctl")" = "$T/w/control.db" ] || bad "control run ignored HAKMEM_HISTORY: $ctl"
history_works=0
[ -e "$T/w/control.db" ] && history_works=1

out=$(as_nobody "$T/w/pwned.db" "$T/suid") || bad "setuid run failed: $out"
echo "setuid:  $out"
if [ "$(field secure "$out")" != 1 ]; then
  [ $fails -eq 0 ] || exit 1
  echo "setuid_env: the setuid bit is not honoured here (no_new_privs or a nosuid mount: $(grep NoNewPrivs /proc/self/status))"
  exit 77
fi
[ "$(field ring_cap "$out")" = 4 ] || bad "setuid run took HAKMEM_RING_CAP from the user: $out"
[ "$(field mode "$out")" = fixed ] || bad "setuid run took HAKMEM_MODE from the user: $out"
[ -z "$(field history "$out")" ] || bad "setuid run took HAKMEM_HISTORY from the user: $out"
[ ! -e "$T/w/pwned.db" ] || bad "setuid run wrote the history file the user chose ($(stat -c '%U %a' "$T/w/pwned.db"))"
[ $fails -eq 0 ] || exit 1
if [ $history_works -eq 1 ]; then
  echo "setuid_env: ok"
else
  echo "setuid_env: ok (the control run wrote no history either: the file check proved nothing here)"
fi
