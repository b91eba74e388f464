# shellcheck shell=bash
# Emulated-guest benchmarks of scripts/bench (issue 19 items 2 and 3):
# a release xennetd in a namespace of its own with two xennet-guest
# netfronts (set up through its emulated xenstored), each a real Linux
# stack in its own namespace (10.252.0.1 and .2).
# Source, don't run. Needs: $OUT, $SECS, $XENNETD and $GUEST (release
# binaries), run(). Results go to $OUT/guests.txt as lines
# "key variant value" (read by the summary).
#
# * reset_*: guest 2 resets its interface (SIGUSR1: Closing, Closed,
#   fresh rings under new grant references, Initialising, Initialised,
#   Connected) $NRESETS times. Per reset: frontend writes Initialised ->
#   it sees the backend Connected (reset_connected_us), -> the TX
#   response to the gratuitous ARP it queued on the new ring, i.e. the
#   first packet forwarded (reset_forwarded_us), and xennetd's own share,
#   from the watch event in its hands to the Connected write sent
#   (reset_backend_us). Median and 90th percentile, and the 1-minute load
#   average when the resets ended (reset_load1: the machine may be shared).
# * ping_rx_flood_*: ping 1 -> 2 (20 per second) while iperf3 floods
#   guest 2's RX path with UDP (-b 0, 1400 B); median and p90 RTT of the
#   answered pings and the loss, with
#   control frames first (on, the default) and without
#   (rx_control_first = false), and how many frames waited in / were
#   dropped from guest 2's RX backlog (rx_backlog_queued, _dropped).

G=xg$$
GUEST_PIDS=()
XD_PID=""
GRD=""

guests_cleanup() {
    local p d
    for p in "${GUEST_PIDS[@]}" $XD_PID; do
        if kill "$p" 2>/dev/null; then
            timeout 5 tail --pid="$p" -f /dev/null 2>/dev/null || kill -9 "$p" 2>/dev/null || true
        fi
    done
    GUEST_PIDS=()
    XD_PID=""
    for d in "${G}d" "${G}g1" "${G}g2"; do
        ip netns del "$d" 2>/dev/null || true
    done
    [ -n "$GRD" ] && rm -rf "$GRD"
    GRD=""
    return 0
}

gresult() { echo "$1 $2 $3" >> "$OUT/guests.txt"; }

# wait_until SECS CMD...: poll CMD every 10 ms.
wait_until() {
    local n=$(( $1 * 100 )) i
    shift
    for i in $(seq "$n"); do
        "$@" && return 0
        sleep 0.01
    done
    return 1
}

# guests_up [CONFIG]: xennetd and guests 1 and 2, pinging each other.
guests_up() {
    local d
    GRD=$(mktemp -d)
    ip netns add "${G}d"
    ip -n "${G}d" link set lo up
    ip netns exec "${G}d" setsid "$XENNETD" --rundir "$GRD" ${1:+--config "$1"} 2> "$GRD/xennetd.log" &
    XD_PID=$!
    wait_until 10 test -S "$GRD/xenstored.sock" || { echo "bench: xennetd did not start" >&2; return 1; }
    for d in 1 2; do
        ip netns add "${G}g$d"
        ip -n "${G}g$d" link set lo up
        "$GUEST" --rundir "$GRD" --domid "$d" --netns "${G}g$d" --tap eth0 \
            --ip "10.252.0.$d/24" > "$GRD/guest$d.log" 2>&1 &
        GUEST_PIDS+=($!)
    done
    for d in 1 2; do
        wait_until 10 grep -q "connected through xenstore" "$GRD/guest$d.log" || return 1
    done
    wait_until 10 ip netns exec "${G}g1" ping -c 1 -W 1 10.252.0.2 > /dev/null
}

resets_done() { grep -c "^xennet-guest: reset " "$GRD/guest2.log" || true; }
resets_reached() { [ "$(resets_done)" -ge "$1" ]; }

# stats FILE: "median p90" of the numbers in FILE.
stats() {
    sort -n "$1" | awk '{v[NR]=$1} END {if (NR) printf "%d %d\n", v[int((NR+1)/2)], v[int(NR*0.9+0.999)]}'
}

