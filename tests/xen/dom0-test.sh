#!/bin/bash
# scripts/test-xen's test, run by dom0's /init inside the emulated machine
# (real Xen 4.17, Linux PV dom0). Comes in through the 9p share
# /mnt/share with:
#   config        MODE=xennetd|kernel, QUICK, DRIVER_DOMAIN=0|1|only,
#                 XENNETD_ARGS (extra xennetd arguments)
#   nicdom-initrd.gz  the driver domain's initramfs (with DRIVER_DOMAIN)
#   xennetd.toml  tests/xen/xennetd.toml: [xen] mode = "real", hotplug = "script"
#   bin/xennetd, bin/xennet-appctl   (MODE=xennetd)
#   vif-xennet    scripts/vif-xennet, installed into /etc/xen/scripts
# Prints one "XT: PASS <step>" or "XT: FAIL <step>: <why>" line per step
# (also appended to /mnt/share/results), "XT: DONE" at the end, and
# leaves logs in /mnt/share/logs. Every wait is bounded.
#
# With DRIVER_DOMAIN=1 (scripts/test-xen --driver-domain) the driver-domain
# steps run at the end, with DRIVER_DOMAIN=only right after the switch
# step instead of the domU steps (see driver_domain_steps).
#
# Network: 10.99.0.0/24. dom0 is 10.99.0.1 on xt-d0p, a veth whose peer
# xt-d0 is a port of br0 (xennetd: a Linux device port through AF_PACKET;
# kernel mode: a Linux bridge port). domU N is 10.99.0.1N, mac
# 00:16:3e:00:00:1N; its agent listens on TCP port 7000.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
SHARE=/mnt/share
# shellcheck disable=SC1091
. $SHARE/config
MODE=${MODE:-xennetd}
LOGS=$SHARE/logs
mkdir -p $LOGS
: >$SHARE/results
FAILS=0
RUNDIR=/run/openvswitch
XL=/usr/lib/xen-4.17/bin/xl

ts() {
    local up _
    read -r up _ </proc/uptime
    echo "$up"
}
T_LAST=$(ts)
# elapsed: sets T to the seconds since the previous PASS/FAIL line
elapsed() {
    local now
    now=$(ts)
    T="${now%.*}"
    T="$((T - ${T_LAST%.*})) s"
    T_LAST=$now
}
say() { echo "XT: [$(ts)s] $*"; }
pass() {
    local t
    elapsed
    t=$T
    echo "XT: PASS $1${2:+ ($2)} [$t]"
    echo "PASS $1${2:+ ($2)} [$t]" >>$SHARE/results
}
fail() {
    local t
    elapsed
    t=$T
    FAILS=$((FAILS + 1))
    echo "XT: FAIL $1: $2 [$t]"
    echo "FAIL $1: $2 [$t]" >>$SHARE/results
}
skip() {
    echo "XT: SKIP $1: $2"
    echo "SKIP $1: $2" >>$SHARE/results
}
# fatal STEP WHY: a step the rest depends on failed; dump and stop.
fatal() {
    fail "$1" "$2"
    dump_logs
    echo "XT: DONE fails=$FAILS (stopped after $1)"
    exit 1
}

