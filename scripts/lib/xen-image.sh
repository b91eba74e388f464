# shellcheck shell=bash
# Builds the boot images of scripts/test-xen: a real Xen 4.17 hypervisor, a
# Debian 6.1 kernel as PV dom0 and PV domU, and three busybox initramfs
# (dom0, domU, the driver domain's base).
# Source, don't run (needs common.sh for die()).
#
# Nothing from Xen or the kernel is installed on the host: the Debian
# packages are fetched with `apt-get download` and unpacked with
# `dpkg-deb -x` into a private root (installing xen-utils would upgrade
# systemd and the Xen libraries and touch grub). Binaries and libraries
# are taken from that root (ldd with LD_LIBRARY_PATH into it); bash, ip,
# busybox and Open vSwitch come from the host.
#
# Cache: $XT_CACHE (default /var/cache/xennet-test-xen)
#   debs/                 the downloaded .deb files
#   root-<pkgkey>/        the unpacked packages (pkgkey: package=version list)
#   img-<key>/            xen, vmlinuz, dom0-initrd.gz (with the domU kernel
#                         and initramfs inside), manifest, nicdom-base.cpio
#                         and nicdom-manifest (the driver domain's root
#                         without xennetd); key: pkgkey plus
#                         the hash of this file, tests/xen/dom0-init,
#                         tests/xen/domu-*, busybox/bash/ovs versions.
# A directory is used only when its ".complete" marker exists, so an
# interrupted build is redone, never half-used.

XT_CACHE=${XT_CACHE:-/var/cache/xennet-test-xen}
XT_XENVER=4.17

# xt_packages: the Debian packages to unpack (the kernel is the one
# linux-image-amd64 points at).
xt_packages() {
    local kpkg
    kpkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
    [ -n "$kpkg" ] || die "cannot resolve linux-image-amd64 (apt-get update?)"
    echo "xen-hypervisor-$XT_XENVER-amd64 xen-utils-$XT_XENVER xen-utils-common xenstore-utils" \
        "libxenmisc$XT_XENVER libxencall1 libxenevtchn1 libxenforeignmemory1 libxengnttab1" \
        "libxenstore4 libxentoollog1 libxendevicemodel1 libxentoolcore1 libxenhypfs1 libyajl2 $kpkg"
}

# xt_pkg_versions PKG...: "pkg=version" lines of the candidates apt would fetch.
xt_pkg_versions() {
    local p v
    for p in "$@"; do
        v=$(apt-cache policy "$p" 2>/dev/null | awk '/Candidate:/{print $2}')
        [ -n "$v" ] && [ "$v" != "(none)" ] || die "package $p has no candidate (apt-get update?)"
        echo "$p=$v"
    done
}

