//! Compile a C program against Xen's Linux device headers
//! (`xen/sys/gntdev.h`, `xen/sys/evtchn.h` from libxen-dev) and compare
//! every struct size, field offset and ioctl number with
//! `xennet_vif::xen::sys`.

mod cprobe;

use std::collections::HashMap;

use cprobe::{cst, off, sz};

use xennet_vif::xen::sys::*;

const C_SOURCE: &str = r#"
#include <stdio.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <xen/xen.h>
#include <xen/grant_table.h>
#include <xen/sys/gntdev.h>
#include <xen/sys/evtchn.h>

#define S(t) printf("sizeof %s %zu\n", #t, sizeof(t))
#define O(t, f) printf("offsetof %s.%s %zu\n", #t, #f, offsetof(t, f))
#define C(c) printf("const %s %llu\n", #c, (unsigned long long)(c))

int main(void) {
    S(struct ioctl_gntdev_grant_ref);
    O(struct ioctl_gntdev_grant_ref, domid); O(struct ioctl_gntdev_grant_ref, ref);
    S(struct ioctl_gntdev_map_grant_ref);
    O(struct ioctl_gntdev_map_grant_ref, count); O(struct ioctl_gntdev_map_grant_ref, pad);
    O(struct ioctl_gntdev_map_grant_ref, index); O(struct ioctl_gntdev_map_grant_ref, refs);
    S(struct ioctl_gntdev_unmap_grant_ref);
    O(struct ioctl_gntdev_unmap_grant_ref, index); O(struct ioctl_gntdev_unmap_grant_ref, count);
    O(struct ioctl_gntdev_unmap_grant_ref, pad);
    S(struct ioctl_gntdev_grant_copy_segment);
    O(struct ioctl_gntdev_grant_copy_segment, source);
    O(struct ioctl_gntdev_grant_copy_segment, source.virt);
    O(struct ioctl_gntdev_grant_copy_segment, source.foreign.ref);
    O(struct ioctl_gntdev_grant_copy_segment, source.foreign.offset);
    O(struct ioctl_gntdev_grant_copy_segment, source.foreign.domid);
    O(struct ioctl_gntdev_grant_copy_segment, dest);
    O(struct ioctl_gntdev_grant_copy_segment, len);
    O(struct ioctl_gntdev_grant_copy_segment, flags);
    O(struct ioctl_gntdev_grant_copy_segment, status);
    S(struct ioctl_gntdev_grant_copy);
    O(struct ioctl_gntdev_grant_copy, count); O(struct ioctl_gntdev_grant_copy, segments);
    S(struct ioctl_evtchn_bind_interdomain);
    O(struct ioctl_evtchn_bind_interdomain, remote_domain);
    O(struct ioctl_evtchn_bind_interdomain, remote_port);
    S(struct ioctl_evtchn_unbind); S(struct ioctl_evtchn_notify);
    C(IOCTL_GNTDEV_MAP_GRANT_REF); C(IOCTL_GNTDEV_UNMAP_GRANT_REF); C(IOCTL_GNTDEV_GRANT_COPY);
    C(IOCTL_EVTCHN_BIND_INTERDOMAIN); C(IOCTL_EVTCHN_UNBIND); C(IOCTL_EVTCHN_NOTIFY);
    C(IOCTL_EVTCHN_RESET);
    C(GNTCOPY_source_gref); C(GNTCOPY_dest_gref);
    return 0;
}
"#;

fn c_values() -> HashMap<String, u64> {
    cprobe::c_values(
        "devabi",
        &[
            "/usr/include/xen/sys/gntdev.h",
            "/usr/include/xen/sys/evtchn.h",
        ],
        C_SOURCE,
    )
}

