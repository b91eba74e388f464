# shellcheck shell=bash
# The "as deployed" scale figure of scripts/bench (issue 19 item 4):
# xennetd (release) with its OVSDB from a private ovsdb-server, N emulated
# guests (xennet-guest processes) set up through its emulated xenstored at
# once, their vifs added with the real ovs-vsctl; then xennetd's resident
# memory, descriptors and threads against the same daemon with no vif,
# and its idle CPU over $SCALE_IDLE seconds with and without the vifs.
# Source, don't run. Needs: $OUT, $XENNETD and $GUEST (release binaries),
# run(). Prints one JSON line {"scale_deployed": {...}} and writes it to
# $OUT/scale_deployed.txt.
#
# What the emulation costs xennetd rather than the backend is separated
# where it can be: per vif the guest's registration connection and its
# xenstored connection (2 sockets; on Xen guests talk to xenstored through
# the hypervisor, not to the backend's process) and the emulated
# hypervisor's two eventfds of the guest's event channel. The store itself
# (about 30 nodes per vif) and its connection buffers stay in rss_kib_per_vif,
# which is so an upper bound of the backend's own memory.

SC_P=xs$$
SC_PIDS=()

scale_cleanup() {
    local p
    for p in "${SC_PIDS[@]}"; do
        kill "$p" 2>/dev/null || true
    done
    for p in "${SC_PIDS[@]}"; do
        timeout 5 tail --pid="$p" -f /dev/null 2>/dev/null || kill -9 "$p" 2>/dev/null || true
    done
    SC_PIDS=()
    ip netns del "${SC_P}g" 2>/dev/null || true
    ip netns del "${SC_P}d" 2>/dev/null || true
    return 0
}

# rss_kib PID, fds PID, threads PID, cpu_ticks PID
sc_rss() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
sc_fds() { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 | wc -l; }
sc_threads() { awk '/^Threads:/ {print $2}' "/proc/$1/status"; }
# CPU time of PID's threads, ns, one "TID NS" line each (schedstat:
# nanosecond resolution, where /proc/PID/stat counts 10 ms ticks).
sc_cpu() {
    local t
    for t in /proc/"$1"/task/*; do
        echo "${t##*/} $(cut -d' ' -f1 "$t/schedstat" 2>/dev/null || echo 0)"
    done
}
# Sockets among PID's descriptors.
sc_sockets() { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 -lname 'socket:*' | wc -l; }
# Idle CPU of PID over SECS, % of one core: per thread, what it used
# since the start (a thread that exits meanwhile, an idle blocking-pool
# thread timing out, counts nothing; one that starts counts all it used).
sc_idle() {
    local c0 c1
    c0=$(sc_cpu "$1")
    if [ -n "${SCALE_PERF:-}" ]; then
        # Where the idle time goes (perf report -i $OUT/scale_idle.perf).
        perf record -q -g -p "$1" -o "$OUT/scale_idle.perf" -- sleep "$2" > /dev/null 2>&1 || sleep "$2"
    else
        sleep "$2"
    fi
    c1=$(sc_cpu "$1")
    awk -v s="$2" 'NR == FNR {a[$1] = $2; next} {t += $2 - a[$1]} END {printf "%.4f", t / 1e9 / s * 100}' \
        <(echo "$c0") <(echo "$c1")
}

