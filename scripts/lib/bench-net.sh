# shellcheck shell=bash
# Network benchmarks of scripts/bench: xennetd against its peers
# (ovs-vswitchd with the userspace datapath, with and without userspace
# TSO, and the Linux bridge), each between the same two namespaces.
# Source, don't run. Needs: $OUT (output dir), $SECS (iperf3 seconds),
# $NFLOWS (flows for flow_mod), $NSETUP (new 5-tuples for flow_setup), $XENNETD (release binary), run(), die().
# $NET_PARTS: "all" (default), "ct" for ct_bench alone (scripts/bench --ct),
# or "flow_mod" for flow_mod alone (scripts/bench --flow-mod).
# $FLOWMOD_STREAM: the streaming controller (examples/flowmod_stream.rs).
# $BURST_GEN: the UDP generator (examples/udp_burst.rs), absolute path.
# $BURST_FORM: how storm sends its new 5-tuples: "raw" (default: Ethernet
# frames on the client's eth0 from an AF_PACKET socket), "socket" (the
# client's UDP socket, through its UDP/IP stack), or "python" (a Python
# sendto loop, the generator before issue 17).
# $XENNET_RX_RING: "true" makes xennetd's two ports receive through the
# TPACKET_V3 block ring (rx_ring) instead of the default frame ring.
#
# Topology, built fresh for every switch and removed after it:
#   ${P}c (10.79.0.1, eth0) -- veth -- ${P}w [switch: v1, v2] -- veth -- ${P}s (10.79.0.2, eth0)
# The switch side lives in its own namespace ${P}w, so the netdev-datapath
# ovs-vswitchd (one per network namespace, PEERS.md §3) has a namespace of
# its own and deleting ${P}w removes the veths, the bridge and OVS's taps.
#
# Results go to $OUT/net.txt as lines "key peer value" (read by the summary).

P=xb$$
NS_C=${P}c NS_S=${P}s NS_W=${P}w
IP_C=10.79.0.1 IP_S=10.79.0.2
NET_PARTS=${NET_PARTS:-all}
NET_PIDS=()     # daemons we started (killed by pid on exit)
OVS_DIRS=()     # OVS run directories ('ovs-appctl exit --cleanup' on exit)

net_cleanup() {
    local d p
    for d in "${OVS_DIRS[@]}"; do
        if [ -S "$d/ovs-vswitchd.ctl" ]; then
            timeout 10 ovs-appctl -t "$d/ovs-vswitchd.ctl" exit --cleanup 2>/dev/null || true
        fi
    done
    for p in "${NET_PIDS[@]}"; do
        if kill "$p" 2>/dev/null; then
            timeout 5 tail --pid="$p" -f /dev/null 2>/dev/null || kill -9 "$p" 2>/dev/null || true
        fi
    done
    NET_PIDS=()
    OVS_DIRS=()
    for d in "$NS_C" "$NS_S" "$NS_W"; do
        ip netns del "$d" 2>/dev/null || true
    done
    return 0
}

result() { echo "$1 $2 $3" >> "$OUT/net.txt"; }
skip() { echo "bench: $1 $2 left out: $3" >&2; }

# topo_up OFFLOADS(on|off): namespaces and veths; the switch attaches v1, v2.
topo_up() {
    local i ns ip
    ip netns add "$NS_C"
    ip netns add "$NS_S"
    ip netns add "$NS_W"
    ip -n "$NS_W" link set lo up
    for i in 1 2; do
        if [ "$i" = 1 ]; then ns=$NS_C ip=$IP_C; else ns=$NS_S ip=$IP_S; fi
        ip -n "$NS_W" link add "v$i" type veth peer name eth0 netns "$ns"
        ip -n "$NS_W" link set "v$i" up
        ip -n "$ns" link set lo up
        ip -n "$ns" addr add "$ip/24" dev eth0
        ip -n "$ns" link set eth0 up
        if [ "$1" = off ]; then
            ip netns exec "$ns" ethtool -K eth0 tx off tso off gso off >/dev/null 2>&1
            ip netns exec "$NS_W" ethtool -K "v$i" tx off tso off gso off >/dev/null 2>&1
        fi
    done
}

wait_ping() {  # until the client reaches the server (learning, port setup)
    local i
    for i in $(seq 50); do
        ip netns exec "$NS_C" ping -c 1 -W 1 "$IP_S" >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    return 1
}

# iperf_pair PEER: TCP Gbit/s and UDP 64 B delivered packets/s, client -> server.
iperf_pair() {
    local peer=$1 tmp
    tmp=$(mktemp -d)
    if ! wait_ping; then
        skip veth_tcp_gbps "$peer" "no ping through the switch"
        skip veth_udp64_pps "$peer" "no ping through the switch"
        rm -rf "$tmp"
        return 0
    fi
    run ip netns exec "$NS_S" iperf3 -s -D -B "$IP_S" -p 5299 --pidfile "$tmp/iperf3.pid"
    sleep 0.5
    NET_PIDS+=("$(cat "$tmp/iperf3.pid")")
    run ip netns exec "$NS_C" timeout $((SECS + 20)) iperf3 -c "$IP_S" -p 5299 -t "$SECS" -J > "$tmp/tcp.json" || true
    run ip netns exec "$NS_C" timeout $((SECS + 20)) iperf3 -c "$IP_S" -p 5299 -t "$SECS" -u -l 64 -b 0 -J > "$tmp/udp.json" || true
    python3 - "$tmp" "$peer" "$OUT/net.txt" <<'PY'
import json, sys
tmp, peer, res = sys.argv[1:]
out = open(res, "a")
try:
    t = json.load(open(f"{tmp}/tcp.json"))
    s = t["end"]["sum_received"]
    if s["bytes"] == 0:
        raise KeyError("0 bytes received (TCP stalled)")
    out.write(f"veth_tcp_gbps {peer} {s['bits_per_second'] / 1e9:.3f}\n")
    print(f"bench: {peer} TCP {s['bits_per_second'] / 1e9:.2f} Gbit/s, "
          f"{t['end']['sum_sent'].get('retransmits', -1)} retransmits", file=sys.stderr)
except Exception as e:
    print(f"bench: veth_tcp_gbps {peer} left out: iperf3 TCP failed: {e!r}", file=sys.stderr)
try:
    u = json.load(open(f"{tmp}/udp.json"))
    s = u["end"]["sum"]
    sent, lost, secs = s["packets"], s["lost_packets"], s["seconds"]
    out.write(f"veth_udp64_pps {peer} {(sent - lost) / secs:.0f}\n")
    print(f"bench: {peer} UDP 64 B offered {sent / secs:.0f} pps, delivered "
          f"{(sent - lost) / secs:.0f} pps ({100.0 * lost / max(sent, 1):.1f}% loss)", file=sys.stderr)
except Exception as e:
    print(f"bench: veth_udp64_pps {peer} left out: iperf3 UDP failed: {e!r}", file=sys.stderr)
PY
    kill "$(cat "$tmp/iperf3.pid")" 2>/dev/null || true
    rm -rf "$tmp"
}

