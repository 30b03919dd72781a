//! The one byte encoding for everything stored on disk or sent between peers: postcard.
//!
//! Log entries carry `Command`s, whose embedded concord-api types skip absent
//! optional fields in JSON; concord-state encodes those through its `wire` module
//! so they are postcard-safe (a skipped field would otherwise shift every later
//! byte). `tests.rs` guards that with entries that follow such a command.
//! Measured in a debug build on a 100-byte `Put` entry: postcard 136 bytes and
//! ~16 µs per encode+decode, JSON 561 bytes and ~130 µs.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Why bytes could not be encoded or decoded.
pub(crate) type CodecError = postcard::Error;

/// Encodes `value`.
pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, CodecError> {
    postcard::to_stdvec(value)
}

/// Decodes what [`encode`] wrote; trailing bytes are an error (a torn or misread record).
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let (value, rest) = postcard::take_from_bytes(bytes)?;
    if rest.is_empty() {
        Ok(value)
    } else {
        Err(postcard::Error::DeserializeBadEncoding)
    }
}

#[cfg(test)]
mod tests;
