#!/usr/bin/env bash
# A single-node SLURM cluster on this machine, from Debian's packages, for trying the SLURM profile
# for real (tests/test_slurm.py). Everything it writes lives in one state folder; nothing under /etc
# changes. Daemons run as root: munged, MariaDB (on 127.0.0.1 only), slurmdbd (accounting, so that
# `sacct` answers and the executor plugin sees jobs finish or fail), slurmctld and slurmd.
#
#   cluster/local-slurm.sh start [STATE]   install what is missing, start the daemons, wait until the
#                                          node is idle; prints the `export SLURM_CONF=...` line
#   cluster/local-slurm.sh stop [STATE]    stop every daemon it started (by the PIDs it recorded)
#   cluster/local-slurm.sh env [STATE]     print the `export SLURM_CONF=...` line
#
# STATE defaults to $PYODE_SLURM_DIR or /tmp/pyode-slurm. The node offers every CPU of this machine,
# 80% of its memory and one count-only GPU (a GRES without a device), so that GPU requests in the
# profile are scheduled; jobs still run on the CPU. Partitions: `cpu` (the default) and `gpu`.
set -euo pipefail

command=${1:-}
state=$(realpath -m "${2:-${PYODE_SLURM_DIR:-/tmp/pyode-slurm}}")
node=$(hostname -s)
database_port=${PYODE_SLURM_DB_PORT:-33061}

say() { echo "local-slurm: $*" >&2; }

