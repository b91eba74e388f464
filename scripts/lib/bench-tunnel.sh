# shellcheck shell=bash
# Tunnel benchmark of scripts/bench (issue 16): guests on two chassis
# joined by Geneve or VXLAN, xennetd against ovs-vswitchd's userspace
# datapath, the same topology and the same ovs-vsctl commands for both.
# Source, don't run. Needs: $OUT, $XENNETD (release binary), run(), die().
# Optional: $TUNNEL_SECS (iperf3 seconds per test, default 3).
#
# Topology, built fresh for every (switch, encapsulation) and removed
# after it (as in OVS's userspace-tunneling howto and scripts/test-ovn):
#
#   ${TP}g1 (10.81.0.1, eth0)                      ${TP}g2 (10.81.0.2, eth0)
#        | veth                                         | veth
#   ${TP}h1 [ovsdb-server, switch]                 ${TP}h2 [ovsdb-server, switch]
#     br-int: gv, tun (type geneve|vxlan, key 42, remote_ip the other chassis)
#     br-phy: u1 + LOCAL 172.31.81.1/24 -- underlay veth (MTU 1600) -- br-phy: u2 + LOCAL 172.31.81.2/24
#
# Both bridges are datapath_type=netdev in fail_mode standalone (NORMAL).
# Each chassis has its own ovsdb-server; the switch runs in the chassis
# namespace (ovs-vswitchd: one netdev datapath per namespace).
#
# Offloads, each switch as it performs best (measured on this machine,
# README "Performance"):
# * xennet: guest veths with their defaults (checksum offload, TSO, GSO
#   on). xennetd fills in partial checksums and segments TCP before
#   encapsulating.
# * ovs: guest veths with tx checksum, TSO and GSO off (OVS 3.1's netdev
#   datapath passes checksum-partial frames from AF_PACKET on unfixed,
#   PEERS.md §3, and with userspace-tso-enable=true and offloads on, TCP
#   over the tunnel stalls: 0 bytes in 3 s, measured 2026-12-06).
#
# Results: $OUT/tunnel.txt, lines "KEY PEER VALUE" with KEY
# tunnel_<encap>_tcp_gbps (iperf3 TCP, receiver's Gbit/s, g1 -> g2) and
# tunnel_<encap>_udp64_pps (iperf3 UDP -l 64 -b 0, packets/s delivered
# at g2).

TP=xt$$
TUN_PIDS=() # daemons started here (killed by pid)
TUN_DIRS=() # run directories (OVS: 'ovs-appctl exit --cleanup' first)
TUN_NS=()

tunnel_cleanup() {
    local d p
    for d in "${TUN_DIRS[@]}"; do
        if [ -S "$d/ovs-vswitchd.ctl" ]; then
            timeout 10 ovs-appctl -t "$d/ovs-vswitchd.ctl" exit --cleanup 2>/dev/null || true
        fi
    done
    for p in "${TUN_PIDS[@]}"; do
        if kill "$p" 2>/dev/null; then
            timeout 5 tail --pid="$p" -f /dev/null 2>/dev/null || kill -9 "$p" 2>/dev/null || true
        fi
    done
    for d in "${TUN_NS[@]}"; do ip netns del "$d" 2>/dev/null || true; done
    for d in "${TUN_DIRS[@]}"; do rm -rf "$d"; done
    TUN_PIDS=() TUN_DIRS=() TUN_NS=()
    return 0
}

tunnel_result() { echo "$1 $2 $3" >>"$OUT/tunnel.txt"; }
tunnel_skip() { echo "bench: $1 $2 left out: $3" >&2; }

