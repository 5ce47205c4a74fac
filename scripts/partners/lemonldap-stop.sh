#!/bin/bash
# Usage: lemonldap-stop.sh DIR
# Stops what lemonldap-setup.sh DIR started, by the PIDs in DIR/run/nginx.pid (nginx master; its worker follows) and
# DIR/run/llng-fastcgi.pid (FCGI::ProcManager parent; its workers follow): TERM, up to 5 s, then KILL.
# Kills nothing else, by name or otherwise. Leaves DIR (config, logs) in place. Exit 1 if a KILL was needed.
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: $0 DIR" >&2; exit 2; }
D=$(realpath -m "$1"); rc=0
alive() { kill -0 "$1" 2>/dev/null && [ "$(ps -o stat= -p "$1" 2>/dev/null | cut -c1)" != Z ]; }
for f in "$D/run/nginx.pid" "$D/run/llng-fastcgi.pid"; do
  [ -f "$f" ] || continue; pid=$(cat "$f")
  if [[ $pid =~ ^[0-9]+$ ]] && alive "$pid"; then
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 50); do alive "$pid" || break; sleep 0.1; done
    if alive "$pid"; then echo "lemonldap-stop: pid $pid ($f) ignored TERM, sending KILL" >&2; kill -KILL "$pid" || true; rc=1; fi
  fi
  rm -f "$f"
done
rm -f "$D/run/llng-fastcgi.sock"
exit $rc