# Logs for the host: domU consoles, xennetd, xl, xenstore.
dump_logs() {
    cp /var/log/xennetd.log $LOGS/ 2>/dev/null
    cp /var/log/xen/console/guest-*.log $LOGS/ 2>/dev/null
    cp /var/log/xen/*.log $LOGS/ 2>/dev/null
    cp /tmp/*.log $LOGS/ 2>/dev/null
    cp /var/log/xennetd.log /var/log/ovsdb-server.log $LOGS/ 2>/dev/null
    xenstore-ls -fp >$LOGS/xenstore.txt 2>&1
    $XL list >$LOGS/xl-list.txt 2>&1
    dmesg >$LOGS/dom0-dmesg.txt 2>&1
    if [ "$MODE" = xennetd ]; then
        $SHARE/bin/xennet-appctl --rundir $RUNDIR xennet/vif-show >$LOGS/vif-show.txt 2>&1
        ovs-vsctl --timeout=5 show >$LOGS/ovs-vsctl-show.txt 2>&1
    fi
    sync
}

# dom0-init's time limit (timeout -k 5: SIGTERM, 5 s later SIGKILL): the
# logs first (bash runs the trap when the current command ends)
trap 'echo "XT: [$(ts)s] SIGTERM: dumping logs"; dump_logs; exit 124' TERM

# wait_for SECONDS CMD...: retry CMD every second; status of the last try.
wait_for() {
    local n=$1 i=0
    shift
    while [ $i -lt $n ]; do
        "$@" >/dev/null 2>&1 && return 0
        sleep 1
        i=$((i + 1))
    done
    "$@" >/dev/null 2>&1
}

# agent IP SECONDS CMD: run CMD in the domU at IP; output on stdout;
# status 0 iff the command's status was 0.
agent() {
    local out i
    for i in 1 2 3 4 5; do
        out=$(echo "$3" | timeout "$2" nc "$1" 7000 2>&1)
        # the agent's listener is respawned by init after a "killall nc"
        case $out in *"Connection refused"*) sleep 1 ;; *) break ;; esac
    done
    echo "$out" | grep -v '^AGENT-RC '
    echo "$out" | grep -q '^AGENT-RC 0$'
}

# domid NAME: from xenstore (an xl call costs seconds under TCG)
domid() {
    local d
    for d in $(xenstore-list /local/domain 2>/dev/null); do
        [ "$(xenstore-read /local/domain/$d/name 2>/dev/null)" = "$1" ] && { echo "$d"; return 0; }
    done
    return 1
}
console_log() { echo "/var/log/xen/console/guest-$1.log"; }
# vif_state DOMID DEVID [BACKEND-DOMID]: "backend/frontend/hotplug-status"
vif_state() {
    local be=/local/domain/${3:-0}/backend/vif/$1/$2
    echo "$(xenstore-read $be/state 2>/dev/null)/$(xenstore-read /local/domain/$1/device/vif/$2/state 2>/dev/null)/$(xenstore-read $be/hotplug-status 2>/dev/null)"
}
vif_connected() { [ "$(vif_state "$1" "$2" "${3:-0}")" = "4/4/connected" ]; }

vifspec() {
    if [ "$MODE" = xennetd ]; then
        echo "script=vif-xennet,bridge=br0,mac=00:16:3e:00:00:1$1"
    else
        echo "bridge=br0,mac=00:16:3e:00:00:1$1"
    fi
}

# vCPUs per domU: xen-netfront opens min(online vCPUs, the backend's
# multi-queue-max-queues) queues, so 2 vCPUs give each vif 2 queues (the
# multi-queue step). Xen overcommits them on dom0's 2 emulated CPUs.
DOMU_VCPUS=2
# create_domu N: xl create domuN (its vif connects later: connected_domu N).
create_domu() {
    local n=$1 name=domu$1
    cat >/etc/xen/$name.cfg <<EOF
name = "$name"
type = "pv"
kernel = "/boot/vmlinux"
ramdisk = "/boot/domu-initrd.gz"
extra = "console=hvc0 loglevel=5 xt.name=$name xt.ip=10.99.0.1$n/24"
memory = 256
vcpus = $DOMU_VCPUS
vif = [ '$(vifspec "$n")' ]
on_crash = "preserve"
EOF
    : >"$(console_log $name)" 2>/dev/null
    if ! timeout 120 $XL -vvv create /etc/xen/$name.cfg >/tmp/xl-create-$name.log 2>&1; then
        tail -n 40 /tmp/xl-create-$name.log | sed 's/^/XT:   xl| /'
        return 1
    fi
}
# connected_domu N: wait for domuN's vif 0 to connect (both ends state 4, hotplug-status connected)
connected_domu() {
    local name=domu$1 id
    id=$(domid $name) || { say "$name does not exist"; return 1; }
    if ! wait_for 90 vif_connected "$id" 0; then
        say "$name (domid $id) vif 0 state backend/frontend/hotplug: $(vif_state "$id" 0)"
        return 1
    fi
}

# ping_ok FROM(dom0|IP) TO [SIZE]: 3 pings (after up to 30 s of retries).
ping_dom0() { wait_for 30 ping -c 1 -W 1 "$1" && ping -c 3 -W 2 ${2:+-s $2} "$1" >/dev/null; }
ping_domu() { agent "$1" 60 "i=0; while [ \$i -lt 30 ]; do ping -c 1 -W 1 $2 >/dev/null && break; i=\$((i+1)); done; ping -c 3 -W 2 ${3:+-s $3} $2" >/tmp/ping.out; }

# Leaks: what dom0 holds for guests. xennetd: its fds on /dev/xen/*, its
# gntdev mappings, the event channels bound through /dev/xen/evtchn (named
# "evtchn:<comm>" in /proc/interrupts). Kernel netback: vif devices and
# their interrupts. Both: backend/vif directories in xenstore.
snapshot() {
    local pid
    echo "backend-vif-domains: $(xenstore-list /local/domain/0/backend/vif 2>/dev/null | sort | tr '\n' ' ')"
    echo "user-evtchns: $(grep -o 'evtchn:[^ ]*' /proc/interrupts | sort | uniq -c | tr -s ' ' | tr '\n' ' ')"
    if [ "$MODE" = xennetd ]; then
        pid=$(cat $RUNDIR/ovs-vswitchd.pid 2>/dev/null)
        echo "xennetd-gntdev-maps: $(grep -c /dev/xen/gntdev /proc/$pid/maps 2>/dev/null)"
        echo "xennetd-fds: $(ls -l /proc/$pid/fd 2>/dev/null | grep -o '/dev/xen/[a-z]*' | sort | uniq -c | tr -s ' ' | tr '\n' ' ')"
    else
        echo "vif-netdevs: $(ls /sys/class/net | grep -c '^vif')"
        echo "vif-irqs: $(grep -c ' vif' /proc/interrupts)"
    fi
}
# same_as STEP BASELINE: compare snapshot to BASELINE, retrying 20 s (cleanup is asynchronous)
same_as() {
    local i=0 now
    while [ $i -lt 40 ]; do
        now=$(snapshot)
        [ "$now" = "$2" ] && return 0
        sleep 0.5
        i=$((i + 1))
    done
    fail "$1" "dom0 still holds guest resources: expected [$(echo "$2" | tr '\n' ';')] got [$(echo "$now" | tr '\n' ';')]"
    return 1
}

# vif_counters STEP: xennetd's per-port counters, to the console and $LOGS
vif_counters() {
    [ "$MODE" = xennetd ] || return 0
    $SHARE/bin/xennet-appctl --rundir $RUNDIR xennet/vif-show >$LOGS/vif-show-$1.txt 2>&1
    sed "s/^/XT:   $1 vif-show| /" $LOGS/vif-show-$1.txt
}
# on HOST SECONDS CMD: run CMD in dom0 ("dom0") or in the domU at HOST (an IP)
on() {
    if [ "$1" = dom0 ]; then
        timeout "$2" sh -c "$3" 2>&1
    else
        agent "$1" "$2" "$3"
    fi
}
# tcp_transfer STEP SRC DST MB SECONDS: MB MiB of random data from SRC (dom0
# or an IP) to the domU at DST over busybox nc within SECONDS, md5 compared;
# on failure the bytes that arrived. (busybox nc -l does not exit when the
# sender closes while its own stdin is open, so the receiver's file is
# watched until it has every byte.)
tcp_transfer() {
    local step=$1 src=$2 dst=$3 mb=$4 limit=$5 t0 t1 tx rx bytes=$(($4 * 1048576)) got
    on "$dst" 20 "killall nc 2>/dev/null; rm -f /tmp/rx.bin; (sleep 900 | nc -l -p 5001 > /tmp/rx.bin) </dev/null >/dev/null 2>&1 &" >/dev/null ||
        { fail "$step" "cannot start the receiver in $dst"; return 1; }
    on "$src" 120 "dd if=/dev/urandom of=/tmp/blob bs=1M count=$mb 2>/dev/null && md5sum /tmp/blob > /tmp/tx.sum" >/dev/null ||
        { fail "$step" "cannot make the data in $src"; return 1; }
    say "$step: $mb MiB ready in $src, sending"
    t0=$(date +%s.%N)
    on "$src" "$limit" "nc $dst 5001 < /tmp/blob" >/tmp/nc.out
    wait_for "$limit" on "$dst" 10 "[ \$(wc -c < /tmp/rx.bin) -ge $bytes ]"
    t1=$(date +%s.%N)
    got=$(on "$dst" 20 "wc -c < /tmp/rx.bin")
    tx=$(on "$src" 20 "cut -d' ' -f1 /tmp/tx.sum")
    rx=$(on "$dst" 60 "md5sum < /tmp/rx.bin | cut -d' ' -f1")
    if [ -n "$tx" ] && [ "$tx" = "$rx" ]; then
        pass "$step" "$mb MiB in $(awk -v a="$t0" -v b="$t1" -v m="$mb" 'BEGIN{printf "%.1f s, %.1f Mbit/s", b-a, m*8*1.048576/(b-a)}'), md5 $tx equal"
    else
        fail "$step" "$dst has $got of $bytes bytes ${limit} s after the start, md5 sent '$tx' received '$rx'; nc: $(tr '\n' ' ' </tmp/nc.out) $dst: $(on "$dst" 20 "grep eth0 /proc/net/dev" | tr -s ' \n' '  ')"
        vif_counters "$step"
    fi
    on "$dst" 20 "killall nc; rm -f /tmp/rx.bin" >/dev/null
    on "$src" 20 "killall nc; rm -f /tmp/blob" >/dev/null
    [ -n "$tx" ] && [ "$tx" = "$rx" ]
}
# ---------------------------------------------------------------- Xen up
say "mode $MODE"
for m in xen-evtchn xen-gntdev xen-gntalloc xen-privcmd xenfs bridge veth tun; do
    modprobe $m || fatal xen-up "modprobe $m failed"
done
if [ "$MODE" = kernel ]; then
    modprobe xen-netback || fatal xen-up "modprobe xen-netback failed"
else
    # nothing may load the in-kernel backend behind xennetd's back
    rm -f /lib/modules/*/kernel/drivers/net/xen-netback/xen-netback.ko
fi
mount -t xenfs xenfs /proc/xen || fatal xen-up "mount xenfs failed"
/usr/lib/xen-4.17/bin/xenstored --pid-file /run/xenstored.pid || fatal xen-up "xenstored failed"
wait_for 20 xenstore-read -s / || fatal xen-up "xenstored does not answer"
/usr/lib/xen-4.17/bin/xen-init-dom0 >/tmp/xen-init-dom0.log 2>&1 || fatal xen-up "xen-init-dom0 failed: $(tail -1 /tmp/xen-init-dom0.log)"
/usr/lib/xen-4.17/bin/xenconsoled --pid-file=/run/xenconsoled.pid --log=guest --log-dir=/var/log/xen/console ||
    fatal xen-up "xenconsoled failed"
pass xen-up "$($XL info | awk '/^xen_version/{print "xen " $3}'), dom0 $(uname -r), $(cat /proc/xen/capabilities)"

# ---------------------------------------------------------------- switch
ip link add xt-d0 type veth peer name xt-d0p || fatal switch "ip link add veth failed"
ip link set xt-d0 up
ip addr add 10.99.0.1/24 dev xt-d0p
ip link set xt-d0p up
if [ "$MODE" = kernel ]; then
    ip link add name br0 type bridge stp_state 0 forward_delay 0 &&
        ip link set br0 up && ip link set xt-d0 master br0 || fatal switch "Linux bridge br0 failed"
    pass switch "Linux bridge br0 + xen-netback, dom0 port xt-d0"
else
    { cp $SHARE/vif-xennet /etc/xen/scripts/vif-xennet && chmod 0755 /etc/xen/scripts/vif-xennet; } ||
        fatal switch "cannot install vif-xennet into /etc/xen/scripts"
    ovsdb-tool create /etc/openvswitch/conf.db /usr/share/openvswitch/vswitch.ovsschema ||
        fatal switch "ovsdb-tool create failed"
    ovsdb-server --remote=punix:$RUNDIR/db.sock --pidfile=$RUNDIR/ovsdb-server.pid --detach \
        --log-file=/var/log/ovsdb-server.log /etc/openvswitch/conf.db || fatal switch "ovsdb-server failed"
    ovs-vsctl --no-wait init || fatal switch "ovs-vsctl init failed"
    start_xennetd() {
        # shellcheck disable=SC2086
        setsid $SHARE/bin/xennetd --rundir $RUNDIR --db unix:$RUNDIR/db.sock --config $SHARE/xennetd.toml $XENNETD_ARGS \
            --log-file /var/log/xennetd.log </dev/null >>/tmp/xennetd-stdout.log 2>&1 &
        wait_for 30 $SHARE/bin/xennet-appctl --rundir $RUNDIR version
    }
    start_xennetd || fatal switch "xennetd does not answer on $RUNDIR: $(tail -5 /var/log/xennetd.log /tmp/xennetd-stdout.log 2>/dev/null | tr '\n' ' ')"
    timeout 60 ovs-vsctl --timeout=30 add-br br0 -- add-port br0 xt-d0 >/tmp/vsctl.log 2>&1 ||
        fatal switch "ovs-vsctl add-br/add-port failed: $(cat /tmp/vsctl.log)"
    [ -d /sys/module/xen_netback ] && fatal switch "xen-netback is loaded"
    pass switch "xennetd $($SHARE/bin/xennet-appctl --rundir $RUNDIR version | head -1) on ovsdb-server, dom0 port xt-d0, no xen-netback"
fi

BASE0=$(snapshot)

# ---------------------------------------------------------------- driver domain
# nicdom: a PV domU with driver_domain=1 (1 vCPU) whose initramfs
# (tests/xen/nicdom-rcS) runs ovsdb-server, xennetd in real Xen mode (its
# backend directory /local/domain/<nicdom>/backend/vif, gntdev and evtchn
# with a domU's privileges, hotplug = "script") and `xl devd`, which runs
# vif-xennet there. Its eth0 (10.99.0.20, an agent) and eth1 are vifs from
# dom0's br0; eth1 is the uplink port of its bridge nbr0 (port security off
# for it in dom0: it carries the client's MAC). The client domU
# (10.99.0.31) has vif=['backend=nicdom,...'] on nbr0 and reaches dom0
# through nicdom.
ND_IP=10.99.0.20
CL_IP=10.99.0.31
# nd_logs: the driver domain's logs into $LOGS/nicdom-*.log (through its agent)
nd_logs() {
    local f
    for f in xennetd xennetd-stdout xl-devd ovsdb-server xenstore-watch; do
        agent $ND_IP 20 "cat /var/log/$f.log" >$LOGS/nicdom-$f.log 2>&1
    done
    agent $ND_IP 20 "pid=\$(cat /run/openvswitch/ovs-vswitchd.pid); for t in /proc/\$pid/task/*; do echo \"thread \$(cat \$t/comm) wchan \$(cat \$t/wchan)\"; cat \$t/stack | head -n 8; done" >$LOGS/nicdom-xennetd-threads.log 2>&1
    agent $ND_IP 20 "dmesg | tail -n 60; ls -l /dev/xen; xenstore-ls -fp /local/domain/\$(xenstore-read domid) 2>&1 | grep -E 'backend|libxl' | head -n 60" >$LOGS/nicdom-dmesg.log 2>&1
    cp "$(console_log nicdom)" $LOGS/nicdom-console.log 2>/dev/null
    cp "$(console_log client)" $LOGS/nicdom-client-console.log 2>/dev/null
}
# nd_fail STEP WHY: fail, then what dom0 and nicdom saw: the consoles, the
# vif's xenstore nodes, the logs of xennetd and xl devd in nicdom
nd_fail() {
    local cl
    fail "$1" "$2"
    nd_logs
    grep -a 'XTNIC' $LOGS/nicdom-console.log 2>/dev/null | tail -n 15 | sed 's/^/XT:   nicdom console| /'
    grep -aE 'XTDOMU|netfront|xenbus' $LOGS/nicdom-client-console.log 2>/dev/null | tail -n 10 | sed 's/^/XT:   client console| /'
    if cl=$(domid client); then
        xenstore-ls -fp /local/domain/$ND/backend/vif/$cl 2>&1 | grep -E '/(state|hotplug-status|hotplug-error|online|script|bridge) ' | sed 's/^/XT:   backend| /'
        xenstore-read /local/domain/$ND/error/backend/vif/$cl/0/error 2>/dev/null | sed 's/^/XT:   backend error| /'
        xenstore-ls -fp /local/domain/$cl/device/vif 2>&1 | grep -E '/(state|backend-id) ' | sed 's/^/XT:   frontend| /'
    fi
    tail -n 15 $LOGS/nicdom-xennetd.log 2>/dev/null | sed 's/^/XT:   nicdom xennetd| /'
    tail -n 15 $LOGS/nicdom-xl-devd.log 2>/dev/null | sed 's/^/XT:   nicdom xl devd| /'
    grep -v 'dpif\|netdev' $LOGS/nicdom-during-create.log 2>/dev/null | tail -n 30 | sed 's/^/XT:   nicdom during xl create| /'
    tail -n 15 $LOGS/nicdom-xenstore-watch.log 2>/dev/null | sed 's/^/XT:   nicdom xenstore-watch| /'
    grep -E '^thread|xenbus|futex' $LOGS/nicdom-xennetd-threads.log 2>/dev/null | head -n 40 | sed 's/^/XT:   nicdom xennetd threads| /'
}
# nd_wait_connected: the client's vif 0, backend in nicdom, connected
# (90 s), else why not and what to do
nd_wait_connected() {
    local cl st
    cl=$(domid client) || { nd_fail "$1" "the client domain does not exist"; return 1; }
    wait_for 90 vif_connected "$cl" 0 "$ND" && return 0
    st=$(vif_state "$cl" 0 "$ND")
    case $st in
    2/*/) nd_fail "$1" "vif $cl/0 state $st: the backend waits for hotplug-status, which no hotplug script wrote: is \`xl devd\` running in nicdom, and is script=vif-xennet in the vif spec?" ;;
    */error) nd_fail "$1" "vif $cl/0 state $st: vif-xennet failed in nicdom: $(xenstore-read /local/domain/$ND/backend/vif/$cl/0/hotplug-error 2>&1)" ;;
    /*) nd_fail "$1" "vif $cl/0 state $st: xennetd in nicdom never answered in /local/domain/$ND/backend/vif/$cl/0 (running? its domid? its xenstore watch?)" ;;
    *) nd_fail "$1" "vif $cl/0 state backend/frontend/hotplug $st after 90 s" ;;
    esac
    return 1
}
create_client() {
    cat >/etc/xen/client.cfg <<EOF
name = "client"
type = "pv"
kernel = "/boot/vmlinux"
ramdisk = "/boot/domu-initrd.gz"
extra = "console=hvc0 loglevel=5 xt.name=client xt.ip=$CL_IP/24"
memory = 128
vcpus = 1
vif = [ 'backend=nicdom,script=vif-xennet,bridge=nbr0,mac=00:16:3e:00:00:31' ]
on_crash = "preserve"
EOF
    : >"$(console_log client)" 2>/dev/null
    # what nicdom sees while the toolstack waits for its backend (kept for a failure report)
    (sleep 8; agent $ND_IP 30 "xenstore-ls -fp /local/domain/\$(xenstore-read domid)/backend 2>&1 | head -n 30; tail -n 20 /var/log/xennetd.log" >$LOGS/nicdom-during-create.log 2>&1) &
    timeout 120 $XL -vvv create /etc/xen/client.cfg >/tmp/xl-create-client.log 2>&1 && return 0
    tail -n 30 /tmp/xl-create-client.log | sed 's/^/XT:   xl| /'
    return 1
}
nd_snapshot() { agent $ND_IP 30 xt-snapshot; }
# nd_same_as STEP BASELINE: nicdom's snapshot back at BASELINE (20 s), else fail
nd_same_as() {
    local i=0 now
    while [ $i -lt 20 ]; do
        now=$(nd_snapshot)
        [ "$now" = "$2" ] && return 0
        sleep 1
        i=$((i + 1))
    done
    nd_fail "$1" "nicdom still holds guest resources: expected [$(echo "$2" | tr '\n' ';')] got [$(echo "$now" | tr '\n' ';')]"
    return 1
}
driver_domain_steps() {
    local cl cl2 nd_base nd_one
    if [ "$MODE" != xennetd ]; then
        skip driver-domain "kernel-netback mode"
        return 0
    fi
    [ -r $SHARE/nicdom-initrd.gz ] || { fail driver-domain "$SHARE/nicdom-initrd.gz is missing (scripts/test-xen builds it)"; return 1; }
    cat >/etc/xen/nicdom.cfg <<EOF
name = "nicdom"
type = "pv"
kernel = "/boot/vmlinux"
ramdisk = "$SHARE/nicdom-initrd.gz"
extra = "console=hvc0 loglevel=5 xt.name=nicdom xt.ip=$ND_IP/24"
memory = 256
vcpus = 1
driver_domain = 1
vif = [ 'script=vif-xennet,bridge=br0,mac=00:16:3e:00:00:20', 'script=vif-xennet,bridge=br0,mac=00:16:3e:00:00:21' ]
on_crash = "preserve"
EOF
    : >"$(console_log nicdom)" 2>/dev/null
    if ! timeout 120 $XL -vvv create /etc/xen/nicdom.cfg >/tmp/xl-create-nicdom.log 2>&1; then
        tail -n 30 /tmp/xl-create-nicdom.log | sed 's/^/XT:   xl| /'
        fail driver-domain-up "xl create nicdom failed (see the xl log above)"
        return 1
    fi
    ND=$(domid nicdom)
    if ! wait_for 90 vif_connected "$ND" 0 || ! wait_for 30 vif_connected "$ND" 1; then
        nd_fail driver-domain-up "nicdom's vifs on dom0's br0 do not connect: $(vif_state "$ND" 0) $(vif_state "$ND" 1)"
        return 1
    fi
    timeout 60 ovs-vsctl --timeout=30 set interface vif$ND.1 other_config:xennet-port-security=false >/tmp/vsctl.log 2>&1 ||
        { nd_fail driver-domain-up "ovs-vsctl set interface vif$ND.1 other_config:xennet-port-security=false: $(cat /tmp/vsctl.log)"; return 1; }
    if ! wait_for 240 grep -qa -e 'XTNIC: READY' -e 'XTNIC: FAIL' "$(console_log nicdom)" ||
        grep -qa 'XTNIC: FAIL' "$(console_log nicdom)"; then
        nd_fail driver-domain-up "nicdom did not get ready: $(grep -a 'XTNIC: FAIL' "$(console_log nicdom)" | head -n 3 | tr -d '\r' | tr '\n' ' ')"
        return 1
    fi
    pass driver-domain-up "nicdom domid $ND: $(grep -a 'XTNIC: READY' "$(console_log nicdom)" | tr -d '\r' | sed 's/.*XTNIC: //')"
    nd_base=$(nd_snapshot)
    say "nicdom before the client: [$(echo "$nd_base" | tr '\n' ';')]"
    create_client || { nd_fail driver-domain-client "xl create client (vif backend=nicdom) failed"; return 1; }
    nd_wait_connected driver-domain-client || return 1
    cl=$(domid client)
    nd_one=$(nd_snapshot)
    pass driver-domain-client "client domid $cl, vif /local/domain/$ND/backend/vif/$cl/0 state 4/4 hotplug-status connected (vif-xennet run by xl devd in nicdom); nicdom: [$(echo "$nd_one" | tr '\n' ';')]"
    if ping_dom0 $CL_IP && wait_for 60 grep -q 'client PING-DOM0 OK' "$(console_log client)"; then
        pass driver-domain-ping "dom0 <-> client through xennetd in nicdom"
    else
        nd_fail driver-domain-ping "no ping dom0 -> $CL_IP, or no 'client PING-DOM0 OK' on the client's console"
        return 1
    fi
    tcp_transfer driver-domain-tcp-dom0-to-client dom0 $CL_IP 1 120 || nd_fail driver-domain-tcp "(the transfer's failure is above)"
    timeout 60 $XL destroy client >/tmp/xl-destroy.log 2>&1 || fail driver-domain-destroy "xl destroy client: $(tr '\n' ' ' </tmp/xl-destroy.log)"
    if nd_same_as driver-domain-destroy-no-leak "$nd_base"; then
        pass driver-domain-destroy-no-leak "nicdom back to [$(echo "$nd_base" | tr '\n' ';')]"
    fi
    if create_client && nd_wait_connected driver-domain-recreate && ping_dom0 $CL_IP; then
        cl2=$(domid client)
        if [ "$(nd_snapshot | grep -v backend-vif-domains)" = "$(echo "$nd_one" | grep -v backend-vif-domains)" ]; then
            pass driver-domain-recreate "client domid $cl2 connected and answers; nicdom holds what it held for the first client"
        else
            nd_fail driver-domain-recreate "nicdom with the first client [$(echo "$nd_one" | tr '\n' ';')], with the second [$(nd_snapshot | tr '\n' ';')]"
        fi
        timeout 60 $XL destroy client >/tmp/xl-destroy.log 2>&1
        nd_same_as driver-domain-recreate-no-leak "$nd_base" && pass driver-domain-recreate-no-leak
    else
        nd_fail driver-domain-recreate "the client created again does not connect or answer"
    fi
    nd_logs
    timeout 60 $XL destroy client >/dev/null 2>&1
    timeout 60 $XL destroy nicdom >/tmp/xl-destroy.log 2>&1 || fail driver-domain-down "xl destroy nicdom: $(tr '\n' ' ' </tmp/xl-destroy.log)"
    wait_for 20 sh -c "! xenstore-exists /local/domain/0/backend/vif/$ND" ||
        fail driver-domain-down "dom0's backend/vif/$ND remains after xl destroy nicdom"
}
if [ "${DRIVER_DOMAIN:-0}" = only ]; then
    driver_domain_steps
    dump_logs
    echo "XT: DONE fails=$FAILS (--driver-domain-only)"
    [ $FAILS = 0 ]
    exit
fi

# dom0 runs the backend for every domU, as real hosts do it gets a larger
# share of the CPUs than a domU (Xen's performance tuning advice; credit2's
# default weight is 256): with 2-vCPU domUs on 2 emulated CPUs it would
# otherwise wait behind them and their TCP sees late ACKs.
$XL sched-credit2 -d Domain-0 -w 1024 >/tmp/xl-sched.log 2>&1 ||
    echo "note: xl sched-credit2 failed: $(tr '\n' ' ' </tmp/xl-sched.log)"

# ---------------------------------------------------------------- domUs
# both domUs boot at the same time; the domu1-only baseline comes from xl destroy below
create_domu 1 || fatal create-domu1 "xl create domu1 failed (see xl log above)"
create_domu 2 || fatal create-domu2 "xl create domu2 failed (see xl log above)"
connected_domu 1 || fatal create-domu1 "domu1's vif does not connect"
pass create-domu1 "domid $(domid domu1), vif 0 state 4/4, hotplug-status connected"
connected_domu 2 || fatal create-domu2 "domu2's vif does not connect"
pass create-domu2 "domid $(domid domu2)"

if ping_dom0 10.99.0.11 && ping_dom0 10.99.0.12; then pass ping-dom0-to-domu; else fail ping-dom0-to-domu "dom0 cannot ping 10.99.0.11/12"; fi
if wait_for 60 grep -q 'domu1 PING-DOM0 OK' "$(console_log domu1)" &&
    wait_for 30 grep -q 'domu2 PING-DOM0 OK' "$(console_log domu2)"; then
    pass ping-domu-to-dom0
else
    fail ping-domu-to-dom0 "no 'PING-DOM0 OK' on the domU consoles"
fi
if agent 10.99.0.11 20 true >/dev/null 2>&1; then pass agent "the domU command channel (nc on TCP 7000) works"; else fatal agent "domu1's agent does not answer"; fi
if ping_domu 10.99.0.11 10.99.0.12 && ping_domu 10.99.0.12 10.99.0.11; then
    pass ping-domu1-domu2
else
    fail ping-domu1-domu2 "$(tr '\n' ' ' </tmp/ping.out)"
fi

# offloads as the domU netfront negotiated them (its defaults)
D1=$(domid domu1)
say "domu1 netfront: $(xenstore-ls /local/domain/$D1/device/vif/0 2>/dev/null | grep -E '^(feature|multi|request)' | tr -d '"' | tr -s ' \n' '  ')"

# tcp_diag IP: the domU's TCP loss counters since its boot (/proc/net/snmp
# and netstat) and, with xennetd, the counters of its vif (a slow transfer
# is then loss and timeouts, or not)
tcp_diag() {
    local c d
    c=$(on "$1" 20 "cat /proc/net/snmp /proc/net/netstat" | awk '/^(Tcp|TcpExt):/ {
        if (!($1 in hdr)) { hdr[$1] = 1; for (i = 2; i <= NF; i++) h[$1, i] = $i } else for (i = 2; i <= NF; i++) v[h[$1, i]] = $i }
        END { n = split("OutSegs RetransSegs TCPTimeouts TCPLossProbes TCPFastRetrans TCPSpuriousRTOs TCPOFOQueue TCPDSACKRecv", k, " ")
              for (i = 1; i <= n; i++) printf "%s=%s ", k[i], v[k[i]] }')
    say "$1 tcp: $c"
    if [ "$MODE" = xennetd ]; then
        d=$(domid "domu${1##*.1}")
        say "$1 vif$d.0: $($SHARE/bin/xennet-appctl --rundir $RUNDIR xennet/vif-stats "vif$d.0" 2>&1 | tr -d ' \n')"
    fi
}
tcp_ok=1
tcp_transfer tcp-1MiB-dom0-to-domu1 dom0 10.99.0.11 1 60 || tcp_ok=0
tcp_transfer tcp-1MiB-domu1-to-domu2 10.99.0.11 10.99.0.12 1 60 || tcp_ok=0
if [ $tcp_ok = 1 ]; then
    tcp_transfer tcp-50MiB-domu1-to-domu2 10.99.0.11 10.99.0.12 50 240
    tcp_diag 10.99.0.11
    tcp_diag 10.99.0.12
else
    fail tcp-50MiB-domu1-to-domu2 "not run: TCP fails with 1 MiB already"
    # diagnosis: the same with the senders' and receivers' offloads off
    # (no GSO, no checksum offload, no SG: every frame one complete packet)
    for h in 10.99.0.11 10.99.0.12; do
        say "diag: $h: $(on $h 20 'ethtool -K eth0 tso off gso off sg off tx off rx off 2>&1; ethtool -k eth0 | grep -E "^(tx-checksumming|scatter-gather|tcp-segmentation-offload|generic-segmentation-offload|rx-checksumming):"' | tr -s ' \n' '  ')"
    done
    ethtool -K xt-d0p tso off gso off sg off tx off >/dev/null 2>&1
    tcp_transfer diag-tcp-1MiB-dom0-to-domu1-offloads-off dom0 10.99.0.11 1 60
    tcp_transfer diag-tcp-1MiB-domu1-to-domu2-offloads-off 10.99.0.11 10.99.0.12 1 60
fi

# ---------------------------------------------------------------- multi-queue
# Each domU has 2 vCPUs, so its netfront opens 2 queues (both backends
# offer more: xennetd 8, xen-netback dom0's 2 CPUs). 8 TCP streams each way
# between the domUs at once: netfront puts each flow on a TX queue by its
# socket hash, the backend each flow to the guest on an RX queue by its
# own hash (xennetd: Toeplitz of the 4-tuple, without a control-ring
# configuration), so every vif sees 16 flows each way and both queues
# carry packets unless all 16 hashed alike (2^-15 per check). Evidence:
# the domUs' per-queue interrupts (netfront's vif0-qN-tx: TX completions,
# vif0-qN-rx: RX responses; both modes) and xennetd's per-queue counters
# (xennet/vif-stats queue_rx_packets: from the guest, queue_tx_packets: to
# it), before and after; every stream's md5 compared; no fatal error.
MQ_QUEUES=2
MQ_STREAMS=8
MQ_KIB=256
# mq_xenstore DOMID: "" if the frontend wrote 2 queues, else why not
mq_xenstore() {
    local d=$1 fe=/local/domain/$1/device/vif/0 q n why=""
    n=$(xenstore-read $fe/multi-queue-num-queues 2>/dev/null)
    [ "$n" = $MQ_QUEUES ] || why="$fe/multi-queue-num-queues is '$n', not $MQ_QUEUES;"
    for q in $(seq 0 $((MQ_QUEUES - 1))); do
        xenstore-exists $fe/queue-$q/tx-ring-ref && xenstore-exists $fe/queue-$q/rx-ring-ref ||
            why="$why $fe/queue-$q has no tx-ring-ref/rx-ring-ref;"
        xenstore-exists $fe/queue-$q/event-channel-tx || xenstore-exists $fe/queue-$q/event-channel ||
            why="$why $fe/queue-$q has no event channel;"
    done
    xenstore-exists $fe/tx-ring-ref && why="$why $fe/tx-ring-ref exists next to queue-N (single-queue layout);"
    echo "$why"
}
# mq_irqs IP: the domU's netfront queue interrupts of vif 0 (netfront names
# them vif<devid>-q<N>-tx/-rx, split channels, or vif<devid>-q<N>) summed
# over its CPUs: "q0-rx=N q0-tx=N q1-rx=N ..."
mq_irqs() {
    on "$1" 20 "grep -E ' vif0-q[0-9]+(-tx|-rx)?\$' /proc/interrupts" |
        awk '$NF ~ /^vif0-q[0-9]+(-tx|-rx)?$/ { s = 0; for (i = 2; i <= NF && $i ~ /^[0-9]+$/; i++) s += $i; n = $NF; sub(/^vif0-/, "", n); print n "=" s }' |
        sort | tr '\n' ' '
}
# mq_stats DOMID: xennet/vif-stats of vif<DOMID>.0 on one line
mq_stats() { $SHARE/bin/xennet-appctl --rundir $RUNDIR xennet/vif-stats "vif$1.0" 2>&1 | tr -d ' \n'; }
# mq_field JSON KEY: a number or the members of an array (comma-separated)
mq_field() { echo "$1" | sed -n -e "s/.*\"$2\":\[\([0-9,]*\)\].*/\1/p" -e "t" -e "s/.*\"$2\":\([0-9][0-9]*\).*/\1/p"; }
# mq_grew NAME BEFORE AFTER: "" if every one of the MQ_QUEUES comma-separated
# counters grew, else why not
mq_grew() {
    awk -v name="$1" -v b="$2" -v a="$3" -v nq=$MQ_QUEUES 'BEGIN {
        nb = split(b, B, ","); na = split(a, A, ",")
        if (na != nq) { printf "%s has %d queues ([%s]), not %d; ", name, na, a, nq; exit }
        for (i = 1; i <= nq; i++) if (A[i] + 0 <= B[i] + 0) printf "%s queue %d did not grow ([%s] -> [%s]); ", name, i - 1, b, a
    }'
}
# mq_irq_grew NAME BEFORE AFTER: "" if every queue interrupt of vif 0 grew, else why not
mq_irq_grew() {
    awk -v ip="$1" -v b="$2" -v a="$3" -v nq=$MQ_QUEUES 'BEGIN {
        nb = split(b, B, " "); for (i = 1; i <= nb; i++) { split(B[i], kv, "="); before[kv[1]] = kv[2] }
        na = split(a, A, " "); nl = 0; seen = ""
        for (i = 1; i <= na; i++) {
            split(A[i], kv, "="); q = kv[1]; sub(/-.*/, "", q); if (index(seen, " " q " ") == 0) { seen = seen " " q " "; nl++ }
            if (kv[2] + 0 <= before[kv[1]] + 0) printf "%s vif0-%s interrupts did not grow (%d -> %d); ", ip, kv[1], before[kv[1]], kv[2]
        }
        if (nl != nq) printf "%s has %d netfront queues in /proc/interrupts ([%s]), not %d; ", ip, nl, a, nq
    }'
}
# mq_vif_check DOMID BEFORE AFTER (vif-stats): "" if vif<DOMID>.0 has 2
# queues, no fatal error and packets on every queue both ways, else why not
mq_vif_check() {
    local v=vif$1.0
    [ "$(mq_field "$3" queues)" = $MQ_QUEUES ] || echo -n " $v vif-stats queues is '$(mq_field "$3" queues)': $3;"
    [ "$(mq_field "$3" fatal_errors)" = 0 ] || echo -n " $v fatal_errors '$(mq_field "$3" fatal_errors)';"
    mq_grew "$v queue_rx_packets" "$(mq_field "$2" queue_rx_packets)" "$(mq_field "$3" queue_rx_packets)"
    mq_grew "$v queue_tx_packets" "$(mq_field "$2" queue_tx_packets)" "$(mq_field "$3" queue_tx_packets)"
}
mq_vif_detail() {
    echo "vif$1.0 queue_rx_packets [$(mq_field "$2" queue_rx_packets)] -> [$(mq_field "$3" queue_rx_packets)] queue_tx_packets [$(mq_field "$2" queue_tx_packets)] -> [$(mq_field "$3" queue_tx_packets)]"
}
mq_step() {
    local why="" d ip irq0_1 irq0_2 irq1_1 irq1_2 st0_1 st0_2 st1_1 st1_2 p bytes=$((MQ_KIB * 1024)) sum1 sum2 sums t0 t1
    local ports1="" ports2="" i
    for d in $D1 $D2; do why="$why$(mq_xenstore "$d")"; done
    [ -z "$why" ] || { fail multi-queue "xenstore: $why"; xenstore-ls -f /local/domain/$D1/device/vif/0 | sed 's/^/XT:   /'; return 1; }
    for i in $(seq 1 $MQ_STREAMS); do ports1="$ports1 $((5010 + i))"; ports2="$ports2 $((5020 + i))"; done
    # receivers: domu2 on 5011.. (from domu1), domu1 on 5021.. (from domu2)
    on 10.99.0.12 20 "rm -f /tmp/mq-*.bin; for p in $ports1; do (sleep 600 | nc -l -p \$p > /tmp/mq-\$p.bin) </dev/null >/dev/null 2>&1 & done" >/dev/null &&
        on 10.99.0.11 20 "rm -f /tmp/mq-*.bin; for p in $ports2; do (sleep 600 | nc -l -p \$p > /tmp/mq-\$p.bin) </dev/null >/dev/null 2>&1 & done" >/dev/null ||
        { fail multi-queue "cannot start the receivers"; return 1; }
    sum1=$(on 10.99.0.11 60 "dd if=/dev/urandom of=/tmp/mq.blob bs=1k count=$MQ_KIB 2>/dev/null && md5sum < /tmp/mq.blob | cut -d' ' -f1")
    sum2=$(on 10.99.0.12 60 "dd if=/dev/urandom of=/tmp/mq.blob bs=1k count=$MQ_KIB 2>/dev/null && md5sum < /tmp/mq.blob | cut -d' ' -f1")
    [ ${#sum1} = 32 ] && [ ${#sum2} = 32 ] || { fail multi-queue "cannot make the data: '$sum1' '$sum2'"; return 1; }
    irq0_1=$(mq_irqs 10.99.0.11)
    irq0_2=$(mq_irqs 10.99.0.12)
    if [ "$MODE" = xennetd ]; then
        st0_1=$(mq_stats "$D1")
        st0_2=$(mq_stats "$D2")
    fi
    say "multi-queue: $MQ_STREAMS streams of $MQ_KIB KiB each way; before: domu1 irqs [$irq0_1] domu2 irqs [$irq0_2]"
    t0=$(date +%s.%N)
    on 10.99.0.11 20 "for p in $ports1; do (nc 10.99.0.12 \$p < /tmp/mq.blob) </dev/null >/dev/null 2>&1 & done" >/dev/null
    on 10.99.0.12 20 "for p in $ports2; do (nc 10.99.0.11 \$p < /tmp/mq.blob) </dev/null >/dev/null 2>&1 & done" >/dev/null
    for ip in 10.99.0.12 10.99.0.11; do
        wait_for 180 on "$ip" 10 "n=0; for f in /tmp/mq-*.bin; do [ \$(wc -c < \$f) -ge $bytes ] && n=\$((n+1)); done; [ \$n = $MQ_STREAMS ]"
    done
    t1=$(date +%s.%N)
    for ip in 10.99.0.12 10.99.0.11; do
        [ $ip = 10.99.0.12 ] && p=$sum1 || p=$sum2
        sums=$(on "$ip" 60 "md5sum /tmp/mq-*.bin")
        i=$(echo "$sums" | grep -c "^$p ")
        [ "$i" = $MQ_STREAMS ] ||
            why="$why $ip: $i of $MQ_STREAMS streams arrived with md5 $p: [$(echo "$sums" | tr '\n' ';')] sizes [$(on "$ip" 20 "wc -c /tmp/mq-*.bin" | tr -s ' \n' ' ')];"
    done
    irq1_1=$(mq_irqs 10.99.0.11)
    irq1_2=$(mq_irqs 10.99.0.12)
    why="$why$(mq_irq_grew domu1 "$irq0_1" "$irq1_1")$(mq_irq_grew domu2 "$irq0_2" "$irq1_2")"
    local detail="domu1 netfront irqs [$irq0_1] -> [$irq1_1], domu2 [$irq0_2] -> [$irq1_2]"
    if [ "$MODE" = xennetd ]; then
        st1_1=$(mq_stats "$D1")
        st1_2=$(mq_stats "$D2")
        why="$why$(mq_vif_check "$D1" "$st0_1" "$st1_1")$(mq_vif_check "$D2" "$st0_2" "$st1_2")"
        detail="$detail; $(mq_vif_detail "$D1" "$st0_1" "$st1_1"); $(mq_vif_detail "$D2" "$st0_2" "$st1_2")"
    else
        detail="$detail; no xennet/vif-stats in kernel-netback mode (xen-netback has no per-queue counters): interrupts only"
    fi
    say "multi-queue: $detail"
    on 10.99.0.11 20 "killall nc; rm -f /tmp/mq-*.bin /tmp/mq.blob" >/dev/null
    on 10.99.0.12 20 "killall nc; rm -f /tmp/mq-*.bin /tmp/mq.blob" >/dev/null
    if [ -z "$why" ]; then
        pass multi-queue "2 queues per vif in xenstore$([ "$MODE" = xennetd ] && echo " and vif-stats"); $MQ_STREAMS x $MQ_KIB KiB each way in $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b-a}') s, md5 equal, both queues used both ways: $detail"
    else
        fail multi-queue "$why ($detail)"
        vif_counters multi-queue
    fi
}
D2=$(domid domu2)
mq_step
tcp_diag 10.99.0.11
tcp_diag 10.99.0.12

# MTU 9000 on both domUs: an 8000-byte ping is one frame each way (kernel
# mode: xen-netback's vif devices are raised to 9000 as well)
if [ "$MODE" = kernel ]; then
    for v in /sys/class/net/vif*; do ip link set "${v##*/}" mtu 9000; done
fi
if agent 10.99.0.11 20 "ip link set eth0 mtu 9000" >/tmp/mtu.out && agent 10.99.0.12 20 "ip link set eth0 mtu 9000" >>/tmp/mtu.out; then
    if ping_domu 10.99.0.11 10.99.0.12 8000; then
        pass mtu-9000 "8000-byte pings domu1 -> domu2 with MTU 9000"
    else
        fail mtu-9000 "8000-byte ping failed: $(tr '\n' ' ' </tmp/ping.out)"
    fi
    agent 10.99.0.11 20 "ip link set eth0 mtu 1500" >/dev/null
    agent 10.99.0.12 20 "ip link set eth0 mtu 1500" >/dev/null
else
    fail mtu-9000 "the domU kernel refused MTU 9000: $(tr '\n' ' ' </tmp/mtu.out)"
fi

if [ "${QUICK:-0}" = 1 ]; then
    if [ "${DRIVER_DOMAIN:-0}" != 0 ]; then
        # room for nicdom and its client
        timeout 60 $XL destroy domu2 >/dev/null 2>&1
        timeout 60 $XL destroy domu1 >/dev/null 2>&1
        driver_domain_steps
    fi
    dump_logs
    echo "XT: DONE fails=$FAILS (--quick: no lifecycle steps)"
    [ $FAILS = 0 ]
    exit
fi

# ---------------------------------------------------------------- lifecycle
# network-detach / network-attach on domu1
if timeout 60 $XL network-detach domu1 0 >/tmp/xl-detach.log 2>&1 &&
    wait_for 20 sh -c "! xenstore-exists /local/domain/0/backend/vif/$D1/0"; then
    if ping -c 2 -W 1 10.99.0.11 >/dev/null 2>&1; then
        fail network-detach "10.99.0.11 still answers after detach"
    else
        pass network-detach "backend/vif/$D1/0 removed, domu1 unreachable"
    fi
else
    fail network-detach "xl network-detach: $(tr '\n' ' ' </tmp/xl-detach.log) state $(vif_state "$D1" 0)"
fi
# shellcheck disable=SC2046
if timeout 60 $XL network-attach domu1 $(vifspec 1 | tr ',' ' ') >/tmp/xl-attach.log 2>&1; then
    dev=$(xenstore-list /local/domain/0/backend/vif/$D1 2>/dev/null | tail -1)
    if wait_for 30 vif_connected "$D1" "$dev" && ping_dom0 10.99.0.11 && ping_domu 10.99.0.11 10.99.0.12; then
        pass network-attach "vif $D1/$dev connected, pings dom0 and domu2"
    else
        fail network-attach "vif $D1/$dev state $(vif_state "$D1" "$dev"), or no ping"
    fi
else
    fail network-attach "xl network-attach: $(tr '\n' ' ' </tmp/xl-attach.log)"
fi

# xl destroy domu2 and create it again: afterwards dom0 holds what it held before
counts() { snapshot | grep -v backend-vif-domains; }
S2=$(counts)
D2=$(domid domu2)
timeout 60 $XL destroy domu2 >/tmp/xl-destroy.log 2>&1 || fail destroy-domu2 "xl destroy: $(tr '\n' ' ' </tmp/xl-destroy.log)"
if wait_for 20 sh -c "! xenstore-exists /local/domain/0/backend/vif/$D2"; then
    S1=$(snapshot)
    pass destroy-domu2 "backend/vif/$D2 removed; dom0 with domu1 only: [$(echo "$S1" | tr '\n' ';')]"
else
    S1=$(snapshot)
    fail destroy-domu2 "backend/vif/$D2 still there: $(vif_state "$D2" 0)"
fi
if create_domu 2 && connected_domu 2 && ping_domu 10.99.0.11 10.99.0.12 && ping_dom0 10.99.0.12; then
    pass recreate-domu2 "domid $(domid domu2)"
    if [ "$(counts)" = "$S2" ]; then
        pass destroy-recreate-no-leak "dom0 holds what it held with the first domu2: [$(echo "$S2" | tr '\n' ';')]"
    else
        fail destroy-recreate-no-leak "before destroy [$(echo "$S2" | tr '\n' ';')], after create [$(counts | tr '\n' ';')]"
    fi
else
    fail recreate-domu2 "domu2 created again does not connect or answer"
fi

# domu2 shut down (xl shutdown: netfront closes) while domu1 streams TCP to it
agent 10.99.0.12 20 "(sleep 600 | nc -l -p 5002 > /dev/null) </dev/null >/dev/null 2>&1 &" >/dev/null
agent 10.99.0.11 20 "(dd if=/dev/zero bs=64k count=200000 2>/dev/null | nc 10.99.0.12 5002) </dev/null >/dev/null 2>&1 &" >/dev/null
sleep 2
if timeout 120 $XL shutdown -w domu2 >/tmp/xl-shutdown.log 2>&1; then
    same_as shutdown-under-traffic-no-leak "$S1" && pass shutdown-under-traffic-no-leak "clean shutdown while streaming; dom0 back to the domu1-only state"
else
    fail shutdown-under-traffic-no-leak "xl shutdown -w domu2 did not finish in 120 s: $(tr '\n' ' ' </tmp/xl-shutdown.log); vif $(vif_state "$(domid domu2)" 0)"
    timeout 60 $XL destroy domu2 >/dev/null 2>&1
fi
agent 10.99.0.11 20 "killall nc dd 2>/dev/null; true" >/dev/null

# xennetd restarted while domu1 runs
if [ "$MODE" = xennetd ]; then
    pid=$(cat $RUNDIR/ovs-vswitchd.pid 2>/dev/null)
    kill -TERM "$pid" 2>/dev/null
    wait_for 20 sh -c "! kill -0 $pid" || { say "xennetd $pid ignores SIGTERM, SIGKILL"; kill -KILL "$pid"; }
    say "after xennetd stopped: domu1 vif $D1/$dev $(vif_state "$D1" "$dev")"
    if start_xennetd; then
        if ping_dom0 10.99.0.11; then
            pass xennetd-restart "domu1's vif came back: $(vif_state "$D1" "$dev")"
        else
            fail xennetd-restart "after the restart: domu1 vif $(vif_state "$D1" "$dev"); no ping"
        fi
    else
        fail xennetd-restart "xennetd did not start again: $(tail -5 /var/log/xennetd.log | tr '\n' ' ')"
    fi
else
    skip xennetd-restart "kernel-netback mode"
fi

# all gone: dom0 holds nothing for guests
timeout 60 $XL destroy domu2 >/dev/null 2>&1
timeout 60 $XL destroy domu1 >/dev/null 2>&1
if [ "$MODE" = xennetd ]; then
    # after a restart the process differs; compare what depends on guests only
    wait_for 20 sh -c "[ -z \"\$(xenstore-list /local/domain/0/backend/vif 2>/dev/null)\" ]"
    if [ -z "$(xenstore-list /local/domain/0/backend/vif 2>/dev/null)" ] &&
        [ "$(snapshot | grep -E 'gntdev-maps|user-evtchns')" = "$(echo "$BASE0" | grep -E 'gntdev-maps|user-evtchns')" ]; then
        pass destroy-all-no-leak
    else
        fail destroy-all-no-leak "expected [$(echo "$BASE0" | tr '\n' ';')] got [$(snapshot | tr '\n' ';')]"
    fi
else
    same_as destroy-all-no-leak "$BASE0" && pass destroy-all-no-leak
fi
[ "$MODE" = xennetd ] && [ -d /sys/module/xen_netback ] && fail no-kernel-netback "xen-netback got loaded"

[ "${DRIVER_DOMAIN:-0}" != 0 ] && driver_domain_steps

dump_logs
echo "XT: DONE fails=$FAILS"
[ $FAILS = 0 ]
