//! Connection timeouts per protocol and state, and per-zone timeout
//! policies (OVS lib/conntrack-tp.c, `ct_dpif_netdev_tp_def`; the OVSDB
//! `CT_Timeout_Policy` table's keys).

/// A connection's timeout class (OVS `enum ct_timeout`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tm {
    /// TCP: first packet seen (`tcp_syn_sent`).
    TcpFirstPacket,
    /// TCP: opening (`tcp_syn_recv`).
    TcpOpening,
    /// TCP: established (`tcp_established`).
    TcpEstablished,
    /// TCP: one side closing (`tcp_fin_wait`).
    TcpClosing,
    /// TCP: both sides closing (`tcp_time_wait`).
    TcpFinWait,
    /// TCP: closed or reset (`tcp_close`).
    TcpClosed,
    /// UDP/other: first packet (`udp_first`).
    OtherFirst,
    /// UDP/other: several packets one way (`udp_single`).
    OtherMultiple,
    /// UDP/other: both ways (`udp_multiple`).
    OtherBidir,
    /// ICMP: request seen (`icmp_first`).
    IcmpFirst,
    /// ICMP: reply seen (`icmp_reply`).
    IcmpReply,
}

/// A timeout policy in seconds per attribute (OVS
/// `struct ct_dpif_timeout_policy`, attributes named as the OVSDB
/// `CT_Timeout_Policy` `timeouts` keys). [`Default`] is OVS's userspace
/// default policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeoutPolicy {
    /// `tcp_syn_sent` (s).
    pub tcp_syn_sent: u32,
    /// `tcp_syn_recv` (s).
    pub tcp_syn_recv: u32,
    /// `tcp_established` (s).
    pub tcp_established: u32,
    /// `tcp_fin_wait` (s).
    pub tcp_fin_wait: u32,
    /// `tcp_time_wait` (s).
    pub tcp_time_wait: u32,
    /// `tcp_close` (s).
    pub tcp_close: u32,
    /// `udp_first` (s).
    pub udp_first: u32,
    /// `udp_single` (s).
    pub udp_single: u32,
    /// `udp_multiple` (s).
    pub udp_multiple: u32,
    /// `icmp_first` (s).
    pub icmp_first: u32,
    /// `icmp_reply` (s).
    pub icmp_reply: u32,
}

impl Default for TimeoutPolicy {
    fn default() -> Self {
        TimeoutPolicy {
            tcp_syn_sent: 30,
            tcp_syn_recv: 30,
            tcp_established: 24 * 60 * 60,
            tcp_fin_wait: 15 * 60,
            tcp_time_wait: 45,
            tcp_close: 30,
            udp_first: 60,
            udp_single: 60,
            udp_multiple: 30,
            icmp_first: 60,
            icmp_reply: 30,
        }
    }
}

impl TimeoutPolicy {
    /// Seconds for a timeout class (OVS `tm_to_ct_dpif_tp`).
    pub fn seconds(&self, tm: Tm) -> u32 {
        match tm {
            Tm::TcpFirstPacket => self.tcp_syn_sent,
            Tm::TcpOpening => self.tcp_syn_recv,
            Tm::TcpEstablished => self.tcp_established,
            Tm::TcpClosing => self.tcp_fin_wait,
            Tm::TcpFinWait => self.tcp_time_wait,
            Tm::TcpClosed => self.tcp_close,
            Tm::OtherFirst => self.udp_first,
            Tm::OtherMultiple => self.udp_single,
            Tm::OtherBidir => self.udp_multiple,
            Tm::IcmpFirst => self.icmp_first,
            Tm::IcmpReply => self.icmp_reply,
        }
    }

    /// Set one attribute by its OVSDB name; false for an unknown name.
    pub fn set(&mut self, name: &str, secs: u32) -> bool {
        let f = match name {
            "tcp_syn_sent" => &mut self.tcp_syn_sent,
            "tcp_syn_recv" => &mut self.tcp_syn_recv,
            "tcp_established" => &mut self.tcp_established,
            "tcp_fin_wait" => &mut self.tcp_fin_wait,
            "tcp_time_wait" => &mut self.tcp_time_wait,
            "tcp_close" => &mut self.tcp_close,
            "udp_first" => &mut self.udp_first,
            "udp_single" => &mut self.udp_single,
            "udp_multiple" => &mut self.udp_multiple,
            "icmp_first" => &mut self.icmp_first,
            "icmp_reply" => &mut self.icmp_reply,
            _ => return false,
        };
        *f = secs;
        true
    }
}