# flow_mod PEER RUNDIR PID: seconds for 'ovs-ofctl add-flows br0' of $NFLOWS
# distinct flows, scaled to 100,000 (linearly; --quick uses 10,000), and
# the switch's (process PID) resident memory with them, MiB (VmRSS, the
# whole process; not scaled); then flow_mod_bundle_100k_s: the same
# flows in one bundle (ovs-ofctl --bundle add-flows), seconds, scaled.
flow_mod() {
    local peer=$1 dir=$2 pid=$3 f="$OUT/flows.txt" t0 t1 n rss
    if [ ! -f "$f" ]; then
        python3 - "$NFLOWS" > "$f" <<'PY'
import sys
for i in range(int(sys.argv[1])):
    print(f"priority={1000 + i % 30000},ip,nw_dst=10.{100 + (i >> 16)}.{(i >> 8) & 255}.{i & 255},actions=output:1")
PY
    fi
    # Into an empty table: xennetd holds at most 100,000 rules per table,
    # so its default NORMAL flow would make the 100,000th TABLE_FULL.
    run env OVS_RUNDIR="$dir" ovs-ofctl -O OpenFlow13 del-flows br0
    t0=$(date +%s.%N)
    if ! run env OVS_RUNDIR="$dir" timeout 600 ovs-ofctl -O OpenFlow13 add-flows br0 "$f"; then
        skip flow_mod_100k_s "$peer" "ovs-ofctl add-flows failed"
        return 0
    fi
    t1=$(date +%s.%N)
    n=$(OVS_RUNDIR=$dir ovs-ofctl -O OpenFlow13 dump-aggregate br0 2>/dev/null | sed -n 's/.*flow_count=\([0-9]*\).*/\1/p' || true)
    echo "bench: $peer: $NFLOWS flows in $(awk "BEGIN{print $t1 - $t0}") s, $(awk "BEGIN{printf \"%.1f\", ($t1 - $t0) * 1e6 / $NFLOWS}") µs per flow-mod and barrier round trip, load $(cut -d' ' -f1 /proc/loadavg) (dump-aggregate: flow_count=${n:-?})" >&2
    result flow_mod_100k_s "$peer" "$(awk "BEGIN{printf \"%.3f\", ($t1 - $t0) * 100000 / $NFLOWS}")"
    if rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null) && [ -n "$rss" ]; then
        result flow_mod_rss_mib "$peer" "$(awk "BEGIN{printf \"%.1f\", $rss / 1024}")"
    else
        skip flow_mod_rss_mib "$peer" "no /proc/$pid/status"
    fi
    # The same flows streamed in one bundle (OpenFlow 1.4): ovs-ofctl
    # sends every add-message without waiting, then one barrier and the
    # commit (OVS vconn_bundle_transact), so this is the switch's
    # flow-mod throughput rather than a round-trip latency.
    run env OVS_RUNDIR="$dir" ovs-ofctl -O OpenFlow13 del-flows br0
    t0=$(date +%s.%N)
    if ! run env OVS_RUNDIR="$dir" timeout 600 ovs-ofctl -O OpenFlow14 --bundle add-flows br0 "$f"; then
        skip flow_mod_bundle_100k_s "$peer" "ovs-ofctl --bundle add-flows failed"
        return 0
    fi
    t1=$(date +%s.%N)
    echo "bench: $peer: $NFLOWS flows in one bundle in $(awk "BEGIN{print $t1 - $t0}") s, $(awk "BEGIN{printf \"%.1f\", ($t1 - $t0) * 1e6 / $NFLOWS}") µs per flow-mod, load $(cut -d' ' -f1 /proc/loadavg)" >&2
    result flow_mod_bundle_100k_s "$peer" "$(awk "BEGIN{printf \"%.3f\", ($t1 - $t0) * 100000 / $NFLOWS}")"
    flow_mod_stream "$peer" "$dir" "$pid"
}

