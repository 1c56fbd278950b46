# Shared by up.sh and down.sh: where the one-machine cluster keeps its files, and its names.
STATE=${CRL_SLURM_STATE:-/var/lib/crl-local-slurm}
MARKER="written by crl launch/local_slurm/up.sh"
SLURM_CONF_FILE=/etc/slurm/slurm.conf
SLURMDBD_CONF_FILE=/etc/slurm/slurmdbd.conf
CLUSTER=crl-local
PARTITION=local
DB_DIR="$STATE/db"  # owned by the mysql user: data, socket, pid and log
DB_SOCKET="$DB_DIR/mariadb.sock"
DB_PID="$DB_DIR/mariadb.pid"

pid_alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
