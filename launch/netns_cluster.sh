#!/usr/bin/env bash
# A cluster of H "hosts" on this machine, for multi-host runs without a cluster: each host is a
# network namespace with its own address on a bridge (which lives in a namespace of its own, so
# the machine's network is untouched), its own hostname (UTS namespace), its own /etc/hosts and
# its own private scratch directory (mount namespace: same path, other contents on every host).
# Open MPI reaches the hosts through an agent that replaces ssh, a generated hostfile, and TCP
# on the bridge (shared memory within a host), all set as OMPI_MCA_* variables, so mpirun,
# launch/ddp_run.sh and launch/supervise.sh work unchanged. COMMAND runs on host h0, the head
# node, with
#   DDP_HOSTFILE      the hostfile ("h0 slots=S", ...), also Open MPI's default one
#   DDP_MPIRUN_ARGS   --hostfile, and --allow-run-as-root as root
#   DDP_SCRATCH       the host-private scratch directory
#   DDP_CLUSTER       the prefix of the namespaces (ip netns exec $DDP_CLUSTER-h1 ... enters h1)
# Everything is torn down when COMMAND ends, fails or is interrupted. Needs root (CAP_NET_ADMIN);
# exits 77 when namespaces cannot be created here. --rate shapes each host's egress with tbf;
# --delay and --loss put ddp_link_relay (built with the project; $DDP_LINK_RELAY overrides)
# between each host's cable and its bridge port, so they need no netem; each relay prints its
# frames and drops when the cluster ends.
#   launch/netns_cluster.sh [--hosts H] [--slots S] [--rate 1gbit] [--delay 5ms] [--loss 1%] \
#       -- COMMAND [ARGS...]
# e.g. launch/netns_cluster.sh --hosts 2 --slots 2 -- \
#        launch/ddp_run.sh -n 4 --config configs/seed_example.yaml
set -euo pipefail
# The token bucket must hold what the rate sends in 10 ms (the kernel refills it once per timer
# tick, up to 10 ms apart), or it caps a fast link below its rate; at least 256 KB.
tbf_burst() {
  local number="${1%%[a-zA-Z]*}" unit="${1##*[0-9]}" bits
  [[ "$number" =~ ^[0-9]+$ ]] || unit="?"
  case "${unit,,}" in
    gbit) bits=$((number * 1000000000)) ;;
    mbit) bits=$((number * 1000000)) ;;
    kbit) bits=$((number * 1000)) ;;
    *) echo "netns_cluster: --rate $1: use kbit, mbit or gbit (whole numbers)" >&2; exit 2 ;;
  esac
  local bytes=$((bits / 8 / 100))
  echo $((bytes > 262144 ? bytes : 262144))
}

hosts=2
slots=1
rate=""
delay=""
loss=""
while (($#)); do
  case "$1" in
    --hosts) hosts="$2"; shift 2 ;;
    --slots) slots="$2"; shift 2 ;;
    --rate) rate="$2"; shift 2 ;;
    --delay) delay="$2"; shift 2 ;;
    --loss) loss="$2"; shift 2 ;;
    --) shift; break ;;
    *) echo "netns_cluster: unknown option $1 (see the header of $0)" >&2; exit 2 ;;
  esac