# flow_mod_stream PEER RUNDIR PID: flow_mod_stream_100k_s, seconds for
# the same $NFLOWS flows streamed as a controller does (ovn-controller,
# Faucet): every OpenFlow 1.3 flow-mod sent without waiting, then one
# barrier ($FLOWMOD_STREAM, examples/flowmod_stream.rs: encoded before
# the clock starts, timed from the first byte written to the barrier
# reply, fails on any OFPT_ERROR or a flow count other than $NFLOWS),
# scaled to 100,000; flow_mod_stream_cpu_100k_s: the switch's CPU time
# (process PID, all threads, switch_cpu_ns) over the client's whole run,
# connection set-up and flow-count check included, seconds, scaled.
flow_mod_stream() {
    local peer=$1 dir=$2 pid=$3 c0 c1 secs
    run env OVS_RUNDIR="$dir" ovs-ofctl -O OpenFlow13 del-flows br0
    c0=$(switch_cpu_ns "$pid")
    if ! secs=$(run timeout 600 "$FLOWMOD_STREAM" "$dir/br0.mgmt" "$NFLOWS"); then
        skip flow_mod_stream_100k_s "$peer" "flowmod_stream failed"
        return 0
    fi
    c1=$(switch_cpu_ns "$pid")
    echo "bench: $peer: $NFLOWS flows streamed in $secs s, $(awk "BEGIN{printf \"%.2f\", $secs * 1e6 / $NFLOWS}") µs per flow-mod, switch CPU $(awk "BEGIN{printf \"%.3f\", ($c1 - $c0) / 1e9}") s, load $(cut -d' ' -f1 /proc/loadavg)" >&2
    result flow_mod_stream_100k_s "$peer" "$(awk "BEGIN{printf \"%.4f\", $secs * 100000 / $NFLOWS}")"
    if [ "$c1" -gt 0 ]; then
        result flow_mod_stream_cpu_100k_s "$peer" "$(awk "BEGIN{printf \"%.4f\", ($c1 - $c0) / 1e9 * 100000 / $NFLOWS}")"
    else
        skip flow_mod_stream_cpu_100k_s "$peer" "no /proc/$pid/task/*/schedstat"
    fi
}

bench_xennet() {
    local rd
    rd=$(mktemp -d /tmp/xennet-bench.XXXXXX)
    topo_up on
    cat > "$rd/xennet.toml" <<EOF
[[bridge]]
name = "br0"
[[bridge.port]]
name = "v1"
rx_ring = ${XENNET_RX_RING:-false}
[[bridge.port]]
name = "v2"
rx_ring = ${XENNET_RX_RING:-false}
[emulated_xen]
enabled = false
EOF
    # In a session of its own, as ovs-vswitchd --detach and iperf3 -D put
    # themselves (setsid): with the kernel's autogroups (a CPU share per
    # session, kernel.sched_autogroup_enabled) a switch left in the
    # bench's session shares one share with the iperf3 client and the
    # burst generator while OVS has one to itself, and on a busy machine
    # xennetd waited on the run queue 3-7 times as long as it ran.
    # setsid does not fork here (not a group leader): $! is xennetd.
    echo "+ ip netns exec $NS_W setsid $XENNETD --rundir $rd --config $rd/xennet.toml" >&2
    ip netns exec "$NS_W" setsid "$XENNETD" --rundir "$rd" --config "$rd/xennet.toml" 2> "$rd/xennetd.log" &
    local pid=$! i
    NET_PIDS+=("$pid")
    for i in $(seq 100); do [ -S "$rd/br0.mgmt" ] && break; sleep 0.1; done
    [ -S "$rd/br0.mgmt" ] || { skip all xennet "xennetd did not start: $(tail -3 "$rd/xennetd.log")"; net_cleanup; rm -rf "$rd"; return 0; }
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = xennetd ] || die "xennet: pid $pid is not xennetd (setsid forked?)"
    if [ "$NET_PARTS" = ct ]; then
        wait_ping || die "xennet: no ping through the switch"
        ct_bench xennet "$rd/ovs-vswitchd.$pid.ctl" "$rd" "$pid"
    elif [ "$NET_PARTS" = flow_mod ]; then
        flow_mod xennet "$rd" "$pid"
    else
        iperf_pair xennet
        flow_setup xennet "$rd/ovs-vswitchd.$pid.ctl" "$rd"
        ct_bench xennet "$rd/ovs-vswitchd.$pid.ctl" "$rd" "$pid"
        flow_mod xennet "$rd" "$pid"
    fi
    net_cleanup
    rm -rf "$rd"
}

# bench_ovs PEER TSO(yes|no): ovsdb-server + ovs-vswitchd (netdev datapath)
# on private sockets in a fresh directory, vswitchd inside $NS_W.
bench_ovs() {
    local peer=$1 tso=$2 d db
    d=$(mktemp -d /tmp/ovs-bench.XXXXXX)
    db="unix:$d/db.sock"
    if [ "$tso" = yes ]; then topo_up on; else topo_up off; fi
    ovsdb-tool create "$d/conf.db" /usr/share/openvswitch/vswitch.ovsschema
    run ovsdb-server "$d/conf.db" --remote="punix:$d/db.sock" --pidfile="$d/ovsdb-server.pid" \
        --unixctl="$d/ovsdb-server.ctl" --log-file="$d/ovsdb-server.log" -vconsole:off --detach --no-chdir
    NET_PIDS+=("$(cat "$d/ovsdb-server.pid")")
    ovs-vsctl --db="$db" --no-wait init
    [ "$tso" = yes ] && ovs-vsctl --db="$db" --no-wait set Open_vSwitch . other_config:userspace-tso-enable=true
    OVS_DIRS+=("$d")
    OVS_RUNDIR=$d run ip netns exec "$NS_W" ovs-vswitchd "$db" --pidfile="$d/ovs-vswitchd.pid" \
        --unixctl="$d/ovs-vswitchd.ctl" --log-file="$d/ovs-vswitchd.log" -vconsole:off --detach --no-chdir
    NET_PIDS+=("$(cat "$d/ovs-vswitchd.pid")")
    ovs-vsctl --db="$db" --timeout=30 add-br br0 -- set bridge br0 datapath_type=netdev \
        -- add-port br0 v1 -- set interface v1 ofport_request=1 \
        -- add-port br0 v2 -- set interface v2 ofport_request=2
    if [ "$NET_PARTS" = ct ]; then
        wait_ping || die "$peer: no ping through the switch"
        ct_bench ovs "$d/ovs-vswitchd.ctl" "$d" "$(cat "$d/ovs-vswitchd.pid")"
    elif [ "$NET_PARTS" = flow_mod ]; then
        flow_mod ovs "$d" "$(cat "$d/ovs-vswitchd.pid")"
    else
        iperf_pair "$peer"
    fi
    if [ "$tso" = no ] && [ "$NET_PARTS" = all ]; then
        flow_setup ovs "$d/ovs-vswitchd.ctl" "$d"
        ct_bench ovs "$d/ovs-vswitchd.ctl" "$d" "$(cat "$d/ovs-vswitchd.pid")"
        flow_mod ovs "$d" "$(cat "$d/ovs-vswitchd.pid")"
    fi
    net_cleanup
    rm -rf "$d"
}

