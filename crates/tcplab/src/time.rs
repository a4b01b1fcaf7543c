//! Virtual time: nanoseconds since the start of a simulation.

/// A point in virtual time, in nanoseconds.
pub type Time = u64;

pub const US: Time = 1_000;
pub const MS: Time = 1_000_000;
pub const SEC: Time = 1_000_000_000;

/// Time to put `bytes` on a wire of `rate_bps` (0 = infinitely fast).
pub fn tx_time(bytes: u32, rate_bps: u64) -> Time {
    if rate_bps == 0 {
        0
    } else {
        (u64::from(bytes) * 8 * SEC).div_ceil(rate_bps)
    }
}

/// Seconds as a float, for output.
pub fn secs(t: Time) -> f64 {
    t as f64 / SEC as f64
}