# tunnel_chassis N SWITCH(xennet|ovs) ENCAP DIR: chassis N's database,
# switch and bridges.
tunnel_chassis() {
    local n=$1 sw=$2 encap=$3 dir=$4 ns=${TP}h$1 db i
    db="unix:$dir/conf.sock"
    ovsdb-tool create "$dir/conf.db" /usr/share/openvswitch/vswitch.ovsschema
    ovsdb-server "$dir/conf.db" --remote="punix:$dir/conf.sock" --pidfile="$dir/conf.pid" \
        --unixctl="$dir/conf.ctl" --log-file="$dir/conf.log" -vconsole:off --detach --no-chdir
    TUN_PIDS+=("$(cat "$dir/conf.pid")")
    # A system-id per host, as deployments set: xennetd derives its
    # bridges' MACs from it (else both br-phy would share one).
    ovs-vsctl --db="$db" --no-wait init -- set Open_vSwitch . "external_ids:system-id=${TP}-h$n"
    case $sw in
    ovs)
        OVS_RUNDIR=$dir ip netns exec "$ns" ovs-vswitchd "$db" --pidfile="$dir/ovs-vswitchd.pid" \
            --unixctl="$dir/ovs-vswitchd.ctl" --log-file="$dir/ovs-vswitchd.log" -vconsole:off --detach --no-chdir
        TUN_PIDS+=("$(cat "$dir/ovs-vswitchd.pid")")
        ;;
    xennet)
        # A session of its own, as OVS --detach (see bench_xennet in bench-net.sh).
        ip netns exec "$ns" setsid "$XENNETD" --rundir "$dir" --db "$db" --log-file "$dir/xennetd.log" 2>>"$dir/xennetd.log" &
        TUN_PIDS+=("$!")
        for i in $(seq 100); do [ -S "$dir/xennet-xen.sock" ] && break; sleep 0.1; done
        [ -S "$dir/xennet-xen.sock" ] || { tail -3 "$dir/xennetd.log" >&2; return 1; }
        ;;
    esac
    ip -n "$ns" link set "u$n" up
    ip -n "$ns" link set gv up
    ovs-vsctl --db="$db" --timeout=30 \
        add-br br-phy -- set bridge br-phy datapath_type=netdev fail_mode=standalone \
        -- add-port br-phy "u$n" \
        -- add-br br-int -- set bridge br-int datapath_type=netdev fail_mode=standalone \
        -- add-port br-int gv \
        -- add-port br-int tun -- set interface tun type="$encap" \
        "options:remote_ip=172.31.81.$((3 - n))" options:key=42
    ip -n "$ns" addr add "172.31.81.$n/24" dev br-phy
    ip -n "$ns" link set br-phy up
    ip -n "$ns" link set br-int up
}