bench_linux_bridge() {
    topo_up on
    ip -n "$NS_W" link add br0 type bridge
    ip -n "$NS_W" link set v1 master br0
    ip -n "$NS_W" link set v2 master br0
    ip -n "$NS_W" link set br0 up
    iperf_pair linux_bridge
    net_cleanup
}

# The bursts of storm and the UDP flow of ct_bench go to a MAC the
# server's port announces (announce_fake_mac: a gratuitous ARP from it,
# so a switch learns the MAC there) but its kernel does not have: each
# switch forwards them to the server's port as it would to the server,
# and the server's kernel drops them on arrival (PACKET_OTHERHOST)
# instead of running UDP (and an ICMP port-unreachable route lookup, or
# a receiver's wake-up) for each datagram. The veth does that work in
# the sending thread, the forwarding thread of either switch, and it is
# not the switch's.
FAKE_MAC=02:00:5e:00:53:01
announce_fake_mac() {
    local i
    for i in 1 2 3; do
        ip netns exec "$NS_S" python3 - "$FAKE_MAC" 10.79.0.254 <<'PY'
import socket, sys
mac = bytes.fromhex(sys.argv[1].replace(":", ""))
ip = socket.inet_aton(sys.argv[2])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("eth0", 0))
arp = bytes.fromhex("0001080006040001") + mac + ip + bytes(6) + ip
s.send(b"\xff" * 6 + mac + b"\x08\x06" + arp + bytes(18))
PY
        sleep 0.05
    done
}

