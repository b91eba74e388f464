# Shared by scripts/demo, scripts/test, scripts/bench. Source, don't run.

die() { echo "$(basename "$0"): $*" >&2; exit 1; }

need_root() {
    [ "$(id -u)" = 0 ] || die "must run as root (network namespaces, tap devices)"
}

# ensure_packages PKG...: install the Debian packages that are missing.
# Idempotent; runs 'apt-get update' only when something must be installed.
ensure_packages() {
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    ((${#missing[@]})) || return 0
    echo "installing: ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    local i
    for i in 1 2 3; do
        apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null && return 0
        echo "apt-get failed (attempt $i), retrying" >&2
        sleep 2
    done
    die "could not install: ${missing[*]}"
}

# The packages every run needs: real Linux stacks and tools in namespaces,
# Xen's public headers for the ABI test, a C compiler for that test.
BASE_PACKAGES=(iproute2 iputils-ping iperf3 ethtool procps libxen-dev xenstore-utils gcc libc6-dev openvswitch-switch)

# Controllers and decoders for the OpenFlow tests.
OPENFLOW_PACKAGES=(python3 python3-venv tshark)

# Where Python peers live (a venv per peer), outside the checkout so a
# fresh clone reuses them.
PEERS_DIR=${XENNET_PEERS_DIR:-/opt/xennet-peers}

# ensure_osken: a venv with os-ken 4.2.2 (the OpenStack fork of Ryu) at
# $PEERS_DIR/osken-venv. Idempotent.
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
    (cd "$tmp" && { apt-get download xen-utils-common 2>/dev/null ||
        { apt-get update -qq >/dev/null && apt-get download xen-utils-common; }; }) ||
        { rm -rf "$tmp"; die "apt-get download xen-utils-common failed"; }
    mkdir -p "$dest"
    dpkg-deb -x "$tmp"/xen-utils-common_*.deb "$dest" || { rm -rf "$tmp"; die "dpkg-deb -x failed"; }
    rm -rf "$tmp"
}

ensure_osken() {
    local venv="$PEERS_DIR/osken-venv"
    if "$venv/bin/python" -c 'import os_ken' 2>/dev/null; then return 0; fi
    echo "installing os-ken 4.2.2 into $venv" >&2
    mkdir -p "$PEERS_DIR"
    python3 -m venv "$venv" || die "python3 -m venv failed"
    local i
    for i in 1 2 3; do
        "$venv/bin/pip" install -q "os-ken==4.2.2" && return 0
        echo "pip failed (attempt $i), retrying" >&2
        sleep 2
    done
    die "could not install os-ken"
}
