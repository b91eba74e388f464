# shellcheck shell=bash
# OVN's change-to-traffic time for scripts/bench (issue 16): runs
# `scripts/test-ovn --steps t` (Geneve) with ovs-vswitchd and with
# xennetd on both chassis. Source, don't run. Needs: $OUT, $XENNETD, run().
#
# Step t (see scripts/test-ovn) adds five ports on chassis 2 one at a
# time, each with its guest's veth already on br-int, and prints per port
# the milliseconds from `ovn-nbctl lsp-add` + `lsp-set-addresses` to the
# first answered ping from a guest on chassis 1 (ping every 10 ms, static
# neighbour entries), and to `ovn-nbctl --wait=hv sync`'s return.
# Results: $OUT/ovn_latency.txt, lines "KEY PEER VALUE" with KEY
# ovn_latency_ping_ms and ovn_latency_sync_ms, the median of the five
# (the first port of the switch on chassis 2 is often the slowest).

bench_ovn_latency() {
    local sw log xd
    xd=$(realpath "$XENNETD")
    : >"$OUT/ovn_latency.txt"
    for sw in ovs xennet; do
        log="$OUT/ovn_latency-$sw.log"
        if ! run env XENNETD="$xd" scripts/test-ovn --switches "$sw,$sw" --encap geneve --steps t >"$log" 2>&1; then
            tail -n 20 "$log" >&2
            echo "bench: ovn_latency_* $sw left out: scripts/test-ovn failed (log: $log)" >&2
            continue
        fi
        grep 'ovn-latency:' "$log" >&2 || true
        python3 - "$sw" "$log" "$OUT/ovn_latency.txt" <<'PY'
import re, statistics, sys
sw, log, res = sys.argv[1:]
rows = [(int(a), int(b)) for a, b in re.findall(r"ovn-latency: \S+ ping_ms=(\d+) sync_ms=(\d+)", open(log).read())]
if not rows:
    print(f"bench: ovn_latency_* {sw} left out: no 'ovn-latency:' lines in {log}", file=sys.stderr)
    sys.exit(0)
with open(res, "a") as out:
    out.write(f"ovn_latency_ping_ms {sw} {statistics.median(r[0] for r in rows)}\n")
    out.write(f"ovn_latency_sync_ms {sw} {statistics.median(r[1] for r in rows)}\n")
PY
    done
    return 0
}

# ovn_latency_table: both switches side by side.
ovn_latency_table() {
    python3 - "$OUT/ovn_latency.txt" <<'PY'
import sys
d = {}
for line in open(sys.argv[1]):
    key, peer, val = line.split()
    d.setdefault(key, {})[peer] = float(val)
print("OVN: ms from ovn-nbctl lsp-add to traffic (median of 5 ports; lower is better):")
print(f"{'metric':<22} {'xennet':>10} {'ovs':>10}   xennet/ovs")
for key in ("ovn_latency_ping_ms", "ovn_latency_sync_ms"):
    v = d.get(key, {})
    cells = [f"{v[p]:>10.4g}" if p in v else f"{'-':>10}" for p in ("xennet", "ovs")]
    ratio = f"{v['xennet'] / v['ovs']:.2f}" if "xennet" in v and v.get("ovs", 0) > 0 else "-"
    print(f"{key:<22} {' '.join(cells)}   {ratio}")
PY
}
