#!/usr/bin/env bash
# A one-node SLURM cluster from Debian's packages (slurm-wlm, munge), for the test that runs
# deploy/slurm/*.sbatch through a real scheduler (tests/test_deploy.py) and for trying the
# scripts on a workstation. Needs root: the daemons run as root, without cgroups.
#
#   bash deploy/slurm/local_cluster.sh start    install if missing, write the config, start
#   bash deploy/slurm/local_cluster.sh stop     stop the daemons this script started
#
# It writes /etc/slurm/slurm.conf only when none exists or the one there is its own (first
# line below), so a real cluster's configuration is never touched.
set -euo pipefail
MARK="# written by warehouse-synth deploy/slurm/local_cluster.sh"
CONF=/etc/slurm/slurm.conf
RUN=/run/warehouse-synth-slurm
cd "$(dirname "$0")/../.."

stop() {
  for d in slurmd slurmctld munged; do
    if [ -f "$RUN/$d.pid" ]; then
      kill "$(cat "$RUN/$d.pid")" 2>/dev/null || true
      rm -f "$RUN/$d.pid"
    fi
  done
}

start() {
  [ "$(id -u)" -eq 0 ] || { echo "error: local_cluster.sh start needs root (the daemons run as root)" >&2; exit 1; }
  bash scripts/system_deps.sh slurm-wlm munge
  if [ -f "$CONF" ] && ! head -1 "$CONF" | grep -qF "$MARK"; then
    echo "error: $CONF exists and was not written by this script; use that cluster instead" >&2
    exit 1
  fi
  mkdir -p "$RUN" /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /run/munge /var/lib/munge /var/log/munge
  [ -s /etc/munge/munge.key ] || { mungekey --create --force 2>/dev/null || dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none; }
  chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge 2>/dev/null || true
  chmod 0400 /etc/munge/munge.key
  host=$(hostname -s)
  # the node line as slurmd sees this machine (CPUs, memory), so the node registers cleanly
  node=$(slurmd -C | head -1)
  cat > "$CONF" <<EOF
$MARK
ClusterName=warehouse-synth-local
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
ReturnToService=2
$node State=UNKNOWN
PartitionName=local Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
EOF
  stop  # a restart replaces daemons left by an earlier start
  # -f: containers often leave /var/log owned by another user, which munged otherwise refuses
  munged -f --pid-file "$RUN/munged.pid"
  for _ in $(seq 50); do munge -n </dev/null >/dev/null 2>&1 && break; sleep 0.1; done
  slurmctld -i   # -i: ignore saved state from an earlier start
  slurmd
  for _ in $(seq 100); do
    state=$(sinfo -h -N -o %T 2>/dev/null | head -1 || true)
    case "$state" in idle*|mixed*|allocated*) echo "slurm: node $host $state"; return 0;; esac
    sleep 0.2
  done
  echo "error: slurm node did not come up (state '${state:-none}'); see /var/log/slurm/" >&2
  exit 1
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
