#!/usr/bin/env bash
# A one-machine SLURM cluster (munged, MariaDB + slurmdbd for `sacct`, slurmctld, slurmd) for trying crl's
# cluster path on a workstation and for CI. Needs root on Debian/Ubuntu (installs slurm-wlm, slurmdbd, munge
# and mariadb-server with apt when missing). Stop it with launch/local_slurm/down.sh (docs/sweeps.md).
# Everything it writes lives under $CRL_SLURM_STATE (default /var/lib/crl-local-slurm), except
# /etc/slurm/slurm.conf and /etc/slurm/slurmdbd.conf, which it refuses to overwrite unless it wrote them.
# --fresh first removes what an earlier cluster left (jobs, accounting, logs): CI starts from nothing.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
source "$HERE/common.sh"

READY_TIMEOUT_S=${CRL_SLURM_READY_TIMEOUT_S:-60}
DB_PORT=${CRL_SLURM_DB_PORT:-3307}  # MariaDB on loopback only, beside any server already on 3306
DB_PASSWORD=crl-local-slurm         # reachable from 127.0.0.1 only
KILL_WAIT_S=30                      # SIGTERM -> SIGKILL on cancel and requeue: time to finish an epoch and save
CRED_EXPIRE_S=10                    # also how long a requeued job waits before it may start again (SLURM: 120)

say() { echo "local_slurm: $*"; }
die() { echo "local_slurm: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "needs root (it installs packages and starts daemons): sudo $0"

install_packages() {
  local missing=()
  for bin in slurmctld slurmd slurmdbd munged mariadbd sacct; do command -v "$bin" >/dev/null || missing+=("$bin"); done
  [ ${#missing[@]} -eq 0 ] && return
  command -v apt-get >/dev/null || die "missing ${missing[*]} and no apt-get: install SLURM, slurmdbd, munge and MariaDB by hand"
  say "installing slurm-wlm slurmdbd munge mariadb-server (missing: ${missing[*]})"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq slurm-wlm slurmdbd munge mariadb-server >/dev/null 2>&1 \
    || { apt-get update -qq >/dev/null && apt-get install -y -qq slurm-wlm slurmdbd munge mariadb-server >/dev/null; }
}

refuse_foreign_conf() {
  for conf in "$SLURM_CONF_FILE" "$SLURMDBD_CONF_FILE"; do
    if [ -e "$conf" ] && ! grep -q "$MARKER" "$conf"; then
      die "$conf exists and was not written by this script; this machine has its own SLURM: use it, or move $conf away"
    fi
  done
}

wait_for() {  # wait_for WHAT COMMAND...: retry until it succeeds, or fail after READY_TIMEOUT_S with the logs
  local what=$1; shift
  for _ in $(seq 1 $((READY_TIMEOUT_S * 4))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.25; done
  die "$what did not come up within ${READY_TIMEOUT_S}s (logs in $STATE/log and $DB_DIR)"
}

start_munge() {
  [ -s /etc/munge/munge.key ] || { mungekey --create --force 2>/dev/null || dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 2>/dev/null; }
  chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
  mkdir -p /run/munge && chown munge:munge /run/munge
  if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    runuser -u munge -- /usr/sbin/munged
    wait_for munged sh -c 'munge -n | unmunge'
  fi
}

start_database() {
  local data="$DB_DIR/data"
  if [ ! -d "$data/mysql" ]; then
    mkdir -p "$data" && chown -R mysql:mysql "$DB_DIR"
    mariadb-install-db --user=mysql --datadir="$data" --auth-root-authentication-method=socket >"$STATE/log/mariadb-install.log" 2>&1 \
      || die "mariadb-install-db failed: $STATE/log/mariadb-install.log"
  fi
  if ! pid_alive "$DB_PID"; then
    mariadbd --no-defaults --user=mysql --datadir="$data" --socket="$DB_SOCKET" --pid-file="$DB_PID" \
      --bind-address=127.0.0.1 --port="$DB_PORT" --log-error="$DB_DIR/mariadb.log" \
      --innodb-buffer-pool-size=64M --skip-name-resolve 2>>"$DB_DIR/mariadb.log" &
    wait_for MariaDB mariadb --socket="$DB_SOCKET" -e "select 1"
  fi
  mariadb --socket="$DB_SOCKET" -e "
    CREATE DATABASE IF NOT EXISTS slurm_acct_db;
    CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$DB_PASSWORD';
    GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';"
}

write_confs() {
  local node cpus memory
  node=$(hostname -s)
  # This host's real CPUs and memory, as slurmd itself detects them.
  read -r cpus memory < <(slurmd -C | sed -n 's/.*CPUs=\([0-9]*\).*RealMemory=\([0-9]*\).*/\1 \2/p')
  mkdir -p /etc/slurm "$STATE/ctld" "$STATE/d"
  cat >"$SLURMDBD_CONF_FILE" <<EOF
# $MARKER
DbdHost=localhost
SlurmUser=root
PidFile=$STATE/slurmdbd.pid
LogFile=$STATE/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=$DB_PASSWORD
StorageLoc=slurm_acct_db
EOF
  chmod 600 "$SLURMDBD_CONF_FILE"
  cat >"$SLURM_CONF_FILE" <<EOF
# $MARKER
ClusterName=$CLUSTER
SlurmctldHost=$node
SlurmUser=root
AuthType=auth/munge
AuthInfo=cred_expire=$CRED_EXPIRE_S
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
# No cgroups: processes are tracked by parentage, so it runs in containers and CI machines too.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
SchedulerType=sched/backfill
# Scheduling passes every 2 s (SLURM: 60 s and 30 s), so a requeued job starts soon after it may.
SchedulerParameters=sched_interval=2,bf_interval=2
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
AccountingStorageType=accounting_storage/slurmdbd
JobCompType=jobcomp/none
KillWait=$KILL_WAIT_S
ReturnToService=2
MinJobAge=600
InactiveLimit=0
NodeName=$node CPUs=$cpus RealMemory=$memory State=UNKNOWN
PartitionName=$PARTITION Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
}

cluster_registered() { sacctmgr -n -P show cluster format=cluster | grep -qx "$CLUSTER"; }
node_idle() { sinfo -h -o %t | grep -qx idle; }

install_packages
refuse_foreign_conf
if [ "${1:-}" = "--fresh" ]; then bash "$HERE/down.sh" --purge >/dev/null; fi
mkdir -p "$STATE/log"
write_confs
start_munge
start_database
pid_alive "$STATE/slurmdbd.pid" || slurmdbd
wait_for slurmdbd sacctmgr -n show cluster
cluster_registered || sacctmgr -i add cluster "$CLUSTER" >/dev/null
pid_alive "$STATE/slurmctld.pid" || slurmctld
pid_alive "$STATE/slurmd.pid" || slurmd
wait_for "the node (sinfo idle)" node_idle
say "cluster $CLUSTER is up: $(sinfo -h -o '%D node, %c CPUs, %m MB, partition %P (%t)'); stop it with $HERE/down.sh"
