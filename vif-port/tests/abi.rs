//! Compile a C program against the installed Xen headers and compare every
//! struct size, field offset and constant with the Rust definitions.

mod cprobe;

use std::collections::HashMap;
use std::mem::offset_of;

use cprobe::{cst, off, sz};

use xennet_vif::grant::*;
use xennet_vif::ring::*;

const C_SOURCE: &str = r#"
#include <stdio.h>
#include <stddef.h>
#include <stdint.h>
#include <xen/xen.h>
#include <xen/grant_table.h>
#include <xen/io/ring.h>
#include <xen/io/netif.h>

#define S(t) printf("sizeof %s %zu\n", #t, sizeof(t))
#define O(t, f) printf("offsetof %s.%s %zu\n", #t, #f, offsetof(t, f))
#define C(c) printf("const %s %lld\n", #c, (long long)(c))

int main(void) {
    S(struct netif_tx_request);
    O(struct netif_tx_request, gref); O(struct netif_tx_request, offset);
    O(struct netif_tx_request, flags); O(struct netif_tx_request, id);
    O(struct netif_tx_request, size);
    S(struct netif_tx_response);
    O(struct netif_tx_response, id); O(struct netif_tx_response, status);
    S(struct netif_rx_request);
    O(struct netif_rx_request, id); O(struct netif_rx_request, pad);
    O(struct netif_rx_request, gref);
    S(struct netif_rx_response);
    O(struct netif_rx_response, id); O(struct netif_rx_response, offset);
    O(struct netif_rx_response, flags); O(struct netif_rx_response, status);
    S(struct netif_extra_info);
    O(struct netif_extra_info, type); O(struct netif_extra_info, flags);
    O(struct netif_extra_info, u); O(struct netif_extra_info, u.gso.size);
    O(struct netif_extra_info, u.gso.type); O(struct netif_extra_info, u.gso.features);
    O(struct netif_extra_info, u.mcast.addr);
    S(union netif_tx_sring_entry); S(union netif_rx_sring_entry);
    O(struct netif_tx_sring, req_prod); O(struct netif_tx_sring, req_event);
    O(struct netif_tx_sring, rsp_prod); O(struct netif_tx_sring, rsp_event);
    O(struct netif_tx_sring, pvt); O(struct netif_tx_sring, __pad);
    O(struct netif_tx_sring, ring); O(struct netif_rx_sring, ring);
    printf("const NET_TX_RING_SIZE %lu\n", (unsigned long)__CONST_RING_SIZE(netif_tx, 4096));
    printf("const NET_RX_RING_SIZE %lu\n", (unsigned long)__CONST_RING_SIZE(netif_rx, 4096));
    S(struct grant_entry_v1);
    O(struct grant_entry_v1, flags); O(struct grant_entry_v1, domid);
    O(struct grant_entry_v1, frame);
    C(NETTXF_csum_blank); C(NETTXF_data_validated); C(NETTXF_more_data); C(NETTXF_extra_info);
    C(NETRXF_data_validated); C(NETRXF_csum_blank); C(NETRXF_more_data);
    C(NETRXF_extra_info); C(NETRXF_gso_prefix);
    C(NETIF_RSP_DROPPED); C(NETIF_RSP_ERROR); C(NETIF_RSP_OKAY); C(NETIF_RSP_NULL);
    C(XEN_NETIF_EXTRA_TYPE_NONE); C(XEN_NETIF_EXTRA_TYPE_GSO);
    C(XEN_NETIF_EXTRA_TYPE_MCAST_ADD); C(XEN_NETIF_EXTRA_TYPE_MCAST_DEL);
    C(XEN_NETIF_EXTRA_TYPE_HASH); C(XEN_NETIF_EXTRA_TYPE_MAX); C(XEN_NETIF_EXTRA_FLAG_MORE);
    C(XEN_NETIF_GSO_TYPE_NONE); C(XEN_NETIF_GSO_TYPE_TCPV4); C(XEN_NETIF_GSO_TYPE_TCPV6);
    C(XEN_NETIF_NR_SLOTS_MIN); C(XEN_NETIF_MAX_TX_SIZE);
    C(GTF_permit_access); C(GTF_type_mask); C(GTF_readonly);
    C(GNTST_okay); C(GNTST_general_error); C(GNTST_bad_domain); C(GNTST_bad_gntref);
    C(GNTST_permission_denied); C(GNTST_bad_page); C(GNTST_bad_copy_arg);
    S(struct xen_netif_ctrl_request);
    O(struct xen_netif_ctrl_request, id); O(struct xen_netif_ctrl_request, type);
    O(struct xen_netif_ctrl_request, data);
    S(struct xen_netif_ctrl_response);
    O(struct xen_netif_ctrl_response, id); O(struct xen_netif_ctrl_response, type);
    O(struct xen_netif_ctrl_response, status); O(struct xen_netif_ctrl_response, data);
    S(union xen_netif_ctrl_sring_entry);
    printf("const XEN_NETIF_CTRL_RING_SIZE %lu\n", (unsigned long)__CONST_RING_SIZE(xen_netif_ctrl, 4096));
    C(XEN_NETIF_CTRL_TYPE_GET_HASH_FLAGS); C(XEN_NETIF_CTRL_TYPE_SET_HASH_FLAGS);
    C(XEN_NETIF_CTRL_TYPE_SET_HASH_KEY); C(XEN_NETIF_CTRL_TYPE_GET_HASH_MAPPING_SIZE);
    C(XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING_SIZE); C(XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING);
    C(XEN_NETIF_CTRL_TYPE_SET_HASH_ALGORITHM);
    C(XEN_NETIF_CTRL_STATUS_SUCCESS); C(XEN_NETIF_CTRL_STATUS_NOT_SUPPORTED);
    C(XEN_NETIF_CTRL_STATUS_INVALID_PARAMETER); C(XEN_NETIF_CTRL_STATUS_BUFFER_OVERFLOW);
    C(XEN_NETIF_CTRL_HASH_ALGORITHM_NONE); C(XEN_NETIF_CTRL_HASH_ALGORITHM_TOEPLITZ);
    C(XEN_NETIF_CTRL_HASH_TYPE_IPV4); C(XEN_NETIF_CTRL_HASH_TYPE_IPV4_TCP);
    C(XEN_NETIF_CTRL_HASH_TYPE_IPV6); C(XEN_NETIF_CTRL_HASH_TYPE_IPV6_TCP);
    O(struct netif_extra_info, u.hash.type); O(struct netif_extra_info, u.hash.algorithm);
    O(struct netif_extra_info, u.hash.value);
    return 0;
}
"#;

