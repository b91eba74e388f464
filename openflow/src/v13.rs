//! OpenFlow 1.3 messages. TODO(codec13).

use crate::error::{DecodeError, OfError};
use crate::header::Header;
use crate::model::{EncodeError, Msg};

/// Decode one OpenFlow 1.3 message.
///
/// # Errors
/// The [`OfError`] to send back.
pub fn decode(_h: &Header, _buf: &[u8]) -> Result<Msg, DecodeError> {
    Err(DecodeError::new(OfError::BAD_TYPE, "not implemented"))
}

/// Encode one message as OpenFlow 1.3.
///
/// # Errors
/// When the message has no 1.3 form.
pub fn encode(_msg: &Msg, _xid: u32, _out: &mut Vec<u8>) -> Result<(), EncodeError> {
    Err(EncodeError::Unsupported("not implemented"))
}