# storm PEER CTL KEY COUNTER [PID]: the burst timing of flow_setup and
# ct_bench; with PID, also the switch's CPU time (switch_cpu_ns) per
# counted event over the bursts, on stderr (the bursts' whole CPU, the
# generator's start-up and the quiet after included).
# COUNTER "upcalls": after 'dpctl/del-flows', counted by "miss with
# success upcall" of 'dpif-netdev/pmd-stats-show' (summed over threads);
# "conns": after 'dpctl/flush-conntrack', counted by 'dpctl/ct-get-nconns'.
# One burst: the generator in the client namespace ($BURST_GEN,
# examples/udp_burst.rs, sendmmsg of 64 a call: by default ready-made
# Ethernet frames written on eth0, $BURST_FORM above) sends one 1-byte
# UDP datagram to each of $IP_S:10000..10000+$NSETUP-1 as fast as it
# can, and says how fast it sent (the rate offered), while
# we poll the counter every ~20 ms until it stops moving for 0.5 s.
# A burst's share = counts from the first counter change seen to the first
# sample with 95 % of its final count, over the time between those two
# samples (the generator's start-up, stragglers such as ICMP errors and
# ARP, and the quiet are not counted). Bursts are repeated until the timed
# windows add up to at least 1 s (at most 30 bursts or 90 s); KEY PEER =
# counts / time summed over the bursts, per second.
storm() {
    announce_fake_mac
    python3 - "$1" "$2" "$3" "$4" "$NS_C" "$IP_S" "$NSETUP" "$OUT/net.txt" "$BURST_GEN" "${5:-}" "$NS_S" "$IP_C" "${BURST_FORM:-raw}" "$FAKE_MAC" <<'PY'
import glob, os, re, subprocess, sys, time
peer, ctl, key, counter, ns, ip = sys.argv[1:7]
n, res, gen_bin, pid, ns_s = int(sys.argv[7]), sys.argv[8], sys.argv[9], sys.argv[10], sys.argv[11]
ip_c, form, FAKE = sys.argv[12], sys.argv[13], sys.argv[14]
def switch_cpu_ns():
    """CPU time of the switch so far, ns, over its threads (0 without PID)."""
    t = 0
    for f in glob.glob(f"/proc/{pid}/task/*/schedstat") if pid else []:
        try:
            t += int(open(f).read().split()[0])
        except (OSError, ValueError, IndexError):
            pass  # a thread that went away
    return t
def appctl(*args):
    return subprocess.run(["ovs-appctl", "-t", ctl, *args], capture_output=True, text=True, check=True).stdout
def count():
    if counter == "conns":
        return int(appctl("dpctl/ct-get-nconns").strip())
    o = appctl("dpif-netdev/pmd-stats-show")
    v = [int(x) for x in re.findall(r"miss with success upcall:\s*(\d+)", o)]
    if not v:
        raise SystemExit(f"no 'miss with success upcall' in: {o!r}")
    return sum(v)
reset = "dpctl/flush-conntrack" if counter == "conns" else "dpctl/del-flows"
what = "connections committed" if counter == "conns" else "upcalls"
if form == "raw":
    gen = [gen_bin, "--raw", "eth0", ip_c, FAKE, ip, "10000", str(n)]
elif form == "socket":
    gen = [gen_bin, ip, "10000", str(n)]
elif form != "python":
    raise SystemExit(f"BURST_FORM={form!r}: raw, socket or python")
else:
    gen = ["python3", "-c",
           f"import socket, sys, time\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
           f"t0, sent = time.monotonic(), 0\n"
           f"for p in range(10000, {10000 + n}):\n"
           f"    try: s.sendto(b'x', ('{ip}', p)); sent += 1\n"
           f"    except OSError: pass\n"
           f"print(f'sent {{sent}} of {n} in {{time.monotonic() - t0:.4f}} s', file=sys.stderr)\n"]
poll = "dpctl/ct-get-nconns" if counter == "conns" else "dpif-netdev/pmd-stats-show"
line = f"ovs-appctl -t CTL {reset}; ip netns exec {ns} {' '.join(gen)}; poll ovs-appctl -t CTL {poll}"
print(f"+ (storm, repeated) {line.replace('CTL', ctl)}", file=sys.stderr)
with open(os.path.join(os.path.dirname(res), "commands.txt"), "a") as f:
    f.write(f"{line.replace(gen_bin, os.path.basename(gen_bin))}, repeated to >= 1 s timed\n")
offered = []  # datagrams/s the generator sent, per burst
cpu = 0  # the switch's CPU time over the bursts, ns

def burst():
    """One burst after the reset: (counts timed, seconds timed, counts in all)."""
    appctl(reset)
    time.sleep(0.2)
    before = count()
    c0 = switch_cpu_ns()
    t0 = time.monotonic()
    g = subprocess.Popen(["ip", "netns", "exec", ns, *gen], stderr=subprocess.PIPE, text=True)
    last, t_last = before, t0
    first = None  # (counter, time) at the first change seen: excludes generator start-up
    samples = []
    while True:
        time.sleep(0.02)
        now, c = time.monotonic(), count()
        samples.append((c, now))
        if c != last:
            last, t_last = c, now
            if first is None:
                first = (c, now)
        if g.poll() is not None and now - t_last > 0.5:
            break
        if now - t0 > 60:
            g.kill()
            break
    err = g.communicate()[1]
    global cpu
    cpu += switch_cpu_ns() - c0
    m = re.search(r"sent (\d+) of \d+ in ([\d.]+) s", err)
    if m and float(m.group(2)) > 0:
        offered.append(int(m.group(1)) / float(m.group(2)))
    else:
        print(f"bench: generator: {err.strip()!r}", file=sys.stderr)
    made = last - before
    if made < n // 10:
        raise SystemExit(f"only {made} {what} for {n} new 5-tuples")
    end = next(x for x in samples if x[0] - before >= 0.95 * made)
    return end[0] - first[0], end[1] - first[1], made

# The bursts go to $FAKE_MAC (announce_fake_mac): the server's kernel
# drops them on arrival. The socket forms need the client's permanent
# neighbour entry for the server at that MAC, removed afterwards so ARP
# resolves the server again.
NEIGH = ["ip", "-n", ns, "neigh"]
subprocess.run([*NEIGH, "replace", ip, "lladdr", FAKE, "dev", "eth0", "nud", "permanent"], check=True)
total, secs, rounds, made = 0, 0.0, 0, 0
start = time.monotonic()
try:
    while secs < 1.0 and rounds < 30 and time.monotonic() - start < 90:
        c, t, m = burst()
        total, secs, rounds, made = total + c, secs + t, rounds + 1, made + m
finally:
    subprocess.run([*NEIGH, "del", ip, "dev", "eth0"], check=False)
if secs < 0.1:
    raise SystemExit(f"bursts too short to time ({secs:.3f} s in {rounds} bursts)")
rate = total / secs
offer = f"{min(offered):.0f} - {max(offered):.0f}/s" if offered else "?"
per = f" ({cpu / made:.0f} ns of switch CPU each)" if cpu and made else ""
print(f"bench: {peer}: {rounds} bursts of {n} new 5-tuples (offered {offer}), {made} {what}"
      f"{per}, {total} in {secs:.2f} s timed: {rate:.0f}/s", file=sys.stderr)
open(res, "a").write(f"{key} {peer} {rate:.0f}\n")
PY
}

# flow_setup PEER CTL RUNDIR: new megaflows per second under a storm of new
# 5-tuples. Method: $NSETUP OpenFlow flows "priority=20,udp,tp_dst=N,
# actions=NORMAL" (N = 10000..) make every destination port its own
# megaflow (tp_dst is exact in the mask, where plain NORMAL only matches
# L2); then bursts of one datagram to each of those ports, each after
# 'dpctl/del-flows' empties the megaflow cache, timed by the upcall
# counter (storm). Upcalls a dropping socket never sees are not counted
# (both switches read the veth with AF_PACKET).
flow_setup() {
    local peer=$1 ctl=$2 dir=$3 f="$OUT/setup-flows.txt"
    python3 - "$NSETUP" > "$f" <<'PY'
import sys
for i in range(int(sys.argv[1])):
    print(f"priority=20,udp,tp_dst={10000 + i},actions=NORMAL")
PY
    if ! run env OVS_RUNDIR="$dir" timeout 300 ovs-ofctl -O OpenFlow13 add-flows br0 "$f"; then
        skip flow_setup_per_s "$peer" "ovs-ofctl add-flows failed"
        return 0
    fi
    storm "$peer" "$ctl" flow_setup_per_s upcalls || skip flow_setup_per_s "$peer" "storm failed"
    OVS_RUNDIR=$dir ovs-ofctl -O OpenFlow13 del-flows br0 "udp"
}