fn c_values() -> HashMap<String, i64> {
    cprobe::c_values("abi", &["/usr/include/xen/io/netif.h"], C_SOURCE)
}

#[test]
fn abi_matches_xen_headers() {
    let mut p = cprobe::Probe::new(c_values());
    sz!(p, "struct netif_tx_request", NetifTxRequest);
    off!(p, "struct netif_tx_request.gref", NetifTxRequest, gref);
    off!(p, "struct netif_tx_request.offset", NetifTxRequest, offset);
    off!(p, "struct netif_tx_request.flags", NetifTxRequest, flags);
    off!(p, "struct netif_tx_request.id", NetifTxRequest, id);
    off!(p, "struct netif_tx_request.size", NetifTxRequest, size);
    sz!(p, "struct netif_tx_response", NetifTxResponse);
    off!(p, "struct netif_tx_response.id", NetifTxResponse, id);
    off!(
        p,
        "struct netif_tx_response.status",
        NetifTxResponse,
        status
    );
    sz!(p, "struct netif_rx_request", NetifRxRequest);
    off!(p, "struct netif_rx_request.id", NetifRxRequest, id);
    off!(p, "struct netif_rx_request.pad", NetifRxRequest, pad);
    off!(p, "struct netif_rx_request.gref", NetifRxRequest, gref);
    sz!(p, "struct netif_rx_response", NetifRxResponse);
    off!(p, "struct netif_rx_response.id", NetifRxResponse, id);
    off!(
        p,
        "struct netif_rx_response.offset",
        NetifRxResponse,
        offset
    );
    off!(p, "struct netif_rx_response.flags", NetifRxResponse, flags);
    off!(
        p,
        "struct netif_rx_response.status",
        NetifRxResponse,
        status
    );
    sz!(p, "struct netif_extra_info", NetifExtraInfo);
    off!(p, "struct netif_extra_info.type", NetifExtraInfo, kind);
    off!(p, "struct netif_extra_info.flags", NetifExtraInfo, flags);
    off!(p, "struct netif_extra_info.u", NetifExtraInfo, u);
    // Union members live in `u` as bytes; the accessors use these offsets
    // relative to `u` (size at +0, type at +2, features at +4, addr at +0).
    let u = offset_of!(NetifExtraInfo, u) as i64;
    p.check("offsetof struct netif_extra_info.u.gso.size", u);
    p.check("offsetof struct netif_extra_info.u.gso.type", u + 2);
    p.check("offsetof struct netif_extra_info.u.gso.features", u + 4);
    p.check("offsetof struct netif_extra_info.u.mcast.addr", u);
    p.check(
        "sizeof union netif_tx_sring_entry",
        TxRing::ENTRY_SIZE as i64,
    );
    p.check(
        "sizeof union netif_rx_sring_entry",
        RxRing::ENTRY_SIZE as i64,
    );
    off!(p, "struct netif_tx_sring.req_prod", SringHeader, req_prod);
    off!(p, "struct netif_tx_sring.req_event", SringHeader, req_event);
    off!(p, "struct netif_tx_sring.rsp_prod", SringHeader, rsp_prod);
    off!(p, "struct netif_tx_sring.rsp_event", SringHeader, rsp_event);
    off!(p, "struct netif_tx_sring.pvt", SringHeader, pvt);
    off!(p, "struct netif_tx_sring.__pad", SringHeader, pad);
    p.check(
        "offsetof struct netif_tx_sring.ring",
        size_of::<SringHeader>() as i64,
    );
    p.check(
        "offsetof struct netif_rx_sring.ring",
        RING_ENTRIES_OFFSET as i64,
    );
    cst!(p, "NET_TX_RING_SIZE", RING_SIZE);
    cst!(p, "NET_RX_RING_SIZE", RING_SIZE);
    sz!(p, "struct grant_entry_v1", GrantEntryV1);
    off!(p, "struct grant_entry_v1.flags", GrantEntryV1, flags);
    off!(p, "struct grant_entry_v1.domid", GrantEntryV1, domid);
    off!(p, "struct grant_entry_v1.frame", GrantEntryV1, frame);
    cst!(p, "NETTXF_csum_blank", NETTXF_CSUM_BLANK);
    cst!(p, "NETTXF_data_validated", NETTXF_DATA_VALIDATED);
    cst!(p, "NETTXF_more_data", NETTXF_MORE_DATA);
    cst!(p, "NETTXF_extra_info", NETTXF_EXTRA_INFO);
    cst!(p, "NETRXF_data_validated", NETRXF_DATA_VALIDATED);
    cst!(p, "NETRXF_csum_blank", NETRXF_CSUM_BLANK);
    cst!(p, "NETRXF_more_data", NETRXF_MORE_DATA);
    cst!(p, "NETRXF_extra_info", NETRXF_EXTRA_INFO);
    cst!(p, "NETRXF_gso_prefix", NETRXF_GSO_PREFIX);
    cst!(p, "NETIF_RSP_DROPPED", NETIF_RSP_DROPPED);
    cst!(p, "NETIF_RSP_ERROR", NETIF_RSP_ERROR);
    cst!(p, "NETIF_RSP_OKAY", NETIF_RSP_OKAY);
    cst!(p, "NETIF_RSP_NULL", NETIF_RSP_NULL);
    cst!(p, "XEN_NETIF_EXTRA_TYPE_NONE", XEN_NETIF_EXTRA_TYPE_NONE);
    cst!(p, "XEN_NETIF_EXTRA_TYPE_GSO", XEN_NETIF_EXTRA_TYPE_GSO);
    cst!(
        p,
        "XEN_NETIF_EXTRA_TYPE_MCAST_ADD",
        XEN_NETIF_EXTRA_TYPE_MCAST_ADD
    );
    cst!(
        p,
        "XEN_NETIF_EXTRA_TYPE_MCAST_DEL",
        XEN_NETIF_EXTRA_TYPE_MCAST_DEL
    );
    cst!(p, "XEN_NETIF_EXTRA_TYPE_HASH", XEN_NETIF_EXTRA_TYPE_HASH);
    cst!(p, "XEN_NETIF_EXTRA_TYPE_MAX", XEN_NETIF_EXTRA_TYPE_MAX);
    cst!(p, "XEN_NETIF_EXTRA_FLAG_MORE", XEN_NETIF_EXTRA_FLAG_MORE);
    cst!(p, "XEN_NETIF_GSO_TYPE_NONE", XEN_NETIF_GSO_TYPE_NONE);
    cst!(p, "XEN_NETIF_GSO_TYPE_TCPV4", XEN_NETIF_GSO_TYPE_TCPV4);
    cst!(p, "XEN_NETIF_GSO_TYPE_TCPV6", XEN_NETIF_GSO_TYPE_TCPV6);
    cst!(p, "XEN_NETIF_NR_SLOTS_MIN", XEN_NETIF_NR_SLOTS_MIN);
    cst!(p, "XEN_NETIF_MAX_TX_SIZE", XEN_NETIF_MAX_TX_SIZE);
    cst!(p, "GTF_permit_access", GTF_PERMIT_ACCESS);
    cst!(p, "GTF_type_mask", GTF_TYPE_MASK);
    cst!(p, "GTF_readonly", GTF_READONLY);
    cst!(p, "GNTST_okay", GNTST_OKAY);
    cst!(p, "GNTST_general_error", GNTST_GENERAL_ERROR);
    cst!(p, "GNTST_bad_domain", GNTST_BAD_DOMAIN);
    cst!(p, "GNTST_bad_gntref", GNTST_BAD_GNTREF);
    cst!(p, "GNTST_permission_denied", GNTST_PERMISSION_DENIED);
    cst!(p, "GNTST_bad_page", GNTST_BAD_PAGE);
    cst!(p, "GNTST_bad_copy_arg", GNTST_BAD_COPY_ARG);
    {
        use xennet_vif::ctrl::*;
        use xennet_vif::ring::CtrlRing;
        use xennet_vif::toeplitz::*;
        sz!(p, "struct xen_netif_ctrl_request", CtrlRequest);
        off!(p, "struct xen_netif_ctrl_request.id", CtrlRequest, id);
        off!(p, "struct xen_netif_ctrl_request.type", CtrlRequest, kind);
        off!(p, "struct xen_netif_ctrl_request.data", CtrlRequest, data);
        sz!(p, "struct xen_netif_ctrl_response", CtrlResponse);
        off!(p, "struct xen_netif_ctrl_response.id", CtrlResponse, id);
        off!(p, "struct xen_netif_ctrl_response.type", CtrlResponse, kind);
        off!(
            p,
            "struct xen_netif_ctrl_response.status",
            CtrlResponse,
            status
        );
        off!(p, "struct xen_netif_ctrl_response.data", CtrlResponse, data);
        p.check(
            "sizeof union xen_netif_ctrl_sring_entry",
            CtrlRing::ENTRY_SIZE as i64,
        );
        cst!(p, "XEN_NETIF_CTRL_RING_SIZE", CtrlRing::SIZE);
        cst!(
            p,
            "XEN_NETIF_CTRL_TYPE_GET_HASH_FLAGS",
            CTRL_TYPE_GET_HASH_FLAGS
        );
        cst!(
            p,
            "XEN_NETIF_CTRL_TYPE_SET_HASH_FLAGS",
            CTRL_TYPE_SET_HASH_FLAGS
        );
        cst!(
            p,
            "XEN_NETIF_CTRL_TYPE_SET_HASH_KEY",
            CTRL_TYPE_SET_HASH_KEY
        );
        cst!(
            p,
            "XEN_NETIF_CTRL_TYPE_GET_HASH_MAPPING_SIZE",
            CTRL_TYPE_GET_HASH_MAPPING_SIZE
        );
        cst!(
            p,
            "XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING_SIZE",
            CTRL_TYPE_SET_HASH_MAPPING_SIZE
        );
        cst!(
            p,
            "XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING",
            CTRL_TYPE_SET_HASH_MAPPING
        );
        cst!(
            p,
            "XEN_NETIF_CTRL_TYPE_SET_HASH_ALGORITHM",
            CTRL_TYPE_SET_HASH_ALGORITHM
        );
        cst!(p, "XEN_NETIF_CTRL_STATUS_SUCCESS", CTRL_STATUS_SUCCESS);
        cst!(
            p,
            "XEN_NETIF_CTRL_STATUS_NOT_SUPPORTED",
            CTRL_STATUS_NOT_SUPPORTED
        );
        cst!(
            p,
            "XEN_NETIF_CTRL_STATUS_INVALID_PARAMETER",
            CTRL_STATUS_INVALID_PARAMETER
        );
        cst!(
            p,
            "XEN_NETIF_CTRL_STATUS_BUFFER_OVERFLOW",
            CTRL_STATUS_BUFFER_OVERFLOW
        );
        cst!(p, "XEN_NETIF_CTRL_HASH_ALGORITHM_NONE", HASH_ALGORITHM_NONE);
        cst!(
            p,
            "XEN_NETIF_CTRL_HASH_ALGORITHM_TOEPLITZ",
            HASH_ALGORITHM_TOEPLITZ
        );
        cst!(p, "XEN_NETIF_CTRL_HASH_TYPE_IPV4", HASH_TYPE_IPV4);
        cst!(p, "XEN_NETIF_CTRL_HASH_TYPE_IPV4_TCP", HASH_TYPE_IPV4_TCP);
        cst!(p, "XEN_NETIF_CTRL_HASH_TYPE_IPV6", HASH_TYPE_IPV6);
        cst!(p, "XEN_NETIF_CTRL_HASH_TYPE_IPV6_TCP", HASH_TYPE_IPV6_TCP);
        // ctrl::HashConfig::extra_of writes type, algorithm, value at
        // u + 0, 1, 2.
        p.check("offsetof struct netif_extra_info.u.hash.type", u);
        p.check("offsetof struct netif_extra_info.u.hash.algorithm", u + 1);
        p.check("offsetof struct netif_extra_info.u.hash.value", u + 2);
    }
    p.all_checked();
}
