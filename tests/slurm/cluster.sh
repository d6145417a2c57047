#!/usr/bin/env bash
# A small real Slurm cluster on this one host, for the integration tests of
# the Slurm executor (they run their trials through real srun/sbatch/scancel;
# when no cluster answers, those tests skip with a note instead of failing).
#
#   bash tests/slurm/cluster.sh up       # install if missing, start, wait for idle nodes
#   bash tests/slurm/cluster.sh status   # print sinfo; exit 0 if up, 1 if not
#   bash tests/slurm/cluster.sh down     # stop slurmd's and slurmctld (munge keeps running)
#
# Cluster: two emulated nodes n1, n2 (both are this host, told apart by
# SLURMD_NODENAME), 4 CPUs, 4000 MB and 2 fake GPUs (4 shards each) each, configured as a
# production site is: memory is a consumable resource (CR_Core_Memory, 500 MB
# per CPU by default), and the default partition "debug" is pre-emptible
# (REQUEUE, after a GraceTime of 6 s) by jobs of partition "high"; jobs of
# partition "cancel" are cancelled instead (CANCEL, same GraceTime), and
# jobs of partition "now" are requeued at once (no GraceTime).
# State, spool, logs and pid files live in $SLURM_CLUSTER_DIR (default
# /tmp/anisostudy-slurm); slurm.conf and gres.conf go to /etc/slurm, where
# the client commands look, and are marked as ours on their first line (a
# slurm.conf this script did not write is never overwritten). `down` and
# `status` find the daemons through the pid files that config names, so they
# need no SLURM_CLUSTER_DIR.
#
# Facts that matter (see also shared/SLURM.md):
# - No systemd: the daemons are started by hand and stopped by the pid files
#   the config names, never by process name.
# - No cgroups: ProctrackType=proctrack/linuxproc, TaskPlugin=task/none.
#   Nothing enforces CPU or GPU limits, and a process that detaches with
#   setsid outlives its job. Memory is enforced by the accounting poll
#   (jobacct_gather/linux every second, OverMemoryKill): a job over its
#   --mem is killed, FAILED, with "Exceeded job memory limit" in its log.
# - Fake GPUs: the gres files are symlinks to /dev/null. Slurm still hands
#   them out one per step and sets CUDA_VISIBLE_DEVICES (0, 1, or 0,1).
# - GPU sharding: each fake GPU has SHARDS_PER_GPU shards (gres/shard), so
#   jobs asking for --gres=shard:N share a GPU.
# - A job's allocation gets 1 CPU per node unless it asks for more
#   (--ntasks-per-node, -c, --exclusive); concurrent steps inside it wait
#   for free CPUs and GPUs ("step creation temporarily disabled").
# - A requeued job (scontrol requeue ID, or pre-emption) is held PENDING
#   with Reason=BeginTime for ~120 s unless released with
#   `scontrol update jobid=ID StartTime=now`.
# - No accounting (no slurmdbd, no sacct): `scontrol show job ID` keeps a
#   finished job's JobState and ExitCode for MinJobAge=600 s.
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin"

DIR="${SLURM_CLUSTER_DIR:-/tmp/anisostudy-slurm}"
ETC=/etc/slurm
CONF="$ETC/slurm.conf"
GRES="$ETC/gres.conf"
MARK="# written by tests/slurm/cluster.sh"
NODES=(n1 n2)
GPUS_PER_NODE=2
CPUS_PER_NODE=4
SHARDS_PER_GPU=4
PARTITION=debug
DEF_MEM_PER_CPU=500
GRACE_TIME=6

say() { echo "cluster.sh: $*"; }
die() { echo "cluster.sh: error: $*" >&2; exit 1; }
now() { date +%s.%N; }

# Is this file absent, or one this script wrote?
ours_or_absent() { [[ ! -e "$1" ]] || [[ "$(head -n1 "$1")" == "$MARK"* ]]; }

# A value from our slurm.conf, e.g. conf_value SlurmctldPidFile.
conf_value() { sed -n "s/^$1=//p" "$CONF" | head -n1; }

# "n1 idle" lines, one per node; empty when the controller does not answer.
node_states() { timeout 10 sinfo -h -N -o '%N %t' 2>/dev/null | sort -u || true; }

# True when every node is in one of the given states (a regex).
nodes_in() {
    local states n
    states="$(node_states)"
    for n in "${NODES[@]}"; do
        grep -Eq "^$n ($1)\$" <<<"$states" || return 1
    done
}

install_if_missing() {
    local missing=0 c
    for c in slurmctld slurmd srun munged; do
        command -v "$c" >/dev/null || missing=1
    done
    if ((missing)); then
        say "installing Slurm and munge from Debian packages"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -q
        apt-get install -y -q --no-install-recommends slurmctld slurmd slurm-client munge
    fi
}

