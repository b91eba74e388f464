# Shared by scripts/demo, scripts/test, scripts/bench. Source, don't run.

die() { echo "$(basename "$0"): $*" >&2; exit 1; }

# Under `set -e` a failing command ends the script without a word; this trap
# names the command, its exit status and where it stood first, so no script
# that sources this file exits non-zero in silence. (Commands tested by
# if/&&/|| do not trigger it.)
on_err() {
    local rc=$? i
    echo "$(basename "$0"): failed (exit $rc): ${BASH_COMMAND}" >&2
    for ((i = 1; i < ${#FUNCNAME[@]}; i++)); do
        echo "  at ${BASH_SOURCE[$i]}:${BASH_LINENO[$((i - 1))]} (${FUNCNAME[$i]})" >&2
    done
}
set -o errtrace
trap on_err ERR

need_root() {
    [ "$(id -u)" = 0 ] || die "must run as root (network namespaces, tap devices)"
}

# apt_run ARGS...: `apt-get ARGS` with its output kept; on failure prints the
# command line and the last lines apt printed (the reason), returns non-zero.
apt_run() {
    local log rc=0
    log=$(mktemp)
    DEBIAN_FRONTEND=noninteractive apt-get "$@" >"$log" 2>&1 || rc=$?
    if [ "$rc" != 0 ]; then
        echo "+ apt-get $* failed (exit $rc):" >&2
        grep -vE '^(Reading|Building|Get:|Hit:|Ign:|Fetched|Selecting|Preparing|Unpacking|Setting up|Processing)' "$log" |
            tail -n 25 | sed 's/^/  | /' >&2
    fi
    rm -f "$log"
    return "$rc"
}

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

# ensure_packages PKG...: install the Debian packages that are missing.
# Idempotent; runs 'apt-get update' only when something must be installed.
ensure_packages() {
    local missing=() p
    for p in "$@"; do
        installed "$p" || missing+=("$p")
    done
    ((${#missing[@]})) || return 0
    echo "installing: ${missing[*]}" >&2
    local i
    for i in 1 2 3; do
        apt_run update -q && apt_run install -y -q --no-install-recommends "${missing[@]}" && return 0
        echo "apt-get failed (attempt $i of 3), retrying" >&2
        sleep 2
    done
    die "could not install: ${missing[*]} (the reason is above)"
}

# ensure_qemu: qemu-system-x86 for scripts/test-xen. Debian 12 images may
# ship qemu-utils (qemu-img) from bookworm-backports (10.x), whose Breaks
# on qemu-system-common (< 8.0) keeps bookworm's qemu-system-x86 (7.2) from
# installing while the backports suite is not configured. Then qemu-utils is
# installed at the version qemu-system-x86 comes in, from the same suite
# (a downgrade of qemu-img only; the emulator and its tools then match),
# rather than leaving test-xen without an emulator. Idempotent: once both
# are at one version nothing is done; a machine with the backports suite
# enabled gets both from it.
ensure_qemu() {
    installed qemu-system-x86 && return 0
    if ! installed qemu-utils; then
        ensure_packages qemu-system-x86
        return
    fi
    local want have
    want=$(apt-cache policy qemu-system-x86 2>/dev/null | awk '/Candidate:/{print $2}')
    if [ -z "$want" ] || [ "$want" = "(none)" ]; then
        apt_run update -q || die "apt-get update failed"
        want=$(apt-cache policy qemu-system-x86 2>/dev/null | awk '/Candidate:/{print $2}')
    fi
    [ -n "$want" ] && [ "$want" != "(none)" ] || die "qemu-system-x86 has no installation candidate (apt sources?)"
    have=$(dpkg-query -W -f='${Version}' qemu-utils)
    if [ "$have" = "$want" ]; then
        ensure_packages qemu-system-x86
        return
    fi
    echo "installing: qemu-system-x86=$want with qemu-utils=$want (installed: qemu-utils $have," \
        "which breaks qemu-system-common $want)" >&2
    local i
    for i in 1 2 3; do
        apt_run update -q && apt_run install -y -q --no-install-recommends --allow-downgrades \
            "qemu-system-x86=$want" "qemu-utils=$want" && return 0
        echo "apt-get failed (attempt $i of 3), retrying" >&2
        sleep 2
    done
    die "could not install qemu-system-x86 (the reason is above)"
}

# The packages every run needs: real Linux stacks and tools in namespaces,
# Xen's public headers for the ABI test, a C compiler for that test.
BASE_PACKAGES=(iproute2 iputils-ping iperf3 ethtool procps libxen-dev xenstore-utils gcc libc6-dev openvswitch-switch)

# Controllers and decoders for the OpenFlow tests.
OPENFLOW_PACKAGES=(python3 python3-venv tshark)

# Real FTP/TFTP peers for the ALG tests (tests/conntrack_alg.rs): the
# TFTP server in.tftpd and busybox's tftp client (the FTP server is
# pyftpdlib, ensure_pyftpdlib; the FTP client Python's ftplib).
ALG_PACKAGES=(busybox tftpd-hpa)

# Where Python peers live (a venv per peer), outside the checkout so a
# fresh clone reuses them.
PEERS_DIR=${XENNET_PEERS_DIR:-/opt/xennet-peers}

# Debian's Xen hotplug scripts (xen-utils-common), unmodified, for
# tests/hotplug.rs. Installing the package here would upgrade systemd, udev
# and the Xen libraries, so its files are extracted into $PEERS_DIR instead
# (an installed /etc/xen/scripts/vif-openvswitch is used when present).
ensure_xen_scripts() {
    local dest="$PEERS_DIR/xen-utils-common"
    if [ -x /etc/xen/scripts/vif-openvswitch ] || [ -x "$dest/etc/xen/scripts/vif-openvswitch" ]; then
        return 0
    fi
    echo "extracting xen-utils-common into $dest" >&2
    local tmp
    tmp=$(mktemp -d)
    (cd "$tmp" && { apt-get download xen-utils-common >/dev/null 2>&1 ||
        { apt_run update -q && apt_run download xen-utils-common; }; }) ||
        { rm -rf "$tmp"; die "apt-get download xen-utils-common failed (the reason is above)"; }
    mkdir -p "$dest"
    dpkg-deb -x "$tmp"/xen-utils-common_*.deb "$dest" || { rm -rf "$tmp"; die "dpkg-deb -x failed"; }
    rm -rf "$tmp"
}

# ensure_peer_venv NAME MODULE PACKAGE VERSION: a venv at $PEERS_DIR/NAME in
# which PACKAGE==VERSION is installed (pip, three attempts), unless MODULE
# already imports there. Idempotent.
ensure_peer_venv() {
    local venv="$PEERS_DIR/$1" module=$2 spec="$3==$4"
    if "$venv/bin/python" -c "import $module" 2>/dev/null; then return 0; fi
    echo "installing $3 $4 into $venv" >&2
    mkdir -p "$PEERS_DIR"
    python3 -m venv "$venv" || die "python3 -m venv $venv failed"
    local i
    for i in 1 2 3; do
        "$venv/bin/pip" install -q "$spec" && return 0
        echo "+ $venv/bin/pip install -q $spec failed (attempt $i of 3; pip's error is above), retrying" >&2
        sleep 2
    done
    die "could not install $3"
}

# ensure_osken: os-ken 4.2.2 (the OpenStack fork of Ryu) at
# $PEERS_DIR/osken-venv.
ensure_osken() {
    ensure_peer_venv osken-venv os_ken os-ken 4.2.2
}

# ensure_pyftpdlib: the FTP server pyftpdlib 2.0.1 (the peer of
# tests/conntrack_alg.rs) at $PEERS_DIR/pyftpdlib-venv.
ensure_pyftpdlib() {
    ensure_peer_venv pyftpdlib-venv pyftpdlib.servers pyftpdlib 2.0.1
}

# ensure_prometheus_client: the Python Prometheus client
# (prometheus-client 0.26.0, whose parsers read the metrics endpoint in
# tests/metrics.rs) at $PEERS_DIR/prometheus-venv.
ensure_prometheus_client() {
    ensure_peer_venv prometheus-venv prometheus_client.openmetrics.parser prometheus-client 0.26.0
}
