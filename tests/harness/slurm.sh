#!/usr/bin/env bash
# slurm.sh start|stop - a real single-node SLURM (Debian 12: slurm-wlm 22.05 + munge)
# on 127.0.0.1, for tests/cluster. Needs root and the packages slurmctld slurmd
# slurm-client munge. Everything lives under $BASE; nothing in /etc is touched.
#   partitions: cpu (default) and gpu, both on the one node `localhost`: $(nproc) CPUs,
#   and a fake FAKE_GPUS GPUs and MEM_MB of memory, as much as the profile's jobs ask
#   for, not what the machine has (task/none enforces neither). The GPUs are GRES
#   backed by /dev/null clones: Slurm 22.05 drops file-less GPUs.
# Clients need `source $BASE/env.sh` (SLURM_CONF, and an srun wrapper first on PATH).
# No accounting (no slurmdbd): sacct does not work, so clients query with squeue.
set -euo pipefail
BASE=${BASE:?set BASE to a scratch folder}
FAKE_GPUS=${FAKE_GPUS:-2}
MEM_MB=${MEM_MB:-65536}
CPUS=$(nproc)
ETC=$BASE/etc RUN=$BASE/run LOG=$BASE/log BIN=$BASE/bin
export SLURM_CONF=$ETC/slurm.conf PATH=$BIN:$PATH
say() { echo "[slurm.sh] $*" >&2; }
die() { say "ERROR: $*"; exit 1; }
# wait_for SECONDS CMD...: poll every 0.25 s
wait_for() {
  local n=$(($1 * 4)); shift
  for _ in $(seq "$n"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.25; done
  return 1
}

write_configs() {
  mkdir -p "$ETC" "$RUN"/{state,spool,munge,dev} "$LOG" "$BIN"
  chmod 755 "$RUN/munge"  # munged wants its socket folder a+x
  cat >"$ETC/slurm.conf" <<EOF
ClusterName=deepfm-ci
SlurmctldHost=localhost(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$RUN/munge/munge.socket.2
# listen on what the hostname resolves to (loopback here), never on 0.0.0.0
CommunicationParameters=NoCtldInAddrAny,NoInAddrAny
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=$RUN/state
SlurmdSpoolDir=$RUN/spool
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=$LOG/slurmctld.log
SlurmdLogFile=$LOG/slurmd.log
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
DefMemPerCPU=500
SchedulerType=sched/backfill
SchedulerParameters=bf_interval=2
ReturnToService=2
KillWait=5
SlurmdParameters=config_overrides
# finished jobs stay visible to squeue/scontrol this long (the tests read them)
MinJobAge=900
GresTypes=gpu
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM_MB Gres=gpu:$FAKE_GPUS State=UNKNOWN
PartitionName=cpu Nodes=localhost Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=localhost MaxTime=INFINITE State=UP
EOF
  local last=$((FAKE_GPUS - 1))
  for i in $(seq 0 "$last"); do
    [ -e "$RUN/dev/nvidia$i" ] || mknod "$RUN/dev/nvidia$i" c 1 3
  done
  cat >"$ETC/gres.conf" <<EOF
AutoDetect=off
NodeName=localhost Name=gpu File=$RUN/dev/nvidia[0-$last]
EOF
  # The plugin's jobstep clears every SLURM_* variable (SLURM_CONF too) before its
  # inner srun; with a config outside /etc/slurm, this wrapper puts it back.
  cat >"$BIN/srun" <<EOF
#!/bin/sh
export SLURM_CONF=$ETC/slurm.conf
exec /usr/bin/srun "\$@"
EOF
  chmod +x "$BIN/srun"
  # shellcheck disable=SC2016  # $PATH expands when env.sh is sourced
  printf 'export SLURM_CONF=%s\nexport PATH=%s:$PATH\n' "$ETC/slurm.conf" "$BIN" >"$BASE/env.sh"
}

start() {
  [ "$(id -u)" = 0 ] || die "must run as root"
  getent ahostsv4 "$(hostname)" | grep -q '^127\.' \
    || die "hostname $(hostname) must resolve to 127.x (the daemons bind to it)"
  for port in 6817 6818; do
    if ss -ltnH "sport = :$port" | grep -q .; then die "port $port is in use"; fi
  done
  rm -rf "$RUN/state" "$RUN/spool"  # no stale jobs or DRAIN reasons
  write_configs
  [ -f "$RUN/munge/munge.key" ] || mungekey --create --keyfile="$RUN/munge/munge.key"
  munged --socket="$RUN/munge/munge.socket.2" --key-file="$RUN/munge/munge.key" \
    --pid-file="$RUN/munge/munged.pid" --log-file="$LOG/munged.log" \
    --seed-file="$RUN/munge/munged.seed" </dev/null
  wait_for 10 sh -c "munge -S $RUN/munge/munge.socket.2 -n | unmunge -S $RUN/munge/munge.socket.2" \
    || die "munged does not answer"
  slurmctld -f "$SLURM_CONF" </dev/null
  wait_for 30 sh -c 'scontrol ping | grep -q UP' || die "slurmctld is down (see $LOG/slurmctld.log)"
  slurmd -f "$SLURM_CONF" -N localhost </dev/null
  # shellcheck disable=SC2016  # the inner sh expands it
  wait_for 60 sh -c '[ "$(sinfo -h -n localhost -o %t | sort -u)" = idle ]' \
    || { sinfo -R >&2; die "the node is not idle (see $LOG/slurmd.log)"; }
  timeout 60 srun -p gpu --gpus=1 -t 1 -n1 true || die "srun smoke test (1 GPU) failed"
  if ss -ltnpH | grep -E 'slurm|munge' | awk '{print $4}' | grep -v '^127\.'; then
    die "a daemon listens on a non-loopback address"
  fi
  say "up: $(sinfo -h -o '%P %t %c CPUs %m MB %G' | tr '\n' ' ')"
}

stop() {
  local f pid
  if [ -f "$RUN/slurmctld.pid" ] && kill -0 "$(cat "$RUN/slurmctld.pid")" 2>/dev/null; then
    scancel --quiet --user=root 2>/dev/null || true
  fi
  for f in slurmd.pid slurmctld.pid munge/munged.pid; do
    [ -f "$RUN/$f" ] || continue
    pid=$(cat "$RUN/$f")
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid"
      wait_for 30 sh -c "! kill -0 $pid" || { say "pid $pid ignored SIGTERM"; kill -9 "$pid" || true; }
    fi
    rm -f "$RUN/$f"
  done
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: BASE=DIR $0 start|stop" >&2; exit 2 ;;
esac