start_munge() {
    if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
        return
    fi
    if [[ ! -s /etc/munge/munge.key ]]; then
        mungekey --create --keyfile=/etc/munge/munge.key
        chown munge:munge /etc/munge/munge.key
        chmod 0400 /etc/munge/munge.key
    fi
    install -d -o munge -g munge -m 0755 /run/munge
    runuser -u munge -- /usr/sbin/munged
    for _ in $(seq 50); do
        munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && return
        sleep 0.1
    done
    die "munged does not answer (see /var/log/munge/munged.log)"
}

# Writes the cluster's slurm.conf and gres.conf to $1 and $2.
write_config() {
    local host n i conf="$1" gres="$2"
    host="$(hostname -s)"
    mkdir -p "$DIR/state" "$DIR/dev" "$ETC"
    for n in "${NODES[@]}"; do mkdir -p "$DIR/spool/$n"; done
    for ((i = 0; i < GPUS_PER_NODE; i++)); do
        ln -sfn /dev/null "$DIR/dev/nvidia$i"
    done
    cat >"$conf" <<EOF
$MARK (cluster dir $DIR)
ClusterName=anisostudy
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool/%n
SlurmctldLogFile=$DIR/slurmctld.log
SlurmdLogFile=$DIR/slurmd-%n.log
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd-%n.pid
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=$DEF_MEM_PER_CPU
PreemptType=preempt/partition_prio
PreemptMode=REQUEUE
SchedulerParameters=batch_sched_delay=0
MpiDefault=none
ReturnToService=2
InactiveLimit=15
KillWait=5
MinJobAge=600
JobRequeue=1
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=task=1
JobAcctGatherParams=OverMemoryKill
SlurmdParameters=config_overrides
GresTypes=gpu,shard
NodeName=n[1-2] NodeHostname=$host NodeAddr=127.0.0.1 Port=[17001-17002] CPUs=$CPUS_PER_NODE RealMemory=4000 Gres=gpu:$GPUS_PER_NODE,shard:$((GPUS_PER_NODE * SHARDS_PER_GPU)) State=UNKNOWN
PartitionName=$PARTITION Nodes=n[1-2] Default=YES MaxTime=INFINITE State=UP PriorityTier=1 GraceTime=$GRACE_TIME
PartitionName=cancel Nodes=n[1-2] MaxTime=INFINITE State=UP PriorityTier=1 PreemptMode=CANCEL GraceTime=$GRACE_TIME
PartitionName=now Nodes=n[1-2] MaxTime=INFINITE State=UP PriorityTier=1 GraceTime=0
PartitionName=high Nodes=n[1-2] MaxTime=INFINITE State=UP PriorityTier=10 PreemptMode=OFF
EOF
    cat >"$gres" <<EOF
$MARK
NodeName=n[1-2] Name=gpu File=$DIR/dev/nvidia[0-$((GPUS_PER_NODE - 1))]
EOF
    # Each GPU's shards name its device file: a job's shards are all on one GPU.
    for ((i = 0; i < GPUS_PER_NODE; i++)); do
        echo "NodeName=n[1-2] Name=shard Count=$SHARDS_PER_GPU File=$DIR/dev/nvidia$i" >>"$gres"
    done
}

# "prog pidfile" of each of our daemons, read from our slurm.conf (%n expanded).
pid_files() {
    [[ -e "$CONF" ]] || return 0
    local d n
    d="$(conf_value SlurmdPidFile)"
    for n in "${NODES[@]}"; do echo "slurmd ${d//%n/$n}"; done
    echo "slurmctld $(conf_value SlurmctldPidFile)"
}

# The pid in that pid file, if it is still that program (not a zombie, not a
# recycled pid); nothing otherwise.
live_pid() {
    local prog="$1" file="$2" pid
    [[ -s "$file" ]] || return 0
    pid="$(cat "$file")"
    [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == "$prog" ]] || return 0
    [[ "$(awk '{ print $3 }' "/proc/$pid/stat" 2>/dev/null)" != Z ]] || return 0
    echo "$pid"
}

ctld_alive() { [[ -e "$CONF" ]] && [[ -n "$(live_pid slurmctld "$(conf_value SlurmctldPidFile)")" ]]; }

# True when slurmctld and every slurmd our config names are running.
all_alive() {
    local prog file
    [[ -e "$CONF" ]] || return 1
    while read -r prog file; do
        [[ -n "$(live_pid "$prog" "$file")" ]] || return 1
    done < <(pid_files)
}

