//! xennetd as an OpenFlow switch, driven by the real `ovs-ofctl` over the
//! bridge's management socket (`<rundir>/br0.mgmt`), in OpenFlow 1.3 and
//! in plain OpenFlow 1.0 with Nicira extensions, with emulated guests
//! whose traffic the flow tables steer.

mod common;

use common::Harness;

#[test]
fn ofctl_show_and_dump_ports() {
    let mut h = Harness::start("ofshow");
    h.guest(1, None);
    h.guest(2, None);
    assert!(h.ping(1, 2, 2), "{}", h.log());

    for proto in [&["-O", "OpenFlow13"][..]] {
        let show = h.ofctl(&[proto, &["show", "br0"]].concat());
        assert!(show.contains("n_tables:254"), "{show}");
        assert!(show.contains("1(vif1.0): addr:fe:ff:ff:ff:ff:ff"), "{show}");
        assert!(show.contains("2(vif2.0): addr:fe:ff:ff:ff:ff:ff"), "{show}");
        let dpid = format!("dpid:{:016x}", datapath_id("br0"));
        assert!(show.contains(&dpid), "{dpid} not in {show}");

        let ports = h.ofctl(&[proto, &["dump-ports", "br0"]].concat());
        assert!(ports.contains("2 ports"), "{ports}");
        // The pings went through both vifs.
        for line in ports
            .lines()
            .filter(|l| l.contains("port  1:") || l.contains("port  2:"))
        {
            assert!(!line.contains("pkts=0,"), "no traffic counted: {ports}");
        }
        let desc = h.ofctl(&[proto, &["dump-desc", "br0"]].concat());
        assert!(desc.contains("Manufacturer: xennet"), "{desc}");
    }
}

/// Same derivation as xennetd's `bridge::datapath_id`.
fn datapath_id(name: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (h & 0x0000_feff_ffff_ffff) | 0x0000_0200_0000_0000
}
