//! The time base of file-backed tables (feature `clock`, Linux): every
//! nanosecond value a producer on a host stamps, and the instant a
//! consumer compares them with, is `CLOCK_MONOTONIC`. Producers and
//! consumers both read it here, so they cannot disagree on the clock.

/// `CLOCK_MONOTONIC` in nanoseconds: the clock of runstate times and
/// uptimes in vstats tables (and the one `std::time::Instant` reads on
/// Linux). Saturates rather than wraps; 0 if the clock cannot be read.
pub fn monotonic_ns() -> u64 {
    let ts = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    let secs = u64::try_from(ts.tv_sec).unwrap_or(0);
    let nanos = u64::try_from(ts.tv_nsec).unwrap_or(0);
    secs.saturating_mul(1_000_000_000).saturating_add(nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    extern crate std;

    #[test]
    fn monotonic_never_goes_back_and_counts_sleeps() {
        let a = monotonic_ns();
        std::thread::sleep(core::time::Duration::from_millis(2));
        let b = monotonic_ns();
        assert!(a > 0 && b >= a + 2_000_000, "{a} {b}");
    }
}
