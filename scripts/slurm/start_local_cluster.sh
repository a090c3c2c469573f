#!/usr/bin/env bash
# Starts a one-node Slurm cluster on this machine (CI and local tests of the Slurm paths), as root.
#   sudo bash scripts/slurm/start_local_cluster.sh
# Idempotent: installs Debian's slurm-wlm and munge if missing, writes /etc/slurm/slurm.conf (only
# if absent or written by this script: a real cluster's config is never touched), starts munged,
# slurmctld and slurmd unless they run, and waits until `sinfo` shows the node idle.
set -euo pipefail
[ "$(id -u)" = 0 ] || { echo "start_local_cluster.sh: run as root (it installs packages and starts daemons)" >&2; exit 1; }
marker="# written by faithfulness scripts/slurm/start_local_cluster.sh"
conf=/etc/slurm/slurm.conf

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
fi

# munge: every Slurm message is signed with this key (the package usually creates one)
if [ ! -s /etc/munge/munge.key ]; then
  mkdir -p /etc/munge
  dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
fi
mkdir -p /run/munge /var/lib/munge /var/log/munge
chown munge:munge /etc/munge /etc/munge/munge.key /run/munge /var/lib/munge /var/log/munge
chmod 700 /etc/munge && chmod 400 /etc/munge/munge.key
if ! pgrep -u munge -x munged >/dev/null; then
  runuser -u munge -- /usr/sbin/munged
fi

host=$(hostname -s)
cpus=$(nproc)
mem_mib=$(awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo)
real_mem=$((mem_mib - 512))  # slurmd drains a node whose configured memory exceeds what it finds
if [ -f "$conf" ] && ! grep -qF "$marker" "$conf"; then
  echo "start_local_cluster.sh: $conf exists and was not written by this script; leaving it alone" >&2
else
  mkdir -p /etc/slurm
  cat >"$conf.new" <<EOF
$marker
ClusterName=local
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
DefMemPerCPU=2048
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$real_mem State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
  if ! cmp -s "$conf.new" "$conf"; then
    mv "$conf.new" "$conf"
    # a running cluster must re-read a changed config
    pgrep -x slurmctld >/dev/null && scontrol reconfigure || true
  else
    rm "$conf.new"
  fi
fi
mkdir -p /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
pgrep -x slurmctld >/dev/null || /usr/sbin/slurmctld
pgrep -x slurmd >/dev/null || /usr/sbin/slurmd

for _ in $(seq 60); do
  state=$(sinfo -h -n "$host" -o %t 2>/dev/null || true)
  case "$state" in
    idle|mix|alloc) echo "slurm: node $host $state ($cpus CPUs, ${real_mem} MiB)"; exit 0;;
    down*|drain*) scontrol update nodename="$host" state=resume >/dev/null 2>&1 || true;;
  esac
  sleep 1
done
echo "start_local_cluster.sh: node $host not idle after 60 s (state: ${state:-none}); see /var/log/slurm/" >&2
exit 1
