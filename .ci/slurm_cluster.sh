#!/usr/bin/env bash
# A throwaway single-node SLURM cluster with accounting, for tests/test_slurm.py (and by hand).
#
#   .ci/slurm_cluster.sh install       Debian packages, if missing (apt-get; root)
#   .ci/slurm_cluster.sh start DIR     install, write every config into DIR, start munged, mariadbd,
#                                      slurmdbd, slurmctld and slurmd; wait until the node is idle
#   .ci/slurm_cluster.sh stop DIR      stop exactly the daemons `start DIR` started (DIR/pids)
#
# After `start`, `export SLURM_CONF=DIR/slurm.conf` (also linked from /etc/slurm/slurm.conf: the
# jobstep plugin strips SLURM_* variables before the srun inside each job). Everything else the
# cluster writes (state, spool, logs, database, munge key and socket) stays inside DIR.
#
# The node is a fake one, sized by the environment, so that a cluster profile's real requests fit
# (slurmd trusts the configured sizes: SlurmdParameters=config_overrides):
#   SLURM_TEST_PARTITIONS  partitions, all on the one node; the first is the default  [debug]
#   SLURM_TEST_CPUS        CPUs of the node                                            [16]
#   SLURM_TEST_MEM_MB      memory of the node (MB)                                     [65536]
#   SLURM_TEST_GPUS        GPUs of the node, 0 or 1: a GRES gpu on /dev/null (no device) [1]
#   SLURM_TEST_CLUSTER     cluster name in the accounting database                     [rddtest]
# Tested with Debian 12's SLURM 22.05 and MariaDB 10.11, as root, without systemd.
set -euo pipefail

PACKAGES=(munge slurmctld slurmd slurm-client slurmdbd mariadb-server mariadb-client)

die() { echo "slurm_cluster: $*" >&2; exit 1; }

install_packages() {
    local missing=() pkg
    for pkg in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    [ "$(id -u)" -eq 0 ] || die "not root: cannot install ${missing[*]}"
    echo "slurm_cluster: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    # the package scripts must not start the services: we start our own daemons
    local policy=/usr/sbin/policy-rc.d added_policy=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && added_policy=1
    fi
    local rc=0
    { apt-get -y -qq install --no-install-recommends "${missing[@]}" >/dev/null 2>&1 \
        || { apt-get -qq update >/dev/null 2>&1 \
             && apt-get -y -qq install --no-install-recommends "${missing[@]}" >/dev/null; }; } || rc=$?
    [ "$added_policy" -eq 1 ] && rm -f "$policy"
    [ "$rc" -eq 0 ] || die "apt-get install ${missing[*]} failed"
}

