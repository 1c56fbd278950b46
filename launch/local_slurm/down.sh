#!/usr/bin/env bash
# Stop the one-machine cluster of up.sh: cancel its jobs, stop slurmd, slurmctld, slurmdbd, MariaDB and munged.
# --purge also deletes its state (job history, database, logs) and the slurm.conf / slurmdbd.conf it wrote.
set -uo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
source "$HERE/common.sh"
STOP_TIMEOUT_S=20

stop_pidfile() {  # stop_pidfile NAME PIDFILE: SIGTERM, then SIGKILL after STOP_TIMEOUT_S
  local name=$1 file=$2 pid
  pid_alive "$file" || return 0
  pid=$(cat "$file")
  kill "$pid" 2>/dev/null
  for _ in $(seq 1 $((STOP_TIMEOUT_S * 4))); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.25; done
  echo "local_slurm: $name (pid $pid) did not stop in ${STOP_TIMEOUT_S}s; killing it" >&2
  kill -9 "$pid" 2>/dev/null
}

if [ -e "$SLURM_CONF_FILE" ] && ! grep -q "$MARKER" "$SLURM_CONF_FILE"; then
  echo "local_slurm: $SLURM_CONF_FILE was not written by up.sh; not touching this machine's SLURM" >&2
  exit 1
fi
if pid_alive "$STATE/slurmctld.pid"; then
  scancel --full --quiet --user="$(id -un)" 2>/dev/null
  scancel --full --quiet 2>/dev/null
fi
stop_pidfile slurmd "$STATE/slurmd.pid"
pkill -9 -x slurmstepd 2>/dev/null  # job steps outlive slurmd; nothing else runs them on this machine
stop_pidfile slurmctld "$STATE/slurmctld.pid"
stop_pidfile slurmdbd "$STATE/slurmdbd.pid"
stop_pidfile MariaDB "$DB_PID"
pkill -x munged 2>/dev/null
if [ "${1:-}" = "--purge" ]; then
  rm -rf "$STATE" "$SLURM_CONF_FILE" "$SLURMDBD_CONF_FILE"
  echo "local_slurm: stopped; state and configs removed"
else
  echo "local_slurm: stopped (state kept in $STATE; --purge removes it)"
fi