# ct_bench PEER CTL RUNDIR: the connection tracker through a stateful
# pipeline, as in the README's "Stateful firewall" (every IPv4 packet
# through ct(table=1); +new committed, +est forwarded; the default zone):
# * ct_new_conns_per_s: new connections committed per second: bursts of
#   one datagram to each of $NSETUP destination ports (each a new
#   connection; the megaflows do not match ports, so after the first
#   packets they all stay on the fast path), each after
#   'dpctl/flush-conntrack' empties the tracker, timed by
#   'dpctl/ct-get-nconns' (storm).
# * ct_udp64_pps: packets/s the switch forwarded (the server's eth0 RX
#   counter, server_rx_packets) of one UDP flow of 64 B payloads (one
#   established connection: one datagram each way first) through the
#   same flows, $SECS s: ready-made
#   frames from the generator ($BURST_GEN --raw ... --secs, as fast as
#   the client's veth takes them) to $FAKE_MAC, which the server's
#   kernel drops on arrival, so the switch's forwarding thread does not
#   run the server's UDP receive (see announce_fake_mac).
# * ct_udp64_iperf_pps: the same from iperf3 UDP -l 64 -b 0 to a real
#   iperf3 server, whose UDP receive and wake-ups the veth runs in the
#   switch's sending thread. Forwarded, not what iperf3 reports
#   delivered: on two vCPUs the iperf3 receiver, not the switch, is the
#   bottleneck there (most of the loss is its socket's UdpRcvbufErrors),
#   so a switch forwarding more left it further behind; that figure is on
#   stderr.
# * ct_tcp_gbps, ct_cpu_ns_per_pkt, noct_cpu_ns_per_pkt: see ct_tcp_cpu.
ct_bench() {
    local peer=$1 ctl=$2 dir=$3 pid=$4 f="$OUT/ct-flows.txt" tmp rx0 rx1 c0 c1
    cat > "$f" <<'FLOWS'
table=0,priority=10,arp,actions=NORMAL
table=0,priority=100,ip,actions=ct(table=1)
table=1,priority=100,ip,ct_state=+trk+new,actions=ct(commit),NORMAL
table=1,priority=100,ip,ct_state=+trk+est,actions=NORMAL
table=1,priority=1,actions=drop
FLOWS
    run env OVS_RUNDIR="$dir" ovs-ofctl -O OpenFlow13 del-flows br0
    if ! run env OVS_RUNDIR="$dir" ovs-ofctl -O OpenFlow13 add-flows br0 "$f"; then
        skip ct_new_conns_per_s "$peer" "ovs-ofctl add-flows failed"
        skip ct_udp64_pps "$peer" "ovs-ofctl add-flows failed"
        skip ct_udp64_iperf_pps "$peer" "ovs-ofctl add-flows failed"
        return 0
    fi
    storm "$peer" "$ctl" ct_new_conns_per_s conns "$pid" || skip ct_new_conns_per_s "$peer" "storm failed"
    run ovs-appctl -t "$ctl" dpctl/flush-conntrack
    tmp=$(mktemp -d)
    announce_fake_mac
    # One datagram each way first: both trackers mark a UDP connection
    # established (+est) only once it has seen a reply, until then every
    # packet is +new (and committed again).
    run ip netns exec "$NS_C" "$BURST_GEN" --raw eth0 "$IP_C" "$FAKE_MAC" "$IP_S" 5298 1 2>/dev/null
    sleep 0.1
    run ip netns exec "$NS_S" "$BURST_GEN" --raw eth0 "$IP_S" "$(ip netns exec "$NS_C" cat /sys/class/net/eth0/address)" "$IP_C" 40000 1 --from-port 5298 2>/dev/null
    sleep 0.1
    rx0=$(server_rx_packets)
    c0=$(switch_cpu_ns "$pid")
    run ip netns exec "$NS_C" timeout $((SECS + 20)) "$BURST_GEN" --raw eth0 "$IP_C" "$FAKE_MAC" "$IP_S" 5298 --secs "$SECS" --len 64 2> "$tmp/gen.txt" || true
    c1=$(switch_cpu_ns "$pid")
    rx1=$(server_rx_packets)
    python3 - "$tmp/gen.txt" "$peer" "$OUT/net.txt" "$((rx1 - rx0))" "$((c1 - c0))" <<'PY'
import re, sys
gen, peer, res, fwd, cpu_ns = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
out = open(gen).read()
m = re.search(r"sent (\d+) of \d+ in ([\d.]+) s", out)
if not m or float(m.group(2)) == 0:
    print(f"bench: ct_udp64_pps {peer} left out: generator: {out.strip()!r}", file=sys.stderr)
    raise SystemExit(0)
sent, secs = int(m.group(1)), float(m.group(2))
open(res, "a").write(f"ct_udp64_pps {peer} {fwd / secs:.0f}\n")
print(f"bench: {peer} UDP 64 B flow through ct: offered {sent / secs:.0f} pps, forwarded "
      f"{fwd / secs:.0f} pps; switch CPU {cpu_ns / max(fwd, 1):.0f} ns per forwarded packet",
      file=sys.stderr)
PY
    run ovs-appctl -t "$ctl" dpctl/flush-conntrack
    run ip netns exec "$NS_S" iperf3 -s -D -B "$IP_S" -p 5298 --pidfile "$tmp/iperf3.pid"
    sleep 0.5
    NET_PIDS+=("$(cat "$tmp/iperf3.pid")")
    rx0=$(server_rx_packets)
    c0=$(switch_cpu_ns "$pid")
    run ip netns exec "$NS_C" timeout $((SECS + 20)) iperf3 -c "$IP_S" -p 5298 -t "$SECS" -u -l 64 -b 0 -J > "$tmp/udp.json" || true
    c1=$(switch_cpu_ns "$pid")
    rx1=$(server_rx_packets)
    python3 - "$tmp" "$peer" "$OUT/net.txt" "$((rx1 - rx0))" "$((c1 - c0))" <<'PY'
import json, sys
tmp, peer, res, fwd, cpu_ns = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
try:
    end = json.load(open(f"{tmp}/udp.json"))["end"]
    s, cpu = end["sum"], end.get("cpu_utilization_percent", {})
    sent, lost, secs = s["packets"], s["lost_packets"], s["seconds"]
    open(res, "a").write(f"ct_udp64_iperf_pps {peer} {fwd / secs:.0f}\n")
    print(f"bench: {peer} iperf3 UDP 64 B through ct: offered {sent / secs:.0f} pps, forwarded "
          f"{fwd / secs:.0f} pps, delivered to iperf3 {(sent - lost) / secs:.0f} pps "
          f"({100.0 * lost / max(sent, 1):.1f}% loss); switch CPU {cpu_ns / max(fwd, 1):.0f} ns "
          f"per forwarded packet, iperf3 client CPU "
          f"{cpu.get('host_total', -1):.0f}%, server {cpu.get('remote_total', -1):.0f}%",
          file=sys.stderr)
except Exception as e:
    print(f"bench: ct_udp64_iperf_pps {peer} left out: iperf3 UDP failed: {e!r}", file=sys.stderr)
PY
    kill "$(cat "$tmp/iperf3.pid")" 2>/dev/null || true
    rm -rf "$tmp"
    ct_tcp_cpu "$peer" "$ctl" "$dir" "$pid" "$f"
    run env OVS_RUNDIR="$dir" ovs-ofctl -O OpenFlow13 del-flows br0
}

