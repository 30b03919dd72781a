//! The phases of a timed run, shared by the closed-loop scenarios through an `AtomicU8`
//! the driver flips: work done in `WARMUP` is not counted, `STOP` ends the workers.

/// Warming up: do the work, count nothing.
pub const WARMUP: u8 = 0;
/// The measured window.
pub const MEASURE: u8 = 1;
/// Workers finish.
pub const STOP: u8 = 2;