done
(($#)) || { echo "netns_cluster: no command given" >&2; exit 2; }
((hosts >= 1 && hosts <= 16)) || { echo "netns_cluster: --hosts must be 1-16" >&2; exit 2; }
burst=""
if [[ -n "$rate" ]]; then burst="$(tbf_burst "$rate")" || exit 2; fi
relay=""
if [[ -n "$delay$loss" ]]; then
  # $DDP_LINK_RELAY when set, else build/ddp_link_relay of this checkout, else one on the PATH.
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  relay="${DDP_LINK_RELAY:-$root/build/ddp_link_relay}"
  [[ -x "$relay" ]] || relay="$(command -v ddp_link_relay)" || {
    echo "netns_cluster: --delay/--loss need ddp_link_relay: DDP_LINK_RELAY=${DDP_LINK_RELAY:-(unset)}," \
         "$root/build/ddp_link_relay missing, none on the PATH (build it: cmake --build build)" >&2
    exit 2
  }
fi

# Short and unique: interface names have at most 15 characters.
prefix="ddpc$$"
net="10.$((200 + $$ % 50)).$((($$ / 50) % 250)).0"
subnet="${net%.0}"
state="/tmp/$prefix"
created=()
relays=()

cleanup() {
  local code=$?
  trap - EXIT INT TERM
  # The link relays first, politely: each reports its frames and drops as it ends.
  ((${#relays[@]})) && kill -TERM "${relays[@]}" 2>/dev/null
  for _ in $(seq 40); do
    local alive=0 pid
    for pid in "${relays[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    ((alive)) || break
    sleep 0.05
  done
  for ns in "${created[@]}"; do
    ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
  done
  for ns in "${created[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
  rm -rf "$state"
  exit "$code"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

add_namespace() {
  ip netns add "$1" || return 1
  created+=("$1")
  ip -n "$1" link set lo up
  ip netns exec "$1" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 2>/dev/null || true
}

# In a chroot / is no mount point: namespaces could be made (leaving a /run/netns mount behind)
# but not entered. Touch nothing there.
if ! awk '$5 == "/" { found = 1 } END { exit !found }' /proc/self/mountinfo ||
  ! add_namespace "$prefix-br" 2>/dev/null ||
  ! ip netns exec "$prefix-br" unshare --uts --mount --propagation private true 2>/dev/null; then
  echo "netns_cluster: cannot create and enter network namespaces here (needs root with" \
       "CAP_NET_ADMIN and / as a mount point, not a chroot)" >&2
  exit 77
fi
ip -n "$prefix-br" link add br0 type bridge
ip -n "$prefix-br" link set br0 up
mkdir -p "$state/scratch"
: >"$state/hostfile"
printf '127.0.0.1 localhost\n' >"$state/hosts"
for ((i = 0; i < hosts; i++)); do
  ns="$prefix-h$i"
  add_namespace "$ns"
  ip link add "${prefix}h$i" type veth peer name "${prefix}b$i"
  ip link set "${prefix}h$i" netns "$ns"
  ip link set "${prefix}b$i" netns "$prefix-br"
  ip -n "$ns" link set "${prefix}h$i" name eth0
  ip -n "$ns" addr add "$subnet.$((i + 1))/24" dev eth0
  ip -n "$ns" link set eth0 up
  # Shaping on the host's egress: every packet a host sends crosses one shaped link. The rate is
  # a token bucket (tbf) on the host's interface; delay and loss come from a relay between the
  # host's cable and its bridge port (ddp_link_relay: it works where the kernel has no netem).
  if [[ -n "$rate" ]]; then
    # A 10 ms queue, as a switch port's buffer: a deeper one delays the ACKs of traffic the
    # other way and so slows both directions.
    ip netns exec "$ns" tc qdisc add dev eth0 root tbf rate "$rate" burst "$burst" latency 10ms
  fi
  if [[ -z "$delay$loss" ]]; then
    ip -n "$prefix-br" link set "${prefix}b$i" master br0 up
  else
    # One frame, one packet: a dropped 64 KB offloaded segment would be 44 packets lost at once.
    [[ -n "$loss" ]] && ip -n "$ns" link set eth0 gso_max_segs 1
    ip -n "$prefix-br" link add "${prefix}r$i" type veth peer name "${prefix}p$i"
    ip -n "$prefix-br" link set "${prefix}p$i" master br0 up
    ip -n "$prefix-br" link set "${prefix}r$i" up
    ip -n "$prefix-br" link set "${prefix}b$i" up
    ip netns exec "$prefix-br" "$relay" --from "${prefix}b$i" --to "${prefix}r$i" \
      --delay "${delay:-0}" --loss "${loss:-0%}" --seed "$((i + 1))" \
      --ready-file "$state/relay$i.ready" </dev/null &
    relays+=("$!")
    disown  # ended by the teardown, without bash's report of a killed job
    for _ in $(seq 100); do
      [[ -e "$state/relay$i.ready" ]] || ! kill -0 "$!" 2>/dev/null && break
      sleep 0.05
    done
    [[ -e "$state/relay$i.ready" ]] || { echo "netns_cluster: the link relay of h$i did not start" >&2; exit 1; }
  fi
  echo "h$i slots=$slots" >>"$state/hostfile"
  echo "$subnet.$((i + 1)) h$i" >>"$state/hosts"
done

# Enters host $1 and runs the shell command $2 there, as ssh would: its own hostname, /etc/hosts
# and scratch tmpfs, in mount and UTS namespaces private to that host's processes.
cat >"$state/enter.sh" <<EOF
#!/bin/sh
host="\$1"
shift
exec ip netns exec "$prefix-\$host" unshare --uts --mount --propagation private sh -c '
  hostname "\$0" && mount --bind "$state/hosts" /etc/hosts &&
  mount -t tmpfs -o size=512m tmpfs "$state/scratch" && exec sh -c "\$1"' "\$host" "\$*"
EOF
chmod +x "$state/enter.sh"
# Open MPI's launcher agent: called like ssh, "agent HOST COMMAND...".
agent="$state/enter.sh"

export DDP_HOSTFILE="$state/hostfile"
export DDP_SCRATCH="$state/scratch"
export DDP_CLUSTER="$prefix"
# Open MPI's settings travel as OMPI_MCA_* variables, so plain mpirun, launch/ddp_run.sh and
# launch/supervise.sh all reach the hosts: TCP on the bridge only (IPv4), shared memory within a
# host, the default hostfile, no tree spawn (every daemon is started from the head node), and
# yielding while idle, since these hosts share this machine's cores.
export OMPI_MCA_orte_default_hostfile="$state/hostfile"
export OMPI_MCA_plm_rsh_agent="$agent"
export OMPI_MCA_plm_rsh_no_tree_spawn=1
export OMPI_MCA_pml=ob1
export OMPI_MCA_btl=tcp,vader,self
export OMPI_MCA_btl_tcp_if_include="$net/24"
export OMPI_MCA_oob_tcp_if_include="$net/24"
export OMPI_MCA_btl_tcp_disable_family=6
export OMPI_MCA_mpi_yield_when_idle=1
export OMPI_MCA_hwloc_base_binding_policy=none
export DDP_MPIRUN_ARGS="--hostfile $state/hostfile"
[[ $(id -u) -eq 0 ]] && DDP_MPIRUN_ARGS+=" --allow-run-as-root"
# The command, quoted for bash, in a file: it passes through the agent's sh -c unchanged.
{
  printf 'cd %q || exit\nexec' "$PWD"
  printf ' %q' "$@"
  printf '\n'
} >"$state/head.sh"
"$agent" h0 "bash $state/head.sh"