# server_rx_packets: frames received so far by the server's eth0 (every
# frame a switch forwarded to it), from the kernel's counter.
server_rx_packets() {
    ip netns exec "$NS_S" cat /sys/class/net/eth0/statistics/rx_packets
}

# CT_PPS: the fixed UDP 64 B rate (packets/s) at which ct_tcp_cpu
# compares the switch's CPU per packet with and without ct; low enough
# that both switches forward all of it on a loaded 2-vCPU machine.
CT_PPS=${CT_PPS:-20000}

# switch_cpu_ns PID: CPU time of process PID so far, ns, summed over its
# threads (/proc/PID/task/*/schedstat, first field: time on a CPU).
switch_cpu_ns() {
    cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{s += $1} END {printf "%.0f", s}'
}

# ct_cpu PEER PID KEY TMP: iperf3 UDP -l 64 at $CT_PPS packets/s for $SECS
# s through the flows in place; KEY = the switch's CPU time (process
# PID, all its threads, switch_cpu_ns) over the run divided by the
# packets iperf3 sent (every one of them crosses the switch once).
ct_cpu() {
    local peer=$1 pid=$2 key=$3 tmp=$4 c0 c1
    c0=$(switch_cpu_ns "$pid")
    run ip netns exec "$NS_C" timeout $((SECS + 20)) iperf3 -c "$IP_S" -p 5298 -t "$SECS" -u -l 64 \
        -b $((CT_PPS * 64 * 8)) -J > "$tmp/cpu.json" || true
    c1=$(switch_cpu_ns "$pid")
    python3 - "$tmp/cpu.json" "$peer" "$key" "$((c1 - c0))" "$OUT/net.txt" <<'PY'
import json, sys
f, peer, key, cpu, res = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
try:
    s = json.load(open(f))["end"]["sum"]
    sent, lost = s["packets"], s["lost_packets"]
    ns = cpu / max(sent, 1)
    open(res, "a").write(f"{key} {peer} {ns:.0f}\n")
    print(f"bench: {peer} {key}: {cpu / 1e6:.1f} ms of switch CPU for {sent} packets "
          f"({100.0 * lost / max(sent, 1):.1f}% loss): {ns:.0f} ns/packet", file=sys.stderr)
except Exception as e:
    print(f"bench: {key} {peer} left out: iperf3 UDP failed: {e!r}", file=sys.stderr)
PY
}

# ct_tcp_cpu PEER CTL RUNDIR PID FLOWS: established traffic through the ct
# pipeline in FLOWS (installed by ct_bench):
# * ct_tcp_gbps: iperf3 TCP Gbit/s received, $SECS s, one connection;
# * ct_cpu_ns_per_pkt: the switch's CPU per UDP 64 B packet at $CT_PPS
#   packets/s of one established connection (ct_cpu);
# * noct_cpu_ns_per_pkt: the same traffic with the ct flows replaced by
#   "actions=NORMAL" (what ct costs is the difference).
ct_tcp_cpu() {
    local peer=$1 ctl=$2 dir=$3 pid=$4 flows=$5 tmp
    tmp=$(mktemp -d)
    run ip netns exec "$NS_S" iperf3 -s -D -B "$IP_S" -p 5298 --pidfile "$tmp/iperf3.pid"
    sleep 0.5
    NET_PIDS+=("$(cat "$tmp/iperf3.pid")")
    run ip netns exec "$NS_C" timeout $((SECS + 20)) iperf3 -c "$IP_S" -p 5298 -t "$SECS" -J > "$tmp/tcp.json" || true
    python3 - "$tmp" "$peer" "$OUT/net.txt" <<'PY'
import json, sys
tmp, peer, res = sys.argv[1:]
try:
    t = json.load(open(f"{tmp}/tcp.json"))
    s = t["end"]["sum_received"]
    if s["bytes"] == 0:
        raise KeyError("0 bytes received (TCP stalled)")
    open(res, "a").write(f"ct_tcp_gbps {peer} {s['bits_per_second'] / 1e9:.3f}\n")
    print(f"bench: {peer} TCP through ct {s['bits_per_second'] / 1e9:.2f} Gbit/s, "
          f"{t['end']['sum_sent'].get('retransmits', -1)} retransmits", file=sys.stderr)
except Exception as e:
    print(f"bench: ct_tcp_gbps {peer} left out: iperf3 TCP failed: {e!r}", file=sys.stderr)
PY
    if [ -r "/proc/$pid/schedstat" ]; then
        ct_cpu "$peer" "$pid" ct_cpu_ns_per_pkt "$tmp"
        run env OVS_RUNDIR="$dir" ovs-ofctl -O OpenFlow13 del-flows br0
        run env OVS_RUNDIR="$dir" ovs-ofctl -O OpenFlow13 add-flow br0 "priority=0,actions=NORMAL"
        run ovs-appctl -t "$ctl" dpctl/flush-conntrack
        ct_cpu "$peer" "$pid" noct_cpu_ns_per_pkt "$tmp"
        run env OVS_RUNDIR="$dir" ovs-ofctl -O OpenFlow13 del-flows br0
        run env OVS_RUNDIR="$dir" ovs-ofctl -O OpenFlow13 add-flows br0 "$flows"
    else
        skip ct_cpu_ns_per_pkt "$peer" "no /proc/$pid/schedstat"
        skip noct_cpu_ns_per_pkt "$peer" "no /proc/$pid/schedstat"
    fi
    kill "$(cat "$tmp/iperf3.pid")" 2>/dev/null || true
    rm -rf "$tmp"
}