install_packages() {
    local missing=()
    for binary in munged mungekey slurmctld slurmd slurmdbd sbatch sacct mariadbd mariadb-install-db; do
        command -v "$binary" > /dev/null || missing+=("$binary")
    done
    if ((${#missing[@]})); then
        say "installing slurm-wlm, slurmdbd, munge, mariadb-server (missing: ${missing[*]})"
        apt-get update -q > /dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm slurmdbd munge mariadb-server > /dev/null
    fi
}

write_config() {
    mkdir -p "$state"/{munge,mysql,spool/ctld,spool/d,log,run}
    chmod 700 "$state" "$state/munge"
    local cpus memory
    cpus=$(nproc)
    memory=$(awk '/MemTotal/ {print int($2 / 1024 * 0.8)}' /proc/meminfo)
    cat > "$state/slurm.conf" << EOF
ClusterName=pyode
SlurmctldHost=$node(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$state/munge/munge.socket
StateSaveLocation=$state/spool/ctld
SlurmdSpoolDir=$state/spool/d
SlurmctldPidFile=$state/run/slurmctld.pid
SlurmdPidFile=$state/run/slurmd.pid
SlurmctldLogFile=$state/log/slurmctld.log
SlurmdLogFile=$state/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePass=$state/munge/munge.socket
AccountingStoreFlags=job_comment
AccountingStorageTRES=gres/gpu
GresTypes=gpu
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
ReturnToService=2
MinJobAge=300
SchedulerType=sched/backfill
NodeName=$node NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$memory Gres=gpu:1 State=UNKNOWN
PartitionName=cpu Nodes=$node Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=$node MaxTime=INFINITE State=UP
EOF
    # Slurm's gpu GRES wants a device file: a character device like /dev/null (1:3) stands in for one.
    mkdir -p "$state/dev"
    [[ -e $state/dev/nvidia0 ]] || mknod "$state/dev/nvidia0" c 1 3
    echo "NodeName=$node Name=gpu File=$state/dev/nvidia0" > "$state/gres.conf"
    cat > "$state/slurmdbd.conf" << EOF
AuthType=auth/munge
AuthInfo=socket=$state/munge/munge.socket
DbdHost=localhost
DbdAddr=127.0.0.1
SlurmUser=root
PidFile=$state/run/slurmdbd.pid
LogFile=$state/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$database_port
StorageUser=slurm
StoragePass=pyode
StorageLoc=slurm_acct_db
EOF
    chmod 600 "$state/slurmdbd.conf"
}

wait_for() { # wait_for SECONDS DESCRIPTION COMMAND...
    local seconds=$1 description=$2
    shift 2
    for ((i = 0; i < seconds * 2; i++)); do
        "$@" > /dev/null 2>&1 && return 0
        sleep 0.5
    done
    say "gave up waiting for $description; logs in $state/log"
    exit 1
}

start_database() {
    if [[ ! -d $state/mysql/mysql ]]; then
        mariadb-install-db --user=root --datadir="$state/mysql" --auth-root-authentication-method=socket \
            --skip-test-db > "$state/log/mariadb-install.log" 2>&1
    fi
    mariadbd --user=root --datadir="$state/mysql" --socket="$state/run/mysql.sock" \
        --pid-file="$state/run/mariadb.pid" --bind-address=127.0.0.1 --port="$database_port" \
        --log-error="$state/log/mariadb.log" --innodb-buffer-pool-size=128M > /dev/null 2>&1 &
    wait_for 60 MariaDB mariadb --socket="$state/run/mysql.sock" -e "select 1"
    mariadb --socket="$state/run/mysql.sock" << EOF
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'pyode';
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'pyode';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
EOF
}

start() {
    install_packages
    if [[ -f $state/run/slurmctld.pid ]] && kill -0 "$(cat "$state/run/slurmctld.pid")" 2> /dev/null; then
        say "already running ($state)"
        echo "export SLURM_CONF=$state/slurm.conf"
        return
    fi
    write_config
    link_config
    export SLURM_CONF=$state/slurm.conf
    [[ -f $state/munge/munge.key ]] || mungekey --create --keyfile="$state/munge/munge.key"
    munged --key-file="$state/munge/munge.key" --socket="$state/munge/munge.socket" \
        --pid-file="$state/run/munged.pid" --log-file="$state/log/munged.log" \
        --seed-file="$state/munge/munged.seed" --force
    start_database
    slurmdbd
    wait_for 60 slurmdbd sacctmgr -i list cluster
    sacctmgr -i add cluster pyode > /dev/null 2>&1 || true
    sacctmgr -i add account pyode Cluster=pyode Description=pyode Organization=pyode > /dev/null 2>&1 || true
    sacctmgr -i add user root Account=pyode DefaultAccount=pyode > /dev/null 2>&1 || true
    slurmctld
    wait_for 60 slurmctld scontrol ping
    slurmd
    wait_for 60 "the node to be idle" bash -c "sinfo -h -N -o %t | grep -qx idle"
    say "running: $(sinfo -h -o '%P %D %c %m %G %t' | tr '\n' ';')"
    echo "export SLURM_CONF=$state/slurm.conf"
}

link_config() { # the default configuration path, for processes that lose SLURM_CONF
    mkdir -p /etc/slurm
    for name in slurm.conf gres.conf; do
        if [[ -e /etc/slurm/$name && ! -L /etc/slurm/$name ]]; then
            say "/etc/slurm/$name is a real configuration; not replacing it"
            exit 1
        fi
        ln -sfn "$state/$name" "/etc/slurm/$name"
    done
}

unlink_config() {
    for name in slurm.conf gres.conf; do
        if [[ -L /etc/slurm/$name && $(readlink "/etc/slurm/$name") == "$state/$name" ]]; then
            rm "/etc/slurm/$name"
        fi
    done
}

stop_daemon() { # stop_daemon NAME: SIGTERM the PID it wrote, then wait for it to end
    local pid_file=$state/run/$1.pid pid
    [[ -f $pid_file ]] || return 0
    pid=$(cat "$pid_file")
    if kill -0 "$pid" 2> /dev/null; then
        kill "$pid"
        for ((i = 0; i < 60 && $(kill -0 "$pid" 2> /dev/null && echo 1 || echo 0); i++)); do sleep 0.5; done
        kill -0 "$pid" 2> /dev/null && kill -9 "$pid"
    fi
    rm -f "$pid_file"
}

stop() {
    export SLURM_CONF=$state/slurm.conf
    if [[ -f $state/run/slurmctld.pid ]]; then
        scancel --full --user=root > /dev/null 2>&1 || true
    fi
    for daemon in slurmd slurmctld slurmdbd mariadb munged; do
        stop_daemon "$daemon"
    done
    unlink_config
    say "stopped ($state)"
}

case $command in
    start) start ;;
    stop) stop ;;
    env) echo "export SLURM_CONF=$state/slurm.conf" ;;
    *)
        echo "usage: $0 start|stop|env [STATE]" >&2
        exit 2
        ;;
esac