free_port() {  # a TCP port nothing listens on, from a range the kernel does not hand out
    local port
    for _ in $(seq 200); do
        port=$((20000 + RANDOM % 12000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then echo "$port"; return; fi
    done
    die "no free port found"
}

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...: poll COMMAND until it succeeds
    local seconds=$1 what=$2; shift 2
    local deadline=$((SECONDS + seconds))
    until "$@" >/dev/null 2>&1; do
        [ $SECONDS -lt $deadline ] || die "$what not ready after ${seconds}s (logs in $DIR/log)"
        local name pid
        while read -r name pid; do
            alive "$pid" "$name" || die "$name exited: $(tail -n 5 "$DIR/log/$name.out" "$DIR/log/$name.log" 2>/dev/null)"
        done <"$DIR/pids"
        sleep 0.2
    done
}

spawn() {  # spawn NAME COMMAND...: start a daemon in the foreground mode, in the background
    local name=$1; shift
    "$@" </dev/null >>"$DIR/log/$name.out" 2>&1 &
    echo "$name $!" >>"$DIR/pids"
}

node_idle() { sinfo -h -N -o %T | grep -qx idle; }

start() {
    [ "$(id -u)" -eq 0 ] || die "must run as root"
    install_packages
    [ ! -e "$DIR/pids" ] || die "$DIR/pids exists: stop that cluster first"
    local etc_conf=/etc/slurm/slurm.conf
    if [ -L "$etc_conf" ] && ! cluster_alive "$(dirname "$(readlink "$etc_conf")")"; then
        rm -f "$etc_conf"  # left by a killed run of this script: none of its daemons is running
    fi
    [ ! -e "$etc_conf" ] && [ ! -L "$etc_conf" ] \
        || die "$etc_conf exists (a real SLURM, or a test cluster still running): not touching it"
    mkdir -p "$DIR"/{log,state,spool,munge/etc,munge/lib,munge/run,mysql}
    DIR=$(cd "$DIR" && pwd)
    : >"$DIR/pids"
    # whatever fails from here on (set -e, die), stop the daemons already started
    trap 'rc=$?; if [ $rc -ne 0 ]; then echo "slurm_cluster: start failed, stopping what started" >&2; stop; fi' EXIT

    local cluster=${SLURM_TEST_CLUSTER:-rddtest}
    local cpus=${SLURM_TEST_CPUS:-16} mem=${SLURM_TEST_MEM_MB:-65536} gpus=${SLURM_TEST_GPUS:-1}
    read -r -a partitions <<<"${SLURM_TEST_PARTITIONS:-debug}"
    local ctld_port dbd_port db_port slurmd_port
    ctld_port=$(free_port); slurmd_port=$(free_port); dbd_port=$(free_port); db_port=$(free_port)
    local munge_socket=$DIR/munge/run/munge.socket
    local db_pass=slurm_test_$RANDOM$RANDOM

    # munge: key folder 0700, socket folder 0755, both different
    chmod 0700 "$DIR/munge/etc" "$DIR/munge/lib"
    chmod 0755 "$DIR/munge" "$DIR/munge/run"
    dd if=/dev/urandom of="$DIR/munge/etc/munge.key" bs=1024 count=1 status=none
    chmod 0400 "$DIR/munge/etc/munge.key"
    spawn munged munged --foreground --force --socket="$munge_socket" \
        --key-file="$DIR/munge/etc/munge.key" --log-file="$DIR/log/munged.log" \
        --pid-file="$DIR/munge/run/munged.pid" --seed-file="$DIR/munge/lib/munged.seed"
    wait_for 20 munged bash -c "munge -n -S '$munge_socket' | unmunge -S '$munge_socket'"

    # MariaDB for slurmdbd: own data folder, socket and port, TCP on 127.0.0.1 only
    mariadb-install-db --no-defaults --datadir="$DIR/mysql" --user=root --skip-test-db \
        --auth-root-authentication-method=socket >"$DIR/log/mariadb-install-db.log" 2>&1
    spawn mariadbd mariadbd --no-defaults --datadir="$DIR/mysql" --user=root \
        --socket="$DIR/mysql.sock" --port="$db_port" --bind-address=127.0.0.1 --skip-name-resolve \
        --pid-file="$DIR/mysqld.pid" --log-error="$DIR/log/mariadbd.log" \
        --innodb-buffer-pool-size=64M --innodb-log-file-size=16M --skip-log-bin
    wait_for 60 mariadbd mariadb-admin --no-defaults -S "$DIR/mysql.sock" -u root ping
    mariadb --no-defaults -S "$DIR/mysql.sock" -u root <<SQL
CREATE USER 'slurm'@'127.0.0.1' IDENTIFIED BY '$db_pass';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
SQL

    cat >"$DIR/slurmdbd.conf" <<EOF
AuthType=auth/munge
AuthInfo=socket=$munge_socket
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=$dbd_port
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$db_port
StorageUser=slurm
StoragePass=$db_pass
StorageLoc=slurm_acct_db
PidFile=$DIR/slurmdbd.pid
LogFile=$DIR/log/slurmdbd.log
EOF
    chmod 0600 "$DIR/slurmdbd.conf"

    local gres_node="" gres_types=""
    if [ "$gpus" -gt 0 ]; then
        gres_node=" Gres=gpu:$gpus"
        gres_types="GresTypes=gpu"
        # a GPU the scheduler counts, with no device behind it: slurmd drops a gpu GRES without a
        # File, and a File is one device, hence at most one fake GPU
        [ "$gpus" -eq 1 ] || die "SLURM_TEST_GPUS must be 0 or 1"
        echo "NodeName=localhost Name=gpu File=/dev/null" >"$DIR/gres.conf"
    fi
    {
        cat <<EOF
ClusterName=$cluster
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$munge_socket
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SlurmdParameters=config_overrides
ReturnToService=2
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
MinJobAge=600
SchedulerType=sched/backfill
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=5
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=$dbd_port
AccountingStoragePass=$munge_socket
AccountingStorageTRES=gres/gpu
AccountingStoreFlags=job_comment
JobCompType=jobcomp/none
$gres_types
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem$gres_node State=UNKNOWN
EOF
        local default=YES p
        for p in "${partitions[@]}"; do
            echo "PartitionName=$p Nodes=localhost Default=$default MaxTime=INFINITE State=UP"
            default=NO
        done
    } >"$DIR/slurm.conf"
    export SLURM_CONF=$DIR/slurm.conf
    ln -s "$DIR/slurm.conf" "$etc_conf"

    spawn slurmdbd slurmdbd -D  # reads slurmdbd.conf beside $SLURM_CONF
    wait_for 60 slurmdbd sacctmgr -n list cluster
    sacctmgr -i add cluster "$cluster" >/dev/null
    spawn slurmctld slurmctld -D -f "$DIR/slurm.conf"
    wait_for 30 slurmctld scontrol ping
    spawn slurmd slurmd -D -N localhost -f "$DIR/slurm.conf"
    wait_for 60 "node localhost (slurmd)" node_idle
    trap - EXIT
    echo "slurm_cluster: up in $DIR (cluster $cluster, partitions ${partitions[*]}, CPUs=$cpus," \
         "RealMemory=$mem, gpu=$gpus); export SLURM_CONF=$DIR/slurm.conf" >&2
}

alive() {  # alive PID NAME: the daemon we started still runs (not a reused PID, not a zombie)
    local stat
    [ "$(cat "/proc/$1/comm" 2>/dev/null)" = "$2" ] || return 1
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }           # fields after "pid (comm) ": the state comes first
    [ "${stat%% *}" != Z ] && [ "${stat%% *}" != X ]
}