# tunnel_pair SWITCH ENCAP: one measurement of both figures.
tunnel_pair() {
    local sw=$1 encap=$2 n ns g d tmp i ok=0
    for n in 1 2; do
        for ns in "${TP}h$n" "${TP}g$n"; do
            ip netns add "$ns"
            TUN_NS+=("$ns")
            ip -n "$ns" link set lo up
        done
    done
    ip link add "${TP}u1" mtu 1600 type veth peer name "${TP}u2" mtu 1600
    for n in 1 2; do
        ip link set "${TP}u$n" netns "${TP}h$n"
        ip -n "${TP}h$n" link set "${TP}u$n" name "u$n"
        g=${TP}g$n
        ip -n "${TP}h$n" link add gv type veth peer name eth0 netns "$g"
        ip -n "$g" addr add "10.81.0.$n/24" dev eth0
        ip -n "$g" link set eth0 up
        if [ "$sw" = ovs ]; then
            ip netns exec "$g" ethtool -K eth0 tx off tso off gso off >/dev/null 2>&1
            ip netns exec "${TP}h$n" ethtool -K gv tx off tso off gso off >/dev/null 2>&1
        fi
    done
    for n in 1 2; do
        d=$(mktemp -d /tmp/xennet-tunbench.XXXXXX)
        TUN_DIRS+=("$d")
        tunnel_chassis "$n" "$sw" "$encap" "$d"
    done
    echo "+ ($sw, $encap) ip netns exec ${TP}g1 ping 10.81.0.2 (until it answers)" >&2
    for i in $(seq 60); do
        if ip netns exec "${TP}g1" ping -c 1 -W 1 10.81.0.2 >/dev/null 2>&1; then ok=1; break; fi
        sleep 0.2
    done
    if [ $ok = 0 ]; then
        tunnel_skip "tunnel_${encap}_*" "$sw" "no ping across the tunnel"
        return 0
    fi
    tmp=$(mktemp -d)
    TUN_DIRS+=("$tmp")
    run ip netns exec "${TP}g2" iperf3 -s -D -B 10.81.0.2 -p 5297 --pidfile "$tmp/iperf3.pid"
    sleep 0.5
    TUN_PIDS+=("$(cat "$tmp/iperf3.pid")")
    run ip netns exec "${TP}g1" timeout $((TUNNEL_SECS + 20)) iperf3 -c 10.81.0.2 -p 5297 -t "$TUNNEL_SECS" -J >"$tmp/tcp.json" || true
    run ip netns exec "${TP}g1" timeout $((TUNNEL_SECS + 20)) iperf3 -c 10.81.0.2 -p 5297 -t "$TUNNEL_SECS" -u -l 64 -b 0 -J >"$tmp/udp.json" || true
    python3 - "$tmp" "$sw" "$encap" "$OUT/tunnel.txt" <<'PY'
import json, sys
tmp, peer, encap, res = sys.argv[1:]
out = open(res, "a")
try:
    t = json.load(open(f"{tmp}/tcp.json"))
    if "error" in t:
        raise KeyError(t["error"])
    s = t["end"]["sum_received"]
    if s["bytes"] == 0:
        raise KeyError("0 bytes received (TCP stalled)")
    out.write(f"tunnel_{encap}_tcp_gbps {peer} {s['bits_per_second'] / 1e9:.3f}\n")
    print(f"bench: {peer} over {encap}: TCP {s['bits_per_second'] / 1e9:.2f} Gbit/s, "
          f"{t['end']['sum_sent'].get('retransmits', -1)} retransmits", file=sys.stderr)
except Exception as e:
    print(f"bench: tunnel_{encap}_tcp_gbps {peer} left out: iperf3 TCP failed: {e!r}", file=sys.stderr)
try:
    u = json.load(open(f"{tmp}/udp.json"))
    if "error" in u:
        raise KeyError(u["error"])
    s = u["end"]["sum"]
    sent, lost, secs = s["packets"], s["lost_packets"], s["seconds"]
    out.write(f"tunnel_{encap}_udp64_pps {peer} {(sent - lost) / secs:.0f}\n")
    print(f"bench: {peer} over {encap}: UDP 64 B offered {sent / secs:.0f} pps, delivered "
          f"{(sent - lost) / secs:.0f} pps ({100.0 * lost / max(sent, 1):.1f}% loss)", file=sys.stderr)
except Exception as e:
    print(f"bench: tunnel_{encap}_udp64_pps {peer} left out: iperf3 UDP failed: {e!r}", file=sys.stderr)
PY
}

# bench_tunnel: every switch over every encapsulation, each in a subshell
# that cleans up after itself; a failure leaves out that pair's keys.
bench_tunnel() {
    local encap sw rc
    : "${TUNNEL_SECS:=3}"
    : >"$OUT/tunnel.txt"
    for encap in geneve vxlan; do
        for sw in xennet ovs; do
            set +e
            (
                set -e
                trap tunnel_cleanup EXIT
                trap 'exit 130' INT TERM
                tunnel_pair "$sw" "$encap"
            )
            rc=$?
            set -e
            [ "$rc" = 130 ] && exit 130
            [ "$rc" = 0 ] || echo "bench: tunnel $sw over $encap: failed (exit $rc, see above): its keys are left out" >&2
        done
    done
    return 0
}

# tunnel_table: the figures side by side, xennet/ovs ratios.
tunnel_table() {
    python3 - "$OUT/tunnel.txt" "$TUNNEL_SECS" <<'PY'
import sys
d = {}
for line in open(sys.argv[1]):
    key, peer, val = line.split()
    d.setdefault(key, {})[peer] = float(val)
print(f"tunnels between two chassis, iperf3 {sys.argv[2]} s per test (xennet offloads on, ovs offloads off):")
print(f"{'metric':<26} {'xennet':>10} {'ovs':>10}   xennet/ovs")
for encap in ("geneve", "vxlan"):
    for m in ("tcp_gbps", "udp64_pps"):
        key = f"tunnel_{encap}_{m}"
        v = d.get(key, {})
        cells = [f"{v[p]:>10.4g}" if p in v else f"{'-':>10}" for p in ("xennet", "ovs")]
        ratio = f"{v['xennet'] / v['ovs']:.2f}" if "xennet" in v and v.get("ovs", 0) > 0 else "-"
        print(f"{key:<26} {' '.join(cells)}   {ratio}")
PY
}