#[test]
fn device_abi_matches_xen_headers() {
    let mut p = cprobe::Probe::new(c_values());
    sz!(p, "struct ioctl_gntdev_grant_ref", GntdevGrantRef);
    off!(
        p,
        "struct ioctl_gntdev_grant_ref.domid",
        GntdevGrantRef,
        domid
    );
    off!(p, "struct ioctl_gntdev_grant_ref.ref", GntdevGrantRef, gref);
    sz!(p, "struct ioctl_gntdev_map_grant_ref", GntdevMapGrantRef);
    off!(
        p,
        "struct ioctl_gntdev_map_grant_ref.count",
        GntdevMapGrantRef,
        count
    );
    off!(
        p,
        "struct ioctl_gntdev_map_grant_ref.pad",
        GntdevMapGrantRef,
        pad
    );
    off!(
        p,
        "struct ioctl_gntdev_map_grant_ref.index",
        GntdevMapGrantRef,
        index
    );
    off!(
        p,
        "struct ioctl_gntdev_map_grant_ref.refs",
        GntdevMapGrantRef,
        refs
    );
    sz!(
        p,
        "struct ioctl_gntdev_unmap_grant_ref",
        GntdevUnmapGrantRef
    );
    off!(
        p,
        "struct ioctl_gntdev_unmap_grant_ref.index",
        GntdevUnmapGrantRef,
        index
    );
    off!(
        p,
        "struct ioctl_gntdev_unmap_grant_ref.count",
        GntdevUnmapGrantRef,
        count
    );
    off!(
        p,
        "struct ioctl_gntdev_unmap_grant_ref.pad",
        GntdevUnmapGrantRef,
        pad
    );
    sz!(
        p,
        "struct ioctl_gntdev_grant_copy_segment",
        GntdevGrantCopySegment
    );
    off!(
        p,
        "struct ioctl_gntdev_grant_copy_segment.source",
        GntdevGrantCopySegment,
        source
    );
    off!(
        p,
        "struct ioctl_gntdev_grant_copy_segment.source.virt",
        GntdevGrantCopySegment,
        source.virt
    );
    off!(
        p,
        "struct ioctl_gntdev_grant_copy_segment.source.foreign.ref",
        GntdevGrantCopySegment,
        source.foreign.gref
    );
    off!(
        p,
        "struct ioctl_gntdev_grant_copy_segment.source.foreign.offset",
        GntdevGrantCopySegment,
        source.foreign.offset
    );
    off!(
        p,
        "struct ioctl_gntdev_grant_copy_segment.source.foreign.domid",
        GntdevGrantCopySegment,
        source.foreign.domid
    );
    off!(
        p,
        "struct ioctl_gntdev_grant_copy_segment.dest",
        GntdevGrantCopySegment,
        dest
    );
    off!(
        p,
        "struct ioctl_gntdev_grant_copy_segment.len",
        GntdevGrantCopySegment,
        len
    );
    off!(
        p,
        "struct ioctl_gntdev_grant_copy_segment.flags",
        GntdevGrantCopySegment,
        flags
    );
    off!(
        p,
        "struct ioctl_gntdev_grant_copy_segment.status",
        GntdevGrantCopySegment,
        status
    );
    sz!(p, "struct ioctl_gntdev_grant_copy", GntdevGrantCopy);
    off!(
        p,
        "struct ioctl_gntdev_grant_copy.count",
        GntdevGrantCopy,
        count
    );
    off!(
        p,
        "struct ioctl_gntdev_grant_copy.segments",
        GntdevGrantCopy,
        segments
    );
    sz!(
        p,
        "struct ioctl_evtchn_bind_interdomain",
        EvtchnBindInterdomain
    );
    off!(
        p,
        "struct ioctl_evtchn_bind_interdomain.remote_domain",
        EvtchnBindInterdomain,
        remote_domain
    );
    off!(
        p,
        "struct ioctl_evtchn_bind_interdomain.remote_port",
        EvtchnBindInterdomain,
        remote_port
    );
    sz!(p, "struct ioctl_evtchn_unbind", EvtchnPort);
    sz!(p, "struct ioctl_evtchn_notify", EvtchnPort);
    cst!(p, "IOCTL_GNTDEV_MAP_GRANT_REF", IOCTL_GNTDEV_MAP_GRANT_REF);
    cst!(
        p,
        "IOCTL_GNTDEV_UNMAP_GRANT_REF",
        IOCTL_GNTDEV_UNMAP_GRANT_REF
    );
    cst!(p, "IOCTL_GNTDEV_GRANT_COPY", IOCTL_GNTDEV_GRANT_COPY);
    cst!(
        p,
        "IOCTL_EVTCHN_BIND_INTERDOMAIN",
        IOCTL_EVTCHN_BIND_INTERDOMAIN
    );
    cst!(p, "IOCTL_EVTCHN_UNBIND", IOCTL_EVTCHN_UNBIND);
    cst!(p, "IOCTL_EVTCHN_NOTIFY", IOCTL_EVTCHN_NOTIFY);
    cst!(p, "IOCTL_EVTCHN_RESET", IOCTL_EVTCHN_RESET);
    cst!(p, "GNTCOPY_source_gref", GNTCOPY_SOURCE_GREF);
    cst!(p, "GNTCOPY_dest_gref", GNTCOPY_DEST_GREF);
    p.all_checked();
}