cluster_alive() {  # cluster_alive DIR: one of the daemons `start DIR` recorded still runs
    local name pid
    [ -f "$1/pids" ] || return 1
    while read -r name pid; do
        alive "$pid" "$name" && return 0
    done <"$1/pids"
    return 1
}

stop() {
    local pids=$DIR/pids
    export SLURM_CONF=$DIR/slurm.conf
    if [ -f "$pids" ] && [ -f "$SLURM_CONF" ] && scontrol ping >/dev/null 2>&1; then
        # jobs still queued or running (a run killed by a timeout): cancel them, so that no
        # slurmstepd or job process outlives the cluster; every job here is ours
        local jobs
        jobs=$(squeue -h -o %i 2>/dev/null || true)
        if [ -n "$jobs" ]; then
            # shellcheck disable=SC2086
            scancel $jobs 2>/dev/null || true
            for _ in $(seq 100); do [ -z "$(squeue -h -o %i 2>/dev/null)" ] && break; sleep 0.2; done
        fi
    fi
    if [ -f "$pids" ]; then
        local lines=() i name pid
        mapfile -t lines <"$pids"
        for ((i = ${#lines[@]} - 1; i >= 0; i--)); do   # reverse start order
            read -r name pid <<<"${lines[i]}"
            alive "$pid" "$name" || continue
            kill -TERM "$pid" 2>/dev/null || true
            for _ in $(seq 100); do alive "$pid" "$name" || break; sleep 0.1; done
            if alive "$pid" "$name"; then
                echo "slurm_cluster: $name ($pid) ignored SIGTERM, killing it" >&2
                kill -KILL "$pid" 2>/dev/null || true
            fi
        done
        mv "$pids" "$pids.stopped"
    fi
    local etc_conf=/etc/slurm/slurm.conf
    if [ -L "$etc_conf" ] && [ "$(readlink "$etc_conf")" = "$DIR/slurm.conf" ]; then
        rm -f "$etc_conf"
    fi
}

case "${1:-}" in
    install) install_packages ;;
    start|stop)
        [ $# -eq 2 ] || die "usage: $0 start|stop DIR"
        DIR=$2
        [ "$1" = start ] || { [ -d "$DIR" ] && DIR=$(cd "$DIR" && pwd); }
        "$1" ;;
    *) die "usage: $0 install | start DIR | stop DIR" ;;
esac