# bench_scale_deployed N
bench_scale_deployed() {
    local n=$1 d db pid i connected failed waited ports
    local rss0 fds0 thr0 sock0 cpu0 rss1 fds1 thr1 sock1 cpu1
    d=$(mktemp -d /tmp/xennet-scale.XXXXXX)
    db="unix:$d/db.sock"
    ovsdb-tool create "$d/conf.db" /usr/share/openvswitch/vswitch.ovsschema
    run ovsdb-server "$d/conf.db" --remote="punix:$d/db.sock" --pidfile="$d/ovsdb-server.pid" \
        --unixctl="$d/ovsdb-server.ctl" --log-file="$d/ovsdb-server.log" -vconsole:off --detach --no-chdir
    SC_PIDS+=("$(cat "$d/ovsdb-server.pid")")
    ovs-vsctl --db="$db" --no-wait init
    ovs-vsctl --db="$db" --no-wait add-br br0
    # xennetd in a namespace of its own (its representor devices vifN.0),
    # the guests in another (a tap each, no IPv6 chatter).
    ip netns add "${SC_P}d"
    ip -n "${SC_P}d" link set lo up
    ip netns add "${SC_P}g"
    ip netns exec "${SC_P}g" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
    # Not through run(): $! must be xennetd's pid (`ip netns exec` execs
    # it in place), not a subshell's.
    echo "+ ip netns exec ${SC_P}d setsid $XENNETD --rundir $d --db $db" >&2
    ip netns exec "${SC_P}d" setsid "$XENNETD" --rundir "$d" --db "$db" > /dev/null 2> "$d/xennetd.log" &
    pid=$!
    SC_PIDS+=("$pid")
    for _ in $(seq 100); do [ -S "$d/xenstored.sock" ] && break; sleep 0.1; done
    [ -S "$d/xenstored.sock" ] || { echo "bench: scale_deployed left out: xennetd did not start" >&2; scale_cleanup; return 0; }
    sleep 2
    rss0=$(sc_rss "$pid") fds0=$(sc_fds "$pid") thr0=$(sc_threads "$pid") sock0=$(sc_sockets "$pid")
    cpu0=$(sc_idle "$pid" "$SCALE_IDLE")

    echo "+ $n x $GUEST --xenstore $d/xenstored.sock (at once)" >&2
    for i in $(seq "$n"); do
        "$GUEST" --rundir "$d" --domid "$i" --netns "${SC_P}g" --tap "g$i" \
            --xenstore "$d/xenstored.sock" > "$d/guest$i.log" 2>&1 &
        SC_PIDS+=("$!")
    done
    # Each guest connects or gives up by its own deadlines.
    for waited in $(seq 600); do
        connected=$({ grep -l "connected through xenstore" "$d"/guest*.log 2>/dev/null || true; } | wc -l)
        failed=$({ grep -l "^Error" "$d"/guest*.log 2>/dev/null || true; } | wc -l)
        [ $((connected + failed)) -ge "$n" ] && break
        sleep 0.2
    done
    echo "scale: $connected of $n guests connected ($failed failed) after ~$((waited / 5)) s" >&2
    if [ "$failed" -gt 0 ]; then
        grep -l "^Error" "$d"/guest*.log | head -1 | xargs head -8 > "$OUT/scale_deployed_failed_guest.log" || true
        echo "scale: one failed guest's log: $OUT/scale_deployed_failed_guest.log" >&2
    fi
    # Their vifs onto br0 with ovs-vsctl, 64 per transaction.
    for ((i = 1; i <= n; i += 64)); do
        local args=()
        for ((j = i; j < i + 64 && j <= n; j++)); do args+=(-- add-port br0 "vif$j.0"); done
        ovs-vsctl --db="$db" --timeout=120 "${args[@]}" > /dev/null
    done
    for _ in $(seq 300); do
        ports=$(ovs-vsctl --db="$db" --bare --columns=ofport list interface | awk '$1 > 0 && $1 < 65280 {n++} END {print n + 0}')
        [ "$ports" -ge "$connected" ] && break
        sleep 0.2
    done
    sleep 3
    rss1=$(sc_rss "$pid") fds1=$(sc_fds "$pid") thr1=$(sc_threads "$pid") sock1=$(sc_sockets "$pid")
    cat /proc/"$pid"/task/*/comm 2>/dev/null | sort | uniq -c > "$OUT/scale_deployed_threads.txt" || true
    cpu1=$(sc_idle "$pid" "$SCALE_IDLE")
    cp "$d/xennetd.log" "$OUT/scale_deployed_xennetd.log" 2>/dev/null || true
    { ls -l "/proc/$pid/fd" 2>/dev/null || true; } | awk 'NR > 1 {print $NF}' | sed 's/[0-9]\+/N/g' | sort | uniq -c \
        > "$OUT/scale_deployed_fds.txt"
    scale_cleanup
    rm -rf "$d"
    [ "$connected" -gt 0 ] || { echo "bench: scale_deployed left out: no guest connected" >&2; return 0; }
    awk -v n="$connected" -v want="$n" -v ports="$ports" -v idle="$SCALE_IDLE" \
        -v rss0="$rss0" -v rss1="$rss1" -v fds0="$fds0" -v fds1="$fds1" \
        -v thr0="$thr0" -v thr1="$thr1" -v sock0="$sock0" -v sock1="$sock1" \
        -v cpu0="$cpu0" -v cpu1="$cpu1" 'BEGIN {
        rss = (rss1 - rss0) / n
        fds = (fds1 - fds0) / n
        emul = (sock1 - sock0) / n + 2
        cpu4096 = cpu0 + (cpu1 - cpu0) / n * 4096
        if (cpu4096 < 0) cpu4096 = 0
        printf "{\"scale_deployed\": {\"vifs_started\": %d, \"vifs_connected\": %d, \"ports_added\": %d, ", want, n, ports
        printf "\"rss_kib_per_vif\": %.1f, \"rss_mib_4096\": %.1f, ", rss, rss * 4096 / 1024
        printf "\"fds_per_vif\": %.2f, \"fds_per_vif_emulation\": %.2f, \"fds_per_vif_backend\": %.2f, ", fds, emul, fds - emul
        printf "\"threads_idle\": %d, \"threads_with_vifs\": %d, \"threads_per_vif\": %.3f, ", thr0, thr1, (thr1 - thr0) / n
        printf "\"idle_cpu_pct_no_vifs\": %.4f, \"idle_cpu_pct\": %.4f, \"idle_cpu_pct_4096\": %.4f, \"idle_s\": %d}}\n", cpu0, cpu1, cpu4096, idle
    }' | tee "$OUT/scale_deployed.txt"
}
