#!/usr/bin/env bash
# `just test-slurm`: a real single-node Slurm cluster from Debian's packages runs the
# job array that `weightbench slurm` writes for experiments/slurm-test.toml; its rows must
# equal those of a single-process run of the same grid (same cells, artifacts, top-1,
# no duplicates, none missing). Needs root; installs what it lacks; stops the daemons it
# started (by their pid files) whatever happens.
set -euo pipefail
WB="$1"          # the weightbench binary
DATA="$2"        # the data directory
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
EXP="$ROOT/experiments/slurm-test.toml"

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        slurmctld slurmd slurm-client munge >/dev/null
fi

D="$(mktemp -d /tmp/wb-slurm.XXXXXX)"
chmod 755 "$D"   # munged runs as the munge user
started=()
cleanup() {
    for p in "${started[@]}"; do
        [ -f "$p" ] && kill "$(cat "$p")" 2>/dev/null || true
    done
    sleep 1
}
trap cleanup EXIT

# munge: the key Debian's package made, a socket of our own.
mkdir -p "$D/munge"
chown munge: "$D/munge"
if [ ! -s /etc/munge/munge.key ]; then
    /usr/sbin/mungekey --create --force
    chown munge: /etc/munge/munge.key
fi
runuser -u munge -- /usr/sbin/munged --socket="$D/munge/munge.sock" \
    --pid-file="$D/munge/munged.pid" --log-file="$D/munge/munged.log" --seed-file="$D/munge/seed"
started+=("$D/munge/munged.pid")

host="$(hostname -s)"
cpus="$(nproc)"
mem_mb="$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))"
mkdir -p "$D/state" "$D/spool"
cat > "$D/slurm.conf" <<CONF
ClusterName=wbtest
SlurmctldHost=$host
AuthType=auth/munge
AuthInfo=socket=$D/munge/munge.sock
CryptoType=crypto/munge
SlurmUser=root
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
ReturnToService=2
MpiDefault=none
StateSaveLocation=$D/state
SlurmdSpoolDir=$D/spool
SlurmctldPidFile=$D/slurmctld.pid
SlurmdPidFile=$D/slurmd.pid
SlurmctldLogFile=$D/slurmctld.log
SlurmdLogFile=$D/slurmd.log
SlurmctldPort=26817
SlurmdPort=26818
NodeName=$host CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=wb Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF="$D/slurm.conf"
/usr/sbin/slurmctld -f "$SLURM_CONF"
started+=("$D/slurmctld.pid")
/usr/sbin/slurmd -f "$SLURM_CONF"
started+=("$D/slurmd.pid")
for _ in $(seq 60); do
    sinfo -h -o %t 2>/dev/null | grep -qE '^(idle|mix|alloc)' && break
    sleep 1
done
sinfo

# Submits the array (shards, or claims with --claim) into results folder $1 and waits.
submit_and_wait() {
    local r="$1"; shift
    local t0; t0=$(date +%s)
    "$WB" slurm "$EXP" --tasks 2 --threads 1 --mem 4G --time 01:00:00 \
        --data-dir "$DATA" --results-dir "$r" --reports-dir "$r-reports" --submit "$@"
    for _ in $(seq 1800); do
        [ -z "$(squeue -h 2>/dev/null)" ] && break
        sleep 2
    done
    [ -z "$(squeue -h)" ] || { echo "jobs still queued after an hour" >&2; squeue; exit 1; }
    echo "array ${*:-(shards)} and report finished in $(( $(date +%s) - t0 )) s"
    cat "$r"/slurm-test/slurm/*.out || true
}
submit_and_wait "$D/results"
submit_and_wait "$D/claimed" --claim

# The same grid in one process.
"$WB" run "$EXP" --data-dir "$DATA" --results-dir "$D/single" --no-report --quiet
"$WB" report slurm-test --results-dir "$D/single" --reports-dir "$D/single-reports" >/dev/null

# cell, candidate, artifact digest and top-1 of every row, from each report's CSV.
rows() {
    python3 -c '
import csv, sys
for r in csv.DictReader(open(sys.argv[1])):
    print(r["cell_id"], r["candidate"], r["index_coding"], r["artifact_sha256"], r["top1"])
' "$1" | sort
}
rows "$D/single-reports/slurm-test/slurm-test.csv" > "$D/single.rows"
for kind in results claimed; do
    rows "$D/$kind-reports/slurm-test/slurm-test.csv" > "$D/$kind.rows"
    n=$(wc -l < "$D/$kind.rows")
    [ "$n" -gt 0 ] || { echo "the array ($kind) wrote no rows" >&2; exit 1; }
    [ "$(cut -d' ' -f1-3 "$D/$kind.rows" | sort | uniq -d | wc -l)" -eq 0 ] || { echo "duplicate rows ($kind)" >&2; exit 1; }
    diff "$D/$kind.rows" "$D/single.rows" || { echo "the array's rows ($kind) differ from one process's" >&2; exit 1; }
done
echo "test-slurm: OK, $n rows from a 2-task Slurm array, by shards and by claims, equal one process's"
