//! The form a message takes while it waits in an open bundle (OpenFlow
//! 1.4.1 §6.8): flow-mods are kept with a compact match, everything else
//! as decoded.
//!
//! A decoded [`FlowMod`] carries its match as a full [`Match`] (two
//! [`xennet_datapath::FlowKey`]-sized arrays, 608 bytes), so a bundle of
//! 100,000 flow-mods held as decoded takes about 74 MiB that is touched
//! once and freed at the commit. Kept as a [`MiniMatch`] (only the words
//! the mask has bits in, as the rules keep theirs) a flow-mod takes about
//! a fifth of that. The match is expanded back (key bits outside the
//! mask zeroed, which every flow-mod path does first anyway,
//! [`crate::classifier::normalize`]) when the bundle is committed.

use xennet_datapath::flow::MiniMatch;
use xennet_openflow::model::{FlowMod, FlowModCommand, Instructions};
use xennet_openflow::Msg;

use crate::classifier::{full_match, minimatch};

/// A flow-mod with its match compact (the fields of [`FlowMod`]).
#[derive(Debug, Clone)]
pub struct CompactFlowMod {
    cookie: u64,
    cookie_mask: u64,
    buffer_id: u32,
    out_port: u32,
    out_group: u32,
    idle_timeout: u16,
    hard_timeout: u16,
    priority: u16,
    flags: u16,
    table_id: u8,
    command: FlowModCommand,
    matcher: MiniMatch,
    instructions: Instructions,
}

/// A message held in an open bundle (see the module docs).
#[derive(Debug, Clone)]
pub enum Bundled {
    /// A flow-mod, its match compact.
    FlowMod(Box<CompactFlowMod>),
    /// Any other message, as decoded.
    Msg(Box<Msg>),
}

impl Bundled {
    /// The bundled form of `msg` (a flow-mod is compacted; its box is
    /// freed).
    pub fn new(mut msg: Box<Msg>) -> Bundled {
        // Fields taken from the box in place: the decoded message is
        // never copied whole.
        let Msg::FlowMod(fm) = &mut *msg else {
            return Bundled::Msg(msg);
        };
        Bundled::FlowMod(Box::new(CompactFlowMod {
            cookie: fm.cookie,
            cookie_mask: fm.cookie_mask,
            buffer_id: fm.buffer_id,
            out_port: fm.out_port,
            out_group: fm.out_group,
            idle_timeout: fm.idle_timeout,
            hard_timeout: fm.hard_timeout,
            priority: fm.priority,
            flags: fm.flags,
            table_id: fm.table_id,
            command: fm.command,
            matcher: minimatch(&fm.matcher),
            instructions: std::mem::take(&mut fm.instructions),
        }))
    }

    /// The message, if it is not a flow-mod (which needs expanding).
    pub fn as_msg(&self) -> Option<&Msg> {
        match self {
            Bundled::Msg(m) => Some(m),
            Bundled::FlowMod(_) => None,
        }
    }

    /// The message again, its match (for a flow-mod) normalised.
    pub fn expand(self) -> Msg {
        match self {
            Bundled::Msg(m) => *m,
            Bundled::FlowMod(c) => {
                let c = *c;
                Msg::FlowMod(FlowMod {
                    cookie: c.cookie,
                    cookie_mask: c.cookie_mask,
                    table_id: c.table_id,
                    command: c.command,
                    idle_timeout: c.idle_timeout,
                    hard_timeout: c.hard_timeout,
                    priority: c.priority,
                    buffer_id: c.buffer_id,
                    out_port: c.out_port,
                    out_group: c.out_group,
                    flags: c.flags,
                    matcher: full_match(&c.matcher),
                    instructions: c.instructions,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xennet_openflow::header::NO_BUFFER;
    use xennet_openflow::model::{Action, Match, OxmField};

    /// A flow-mod comes back as it went in, but for key bits outside
    /// its mask; other messages come back unchanged.
    #[test]
    fn round_trip() {
        let mut matcher = Match::CATCHALL;
        matcher
            .set_field(OxmField::EthType, 0x0800, 0xffff)
            .unwrap();
        matcher
            .set_field(OxmField::Ipv4Dst, 0x0a00_0001, 0xffff_ff00)
            .unwrap();
        // A key bit outside the mask.
        let free = (0..matcher.mask.words.len())
            .find(|&i| matcher.mask.words[i] == 0)
            .unwrap();
        matcher.key.words[free] = 0xdead;
        let fm = FlowMod {
            cookie: 7,
            cookie_mask: 3,
            table_id: 4,
            command: FlowModCommand::ModifyStrict,
            idle_timeout: 5,
            hard_timeout: 6,
            priority: 1234,
            buffer_id: NO_BUFFER,
            out_port: 9,
            out_group: 10,
            flags: 1,
            matcher,
            instructions: Instructions::apply(vec![Action::Output {
                port: 1,
                max_len: 0,
            }]),
        };
        let b = Bundled::new(Box::new(Msg::FlowMod(fm.clone())));
        assert!(b.as_msg().is_none());
        let mut want = fm;
        want.matcher = crate::classifier::normalize(&want.matcher);
        assert_eq!(b.expand(), Msg::FlowMod(want.clone()));
        assert_ne!(want.matcher, matcher, "the test's key had bits to drop");
        let b = Bundled::new(Box::new(Msg::BarrierRequest));
        assert_eq!(b.as_msg(), Some(&Msg::BarrierRequest));
        assert_eq!(b.expand(), Msg::BarrierRequest);
    }
}