# bench_ct_only [--quick]: ct_bench alone (scripts/bench --ct), xennetd
# then ovs-vswitchd (netdev datapath, offloads off) in the same run, and
# a table of the ct_* keys with xennet/ovs ratios and the load average
# (/proc/loadavg, 1 min) before and after: the machine may be shared.
bench_ct_only() {
    local l0 l1
    if [ -n "${1:-}" ]; then SECS=3; else SECS=10; fi
    NSETUP=${NSETUP:-50000} NET_PARTS=ct
    : > "$OUT/net.txt"
    : > "$OUT/commands.txt"
    l0=$(cut -d' ' -f1 /proc/loadavg)
    peer_run xennet bench_xennet
    peer_run ovs bench_ovs ovs no
    l1=$(cut -d' ' -f1 /proc/loadavg)
    python3 - "$OUT/net.txt" "$l0" "$l1" <<'PY'
import sys
res, l0, l1 = sys.argv[1:]
d = {}
for line in open(res):
    key, peer, val = line.split()
    d.setdefault(key, {})[peer] = float(val)
print(f"ct bench, load average {l0} before, {l1} after")
print(f"{'metric':<20} {'xennet':>10} {'ovs':>10}   xennet/ovs")
for key in ("ct_new_conns_per_s", "ct_udp64_pps", "ct_udp64_iperf_pps", "ct_tcp_gbps", "ct_cpu_ns_per_pkt", "noct_cpu_ns_per_pkt"):
    v = d.get(key, {})
    cells = [f"{v[p]:>10.4g}" if p in v else f"{'-':>10}" for p in ("xennet", "ovs")]
    ratio = f"{v['xennet'] / v['ovs']:.2f}" if "xennet" in v and v.get("ovs", 0) > 0 else ""
    print(f"{key:<20} {' '.join(cells)}   {ratio}")
print("(*_cpu_ns_per_pkt: lower is better)")
PY
}

# bench_flow_mod_only [--quick] [RUNS]: flow_mod alone (scripts/bench
# --flow-mod), xennetd then ovs-vswitchd (netdev datapath), RUNS times
# (default 1) alternating, each pair a fresh switch; a table of the
# flow_mod keys per pair with xennet/ovs ratios and the load average
# (/proc/loadavg, 1 min) before and after each pair: the machine may be
# shared. $OUT/net.txt holds the last pair.
bench_flow_mod_only() {
    local i l0 l1 runs=${2:-1}
    if [ -n "${1:-}" ]; then NFLOWS=10000; else NFLOWS=100000; fi
    NET_PARTS=flow_mod
    : > "$OUT/commands.txt"
    rm -f "$OUT/flows.txt"
    for i in $(seq "$runs"); do
        : > "$OUT/net.txt"
        l0=$(cut -d' ' -f1 /proc/loadavg)
        peer_run xennet bench_xennet
        peer_run ovs bench_ovs ovs no
        l1=$(cut -d' ' -f1 /proc/loadavg)
        python3 - "$OUT/net.txt" "$l0" "$l1" "$NFLOWS" "$i" <<'PY'
import sys
res, l0, l1, n, i = sys.argv[1:]
d = {}
for line in open(res):
    key, peer, val = line.split()
    d.setdefault(key, {})[peer] = float(val)
print(f"flow_mod run {i}: {n} flows" + ("" if n == "100000" else ", scaled to 100,000")
      + f"; load average {l0} before, {l1} after")
print(f"{'metric':<26} {'xennet':>10} {'ovs':>10}   xennet/ovs")
for key in ("flow_mod_100k_s", "flow_mod_bundle_100k_s", "flow_mod_stream_100k_s",
            "flow_mod_stream_cpu_100k_s", "flow_mod_rss_mib"):
    v = d.get(key, {})
    cells = [f"{v[p]:>10.4g}" if p in v else f"{'-':>10}" for p in ("xennet", "ovs")]
    ratio = f"{v['xennet'] / v['ovs']:.2f}" if "xennet" in v and v.get("ovs", 0) > 0 else ""
    print(f"{key:<26} {' '.join(cells)}   {ratio}")
print("(lower is better for all)")
PY
    done
}

# peer_run NAME FUNCTION [ARGS...]: one switch's benchmarks in a subshell
# that stops at its first failure and cleans up after itself; a failure
# leaves out that switch's keys (reason on stderr) and the run goes on.
peer_run() {
    local name=$1 rc
    shift
    set +e
    (
        set -e
        trap net_cleanup EXIT
        trap 'exit 130' INT TERM
        "$@"
    )
    rc=$?
    set -e
    [ "$rc" = 130 ] && exit 130
    [ "$rc" = 0 ] || echo "bench: $name: failed (exit $rc, see above): its keys are left out" >&2
    return 0
}