bench_reset() {
    local i m
    guests_up || { echo "bench: reset_* left out: guests did not come up" >&2; guests_cleanup; return; }
    for i in $(seq "$NRESETS"); do
        kill -USR1 "${GUEST_PIDS[1]}"
        wait_until 5 resets_reached "$i" || { echo "bench: reset $i did not finish" >&2; break; }
    done
    sed -n 's/.*Initialised->Connected \([0-9]*\) us.*/\1/p' "$GRD/guest2.log" > "$GRD/c.txt"
    sed -n 's/.*Initialised->first-forwarded \([0-9]*\) us.*/\1/p' "$GRD/guest2.log" > "$GRD/f.txt"
    # The first line is the first connection, not a reset.
    grep "vif2.0: Connected" "$GRD/xennetd.log" | tail -n +2 |
        sed -n 's/.*Connected \([0-9]*\) us.*/\1/p' > "$GRD/b.txt"
    for m in c:reset_connected_us f:reset_forwarded_us b:reset_backend_us; do
        read -r med p90 < <(stats "$GRD/${m%%:*}.txt")
        [ -n "${med:-}" ] && gresult "${m#*:}" median "$med" && gresult "${m#*:}" p90 "$p90"
    done
    gresult reset_count all "$(wc -l < "$GRD/c.txt")"
    gresult reset_load1 all "$(cut -d' ' -f1 /proc/loadavg)"
    guests_cleanup
}

bench_ping_flood() {
    local variant=$1 cfg="" out q d
    if [ "$variant" = off ]; then
        cfg=$(mktemp)
        "$XENNETD" --print-default-config | sed 's/^\[emulated_xen\]$/[emulated_xen]\nrx_control_first = false/' > "$cfg"
    fi
    guests_up "$cfg" || { echo "bench: ping_rx_flood_* $variant left out: guests did not come up" >&2; guests_cleanup; return; }
    local srv cli
    ip netns exec "${G}g2" iperf3 -s -1 > /dev/null 2>&1 &
    srv=$!
    sleep 0.3
    ip netns exec "${G}g1" iperf3 -c 10.252.0.2 -u -b 0 -l 1400 -t "$SECS" > /dev/null 2>&1 &
    cli=$!
    sleep 1
    out=$(ip netns exec "${G}g1" ping -n -i 0.05 -c $(( (SECS - 2) * 20 )) -W 2 10.252.0.2 || true)
    wait "$cli" "$srv" || true
    echo "$out" | sed -n 's/.*time=\([0-9.]*\) ms.*/\1/p' > "$GRD/rtt.txt"
    read -r med p90 < <(sort -n "$GRD/rtt.txt" | awk '{v[NR]=$1} END {if (NR) printf "%s %s\n", v[int((NR+1)/2)], v[int(NR*0.9+0.999)]}')
    [ -n "${med:-}" ] && gresult ping_rx_flood_median_ms "$variant" "$med" && gresult ping_rx_flood_p90_ms "$variant" "$p90"
    q=$(echo "$out" | sed -n 's/.* \([0-9.]*\)% packet loss.*/\1/p')
    [ -n "$q" ] && gresult ping_rx_flood_loss_pct "$variant" "$q"
    d=$("${XENNETD%/*}/xennet-appctl" --rundir "$GRD" xennet/vif-stats vif2.0 2>/dev/null || true)
    q=$(echo "$d" | sed -n 's/.*"tx_queued": \([0-9]*\).*/\1/p')
    gresult rx_backlog_queued "$variant" "${q:-0}"
    q=$(echo "$d" | sed -n 's/.*"tx_queue_full": \([0-9]*\).*/\1/p')
    gresult rx_backlog_dropped "$variant" "${q:-0}"
    q=$(echo "$d" | sed -n 's/.*"tx_prio_delivered": \([0-9]*\).*/\1/p')
    gresult rx_prio_delivered "$variant" "${q:-0}"
    q=$(echo "$d" | sed -n 's/.*"tx_prio_dropped": \([0-9]*\).*/\1/p')
    gresult rx_prio_dropped "$variant" "${q:-0}"
    guests_cleanup
    [ -n "$cfg" ] && rm -f "$cfg"
    return 0
}