# SIGTERM to every daemon our config names, wait up to 10 s, then SIGKILL.
stop_daemons() {
    local prog file pid left p
    local -a pids=()
    while read -r prog file; do
        pid="$(live_pid "$prog" "$file")"
        [[ -n "$pid" ]] && { kill -TERM "$pid" 2>/dev/null || true; pids+=("$prog $pid $file"); }
    done < <(pid_files)
    for _ in $(seq 100); do
        left=0
        for p in "${pids[@]}"; do
            read -r prog pid file <<<"$p"
            [[ -n "$(live_pid "$prog" "$file")" ]] && left=1
        done
        ((left)) || break
        sleep 0.1
    done
    for p in "${pids[@]}"; do
        read -r prog pid file <<<"$p"
        if [[ -n "$(live_pid "$prog" "$file")" ]]; then
            say "$prog (pid $pid) ignored SIGTERM for 10 s, sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        rm -f "$file"
    done
}

cmd_down() {
    if [[ ! -e "$CONF" ]]; then
        say "no $CONF: nothing to stop"
        return 0
    fi
    ours_or_absent "$CONF" || die "$CONF was not written by this script; not touching that cluster"
    # Cancel what is still queued or running, so no step outlives the cluster.
    if ctld_alive; then
        local jobs
        jobs="$(timeout 10 squeue -h -o %i 2>/dev/null || true)"
        if [[ -n "$jobs" ]]; then
            say "cancelling jobs: $(echo $jobs)"
            # shellcheck disable=SC2086
            scancel $jobs 2>/dev/null || true
            for _ in $(seq 100); do
                [[ -z "$(timeout 10 squeue -h -o %i 2>/dev/null)" ]] && break
                sleep 0.1
            done
        fi
    fi
    stop_daemons
    say "down (munge left running)"
}

print_logs() {
    local f
    for f in "$DIR/slurmctld.log" "$DIR"/slurmd-*.log; do
        [[ -e "$f" ]] || continue
        echo "---- tail of $f" >&2
        tail -n 25 "$f" >&2
    done
}

elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

cmd_up() {
    ours_or_absent "$CONF" || die "$CONF exists and was not written by this script; refusing to overwrite it (move it away, or use that cluster)"
    ours_or_absent "$GRES" || die "$GRES exists and was not written by this script; refusing to overwrite it"
    install_if_missing
    start_munge
    mkdir -p "$DIR"
    write_config "$DIR/slurm.conf.want" "$DIR/gres.conf.want"
    if all_alive && nodes_in 'idle|mix|alloc' && cmp -s "$CONF" "$DIR/slurm.conf.want" \
        && cmp -s "$GRES" "$DIR/gres.conf.want"; then
        say "already up: $(node_states | paste -sd ' ' | sed 's/ \(n[0-9]\)/, \1/g'); config $CONF, files in $(dirname "$(conf_value SlurmctldPidFile)")"
        return 0
    fi
    local t0 n
    t0="$(now)"
    stop_daemons   # whatever half of an earlier cluster still runs, or one of another config
    mv "$DIR/slurm.conf.want" "$CONF"
    mv "$DIR/gres.conf.want" "$GRES"
    slurmctld -c || { print_logs; die "slurmctld did not start"; }
    for n in "${NODES[@]}"; do
        slurmd -N "$n" || { print_logs; die "slurmd -N $n did not start"; }
    done
    while awk -v e="$(elapsed "$t0")" 'BEGIN { exit !(e < 20) }'; do
        if awk -v e="$(elapsed "$t0")" 'BEGIN { exit !(e > 2) }' && ! all_alive; then
            print_logs
            die "a Slurm daemon exited while the cluster came up (logs above)"
        fi
        if nodes_in idle; then
            say "up in $(elapsed "$t0") s: nodes ${NODES[*]} ($CPUS_PER_NODE CPUs," \
                "$GPUS_PER_NODE fake GPUs of $SHARDS_PER_GPU shards each), partition $PARTITION; config $CONF, files in $DIR"
            return 0
        fi
        sleep 0.1
    done
    echo "sinfo:" >&2
    timeout 10 sinfo -N -l >&2 || true
    print_logs
    die "the nodes did not become idle within 20 s"
}

cmd_status() {
    if ! ours_or_absent "$CONF"; then   # someone else's cluster: just ask it
        timeout 10 sinfo
        return
    fi
    if ! ctld_alive; then
        say "not running (no live slurmctld from our $CONF)"
        return 1
    fi
    timeout 10 sinfo 2>&1 || true
    all_alive && nodes_in 'idle|mix|alloc'
}

case "${1:-}" in
    up) cmd_up ;;
    down) cmd_down ;;
    status) cmd_status ;;
    *) echo "usage: bash $0 up|down|status" >&2; exit 2 ;;
esac
