#!/usr/bin/env bash
# Stops the kube-apiserver of the local control plane (up.sh) and starts it
# again with the same command line: same etcd, PKI and port. Waits until it
# is ready again. Used by the fault campaign (make chaos).
#   restart-apiserver.sh [--signal TERM|KILL] [--down SECONDS]
set -euo pipefail
. "$(dirname "$0")/lib.sh"
state=$TESTENV_STATE

signal=TERM
down=0
while [ $# -gt 0 ]; do
  case $1 in
    --signal) signal=$2; shift 2 ;;
    --down) down=$2; shift 2 ;;
    *) echo "usage: $0 [--signal TERM|KILL] [--down SECONDS]" >&2; exit 2 ;;
  esac
done

pidfile=$state/pids/kube-apiserver
cmdfile=$state/cmdline/kube-apiserver
if [ ! -f "$pidfile" ] || [ ! -f "$cmdfile" ]; then
  echo "no control plane started by up.sh (with a recorded command line) in $state" >&2
  exit 1
fi

# It stops listening at once on TERM but may linger draining; 10 s is enough.
testenv_stop_pid "$(cat "$pidfile")" "$signal" 10
sleep "$down"

eval "set -- $(cat "$cmdfile")"
echo "=== restarted by restart-apiserver.sh at $(date -Is)" >>"$state/logs/kube-apiserver.log"
"$@" </dev/null >>"$state/logs/kube-apiserver.log" 2>&1 &
echo $! >"$pidfile"

port=$(grep -o -- '--secure-port=[0-9]*' "$cmdfile" | cut -d= -f2)
address=$(grep -o -- '--bind-address=[0-9.]*' "$cmdfile" | cut -d= -f2)
pki=$state/pki
testenv_wait_for kube-apiserver 120 curl -fsS --cacert "$pki/ca.crt" --cert "$pki/admin.crt" \
  --key "$pki/admin.key" "https://$address:$port/readyz"
echo "kube-apiserver restarted (pid $(cat "$pidfile"))" >&2