# xt_cached_deb PKG=VERSION: the path of its .deb in $XT_CACHE/debs, or
# nothing (apt-get download names files PKG_VERSION_ARCH.deb with ':' as %3a).
xt_cached_deb() {
    local p=${1%%=*} v=${1#*=} f
    for f in "$XT_CACHE/debs/${p}_${v//:/%3a}_"*.deb; do
        [ -e "$f" ] && { echo "$f"; return 0; }
    done
    return 0
}

# xt_root: unpack the packages into $XT_CACHE/root-<pkgkey>; sets XT_ROOT and XT_KVER.
xt_root() {
    local pkgs versions pkgkey p v f
    # shellcheck disable=SC2046
    pkgs=$(xt_packages) || exit 1
    # shellcheck disable=SC2086
    versions=$(xt_pkg_versions $pkgs) || exit 1
    pkgkey=$(echo "$versions" | sha256sum | cut -c1-16)
    XT_ROOT=$XT_CACHE/root-$pkgkey
    XT_PKG_VERSIONS=$versions
    if [ ! -e "$XT_ROOT/.complete" ]; then
        echo "test-xen: unpacking Xen and kernel packages into $XT_ROOT" >&2
        mkdir -p "$XT_CACHE/debs"
        rm -rf "$XT_ROOT"
        mkdir -p "$XT_ROOT"
        local want=()
        while read -r p; do
            [ -n "$(xt_cached_deb "$p")" ] || want+=("$p")
        done <<<"$versions"
        if ((${#want[@]})); then
            echo "test-xen: apt-get download ${want[*]}" >&2
            (cd "$XT_CACHE/debs" && { apt-get download "${want[@]}" >/dev/null 2>&1 ||
                { apt_run update -q && apt_run download "${want[@]}"; }; }) ||
                die "apt-get download ${want[*]} failed (the reason is above)"
        fi
        while read -r p; do
            f=$(xt_cached_deb "$p")
            [ -n "$f" ] || die "no .deb for $p in $XT_CACHE/debs after apt-get download"
            dpkg-deb -x "$f" "$XT_ROOT" || die "dpkg-deb -x $f failed"
        done <<<"$versions"
        echo "$versions" >"$XT_ROOT/.versions"
        touch "$XT_ROOT/.complete"
    fi
    XT_KVER=$(ls "$XT_ROOT/lib/modules" 2>/dev/null | sort -V | tail -1) || true
    [ -n "$XT_KVER" ] && [ -e "$XT_ROOT/boot/vmlinuz-$XT_KVER" ] || die "no kernel in $XT_ROOT"
    [ -e "$XT_ROOT/lib/modules/$XT_KVER/modules.dep" ] || depmod -b "$XT_ROOT" "$XT_KVER" ||
        die "depmod -b $XT_ROOT failed"
}

# xt_copy_bin ROOT FILE...: copy FILE (host path, or a path inside
# $XT_ROOT) to the same path under ROOT, with every library ldd resolves
# (the private root's libraries first). Dies on an unresolved library.
xt_copy_bin() {
    local root=$1 f src dst lib
    shift
    for f in "$@"; do
        src=$f
        [ -e "$src" ] || die "missing $f"
        dst=${f#"$XT_ROOT"}
        mkdir -p "$root$(dirname "$dst")"
        cp -L "$src" "$root$dst"
        if LD_LIBRARY_PATH=$XT_ROOT/usr/lib/x86_64-linux-gnu ldd "$src" 2>/dev/null | grep -q 'not found'; then
            die "unresolved library for $f: $(LD_LIBRARY_PATH=$XT_ROOT/usr/lib/x86_64-linux-gnu ldd "$src" | grep 'not found')"
        fi
        for lib in $(LD_LIBRARY_PATH=$XT_ROOT/usr/lib/x86_64-linux-gnu ldd "$src" 2>/dev/null | grep -o '/[^ ]*'); do
            dst=${lib#"$XT_ROOT"}
            [ -e "$root$dst" ] && continue
            mkdir -p "$root$(dirname "$dst")"
            cp -L "$lib" "$root$dst"
        done
    done
}

# xt_copy_mods ROOT MODULE...: modules (with dependencies) from the private root.
xt_copy_mods() {
    local root=$1 m f
    shift
    for m in "$@"; do
        f=$(modprobe -d "$XT_ROOT" -S "$XT_KVER" --show-depends "$m" 2>&1) || die "module $m: $f"
        for f in $(echo "$f" | awk '$1=="insmod"{print $2}'); do
            mkdir -p "$root$(dirname "${f#"$XT_ROOT"}")"
            cp "$f" "$root${f#"$XT_ROOT"}"
        done
    done
    cp "$XT_ROOT/lib/modules/$XT_KVER"/modules.{order,builtin,builtin.modinfo} "$root/lib/modules/$XT_KVER/" 2>/dev/null || true
    depmod -b "$root" "$XT_KVER" || die "depmod -b $root failed"
}

xt_busybox_root() {
    local root=$1 a
    rm -rf "$root"
    mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,tmp,run,etc,root,var/log,mnt}
    cp /bin/busybox "$root/bin/busybox"
    for a in $(/bin/busybox --list); do
        [ -e "$root/bin/$a" ] || ln -s busybox "$root/bin/$a"
    done
    # the kernel's poweroff_cmd and busybox init look in /sbin
    for a in init poweroff reboot halt modprobe; do ln -sf ../bin/busybox "$root/sbin/$a"; done
    # scripts start with #!/usr/bin/env bash (scripts/vif-xennet)
    ln -s ../../bin/busybox "$root/usr/bin/env"
    # no busybox brctl: Xen's hotplug scripts then use `ip link ... master`
    rm -f "$root/bin/brctl"
    ln -s ../run "$root/var/run"
}

xt_cpio() { (cd "$1" && find . | cpio -o -H newc 2>/dev/null | gzip -1) >"$2"; }

# xt_build_domu DIR: DIR/domu-initrd.gz (busybox init, xen-netfront, agent).
xt_build_domu() {
    local out=$1 R=$1/domu-root
    xt_busybox_root "$R"
    xt_copy_mods "$R" xen-netfront
    xt_copy_bin "$R" /usr/sbin/ethtool
    install -m 0755 tests/xen/domu-rcS "$R/etc/rcS"
    install -m 0755 tests/xen/domu-agent "$R/bin/xt-agent"
    install -m 0755 tests/xen/domu-netwatch "$R/bin/xt-netwatch"
    cat >"$R/etc/inittab" <<'EOF'
::sysinit:/etc/rcS
::respawn:/bin/xt-netwatch
::respawn:/bin/nc -ll -p 7000 -e /bin/xt-agent
::shutdown:/bin/sh -c 'echo "XTDOMU: shutting down"'
EOF
    ln -sf bin/busybox "$R/init"
    xt_cpio "$R" "$out/domu-initrd.gz"
    rm -rf "$R"
}

# xt_build_nicdom DIR: DIR/nicdom-base.cpio (uncompressed) and
# DIR/nicdom-manifest: the driver domain's root without xennetd, which
# scripts/test-xen appends (a second cpio archive in the same gzip stream:
# the kernel unpacks concatenated archives) with its /init on every run.
# What a driver domain needs: netfront (its uplink from dom0), gntdev,
# evtchn, privcmd and xenfs; xl (for `xl devd`, which runs the vif hotplug
# script), the xenstore tools (the script's xenstore-read/-write, through
# /dev/xen/xenbus with the domain's own permissions), bash, ip, and
# ovsdb-server/ovs-vsctl for xennetd's database.
xt_build_nicdom() {
    local out=$1 R=$1/nicdom-root L=/usr/lib/xen-$XT_XENVER/bin c
    xt_busybox_root "$R"
    xt_copy_mods "$R" xen-netfront xen-evtchn xen-gntdev xen-gntalloc xen-privcmd xenfs
    xt_copy_bin "$R" "$XT_ROOT$L/xl" "$XT_ROOT/usr/bin/xenstore" \
        /usr/bin/bash /usr/sbin/ip /usr/bin/timeout \
        /usr/sbin/ovsdb-server /usr/bin/ovsdb-tool /usr/bin/ovs-vsctl /usr/bin/ovs-appctl
    cp -L /lib/x86_64-linux-gnu/libgcc_s.so.1 "$R/lib/x86_64-linux-gnu/"
    for c in read write rm exists list ls chmod watch; do ln -sf xenstore "$R/usr/bin/xenstore-$c"; done
    ln -sf ../usr/bin/bash "$R/bin/bash"
    rm -f "$R/bin/ip" "$R/bin/timeout"
    ln -sf "$L/xl" "$R/usr/sbin/xl"
    mkdir -p "$R/etc/xen/scripts" "$R"/var/{lib/xen,log/xen,lock} "$R/etc/openvswitch" "$R/usr/share/openvswitch"
    cp "$XT_ROOT/etc/xen/xl.conf" "$R/etc/xen/"
    cp /usr/share/openvswitch/vswitch.ovsschema "$R/usr/share/openvswitch/"
    (cd "$R" && find . -type f -o -type l) | sed 's/^\.//' | sort >"$out/nicdom-manifest"
    (cd "$R" && find . | cpio -o -H newc 2>/dev/null) >"$out/nicdom-base.cpio"
    rm -rf "$R"
}

# xt_build_dom0 DIR: DIR/dom0-initrd.gz and DIR/manifest (its file list).
xt_build_dom0() {
    local out=$1 R=$1/dom0-root L=/usr/lib/xen-$XT_XENVER/bin c
    xt_busybox_root "$R"
    xt_copy_mods "$R" xen-evtchn xen-gntdev xen-gntalloc xen-privcmd xenfs xen-netback bridge veth tun \
        virtio_pci virtio_console 9pnet_virtio 9p
    xt_copy_bin "$R" "$XT_ROOT$L/xl" "$XT_ROOT$L/xenstored" "$XT_ROOT$L/xenconsoled" \
        "$XT_ROOT$L/xen-init-dom0" "$XT_ROOT$L/libxl-save-helper" "$XT_ROOT$L/xenstore-control" \
        "$XT_ROOT/usr/bin/xenstore" \
        /usr/bin/bash /usr/sbin/ip /usr/sbin/ethtool /usr/bin/stat /usr/bin/flock /usr/bin/timeout \
        /usr/sbin/ovsdb-server /usr/bin/ovsdb-tool /usr/bin/ovs-vsctl /usr/bin/ovs-appctl
    # glibc dlopen()s libgcc_s for pthread_cancel (xl aborts without it); Rust binaries link it too
    cp -L /lib/x86_64-linux-gnu/libgcc_s.so.1 "$R/lib/x86_64-linux-gnu/"
    for c in read write rm exists list ls chmod watch; do ln -sf xenstore "$R/usr/bin/xenstore-$c"; done
    ln -sf ../usr/bin/bash "$R/bin/bash"
    rm -f "$R/bin/ip" "$R/bin/stat" "$R/bin/flock" "$R/bin/timeout"
    ln -sf "$L/xl" "$R/usr/sbin/xl"
    mkdir -p "$R/etc/xen" "$R"/var/{lib/xen,log/xen/console,lock} "$R/boot" \
        "$R/etc/openvswitch" "$R/usr/share/openvswitch"
    cp -a "$XT_ROOT/etc/xen/scripts" "$R/etc/xen/"
    cp "$XT_ROOT/etc/xen/xl.conf" "$R/etc/xen/"
    cp /usr/share/openvswitch/vswitch.ovsschema "$R/usr/share/openvswitch/"
    # domU: the same kernel, uncompressed (libxenguest's xz is ~7 s slower under TCG)
    python3 - "$XT_ROOT/boot/vmlinuz-$XT_KVER" "$R/boot/vmlinux" <<'PY' || die "cannot unpack the domU vmlinux"
import lzma, sys
b = open(sys.argv[1], 'rb').read()
i = b.find(b'\xfd7zXZ\x00')
if i < 0:
    sys.exit("no xz payload in " + sys.argv[1])
open(sys.argv[2], 'wb').write(lzma.LZMADecompressor().decompress(b[i:]))
PY
    cp "$out/domu-initrd.gz" "$R/boot/domu-initrd.gz"
    install -m 0755 tests/xen/dom0-init "$R/init"
    (cd "$R" && find . -type f -o -type l) | sed 's/^\.//' | sort >"$out/manifest"
    xt_cpio "$R" "$out/dom0-initrd.gz"
    rm -rf "$R"
}

# xt_images: sets XT_IMG to a directory with xen, vmlinuz, dom0-initrd.gz,
# manifest; builds it unless the cache has it.
xt_images() {
    xt_root
    local key
    key=$({
        echo "$XT_PKG_VERSIONS"
        cat scripts/lib/xen-image.sh tests/xen/dom0-init tests/xen/domu-*
        dpkg-query -W busybox-static bash iproute2 openvswitch-switch openvswitch-common coreutils util-linux
    } | sha256sum | cut -c1-16)
    XT_IMG=$XT_CACHE/img-$key
    [ -e "$XT_IMG/.complete" ] && return 0
    echo "test-xen: building boot images in $XT_IMG" >&2
    rm -rf "$XT_IMG"
    mkdir -p "$XT_IMG"
    zcat "$XT_ROOT/boot/xen-$XT_XENVER-amd64.gz" >"$XT_IMG/xen" || die "cannot unpack xen.gz"
    cp "$XT_ROOT/boot/vmlinuz-$XT_KVER" "$XT_IMG/vmlinuz"
    xt_build_domu "$XT_IMG"
    xt_build_dom0 "$XT_IMG"
    xt_build_nicdom "$XT_IMG"
    touch "$XT_IMG/.complete"
    # keep the cache small: only this image and this root
    local d
    for d in "$XT_CACHE"/img-* "$XT_CACHE"/root-*; do
        [ "$d" = "$XT_IMG" ] || [ "$d" = "$XT_ROOT" ] || rm -rf "$d"
    done
}
