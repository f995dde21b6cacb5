//! Throughput arithmetic of the body guard, with no clock: callers pass the
//! times in, so every rule here is tested without sockets or timers.
//!
//! Time here is *waiting time*: the time the caller spent polling the body
//! while no data was ready. Time the caller spends away from the body does not
//! count, so a caller that processes each chunk slowly does not make the
//! server look slow.

use std::time::Duration;

/// How many slots a throughput window is divided into. The window slides one
/// slot at a time, and the guard checks the rate at each slot boundary.
pub(crate) const SLOTS: usize = 10;

/// Bytes received over the most recent window of waiting time, kept in
/// [`SLOTS`] slots of equal length.
#[derive(Debug, Clone)]
pub(crate) struct RateWindow {
    slot: Duration,
    /// Bytes per slot; slot `i` (counted from the start) is at `i % SLOTS`.
    bytes: [u64; SLOTS],
    /// The slot that `clock` is in, counted from the start.
    current: u64,
    /// Waiting time so far.
    clock: Duration,
}

impl RateWindow {
    /// Creates an empty window of the given length of waiting time.
    pub(crate) fn new(window: Duration) -> Self {
        // The builder rejects windows under 10 ms; the floor only keeps the
        // arithmetic below free of division by zero.
        let slot = (window / SLOTS as u32).max(Duration::from_nanos(1));
        RateWindow {
            slot,
            bytes: [0; SLOTS],
            current: 0,
            clock: Duration::ZERO,
        }
    }

    /// Returns the waiting time so far.
    #[cfg(test)]
    fn clock(&self) -> Duration {
        self.clock
    }

    /// Moves the clock forward to `clock` and clears the slots that fall out
    /// of the window. A `clock` behind the current one changes nothing.
    pub(crate) fn advance_to(&mut self, clock: Duration) {
        if clock <= self.clock {
            return;
        }
        let target = self.slot_index(clock);
        let skipped = target.saturating_sub(self.current);
        if skipped >= SLOTS as u64 {
            self.bytes = [0; SLOTS];
        } else {
            for index in self.current + 1..=target {
                self.bytes[(index % SLOTS as u64) as usize] = 0;
            }
        }
        self.current = target;
        self.clock = clock;
    }

    /// Adds `bytes` to the slot the clock is in.
    pub(crate) fn record(&mut self, bytes: u64) {
        let slot = &mut self.bytes[(self.current % SLOTS as u64) as usize];
        *slot = slot.saturating_add(bytes);
    }

    /// Returns the bytes in the window and the waiting time they arrived in:
    /// the current, partial slot and the `SLOTS - 1` full slots before it, or
    /// all the time so far while that is shorter.
    pub(crate) fn recent(&self) -> (u64, Duration) {
        let bytes = self
            .bytes
            .iter()
            .fold(0u64, |sum, b| sum.saturating_add(*b));
        let oldest = self.current.saturating_sub(SLOTS as u64 - 1);
        let span = self.clock.saturating_sub(self.slot_start(oldest));
        (bytes, span)
    }

    /// Returns the rate over [`recent`](Self::recent), in bytes per second,
    /// or `None` before any waiting time has passed.
    pub(crate) fn rate(&self) -> Option<f64> {
        let (bytes, span) = self.recent();
        if span.is_zero() {
            return None;
        }
        Some(bytes as f64 / span.as_secs_f64())
    }

    /// Returns whether the recent rate is below `min_bytes_per_second`.
    /// Before any waiting time has passed there is no rate, and so no verdict.
    pub(crate) fn is_below(&self, min_bytes_per_second: u64) -> bool {
        let (bytes, span) = self.recent();
        if span.is_zero() {
            return false;
        }
        // bytes / span < min  <=>  bytes * 1e9 < min * span_ns, in integers.
        let received = u128::from(bytes) * 1_000_000_000;
        let required = u128::from(min_bytes_per_second) * span.as_nanos();
        received < required
    }

    /// Returns the waiting time from the clock to the next slot boundary,
    /// which is never zero.
    pub(crate) fn until_next_slot(&self) -> Duration {
        let next = self.slot_start(self.current.saturating_add(1));
        // Only a clock near `Duration::MAX` can reach the last boundary.
        next.saturating_sub(self.clock).max(Duration::from_nanos(1))
    }

    fn slot_index(&self, clock: Duration) -> u64 {
        u64::try_from(clock.as_nanos() / self.slot.as_nanos()).unwrap_or(u64::MAX)
    }

    fn slot_start(&self, index: u64) -> Duration {
        let nanos = u128::from(index) * self.slot.as_nanos();
        u64::try_from(nanos).map_or(Duration::MAX, Duration::from_nanos)
    }
}

/// Returns whether data was still flowing steadily when a limit fired, which
/// makes the limit, not the server, the likely cause.
///
/// - `data_seen`: whether any body data had arrived;
/// - `current_gap`: how long the caller had been waiting for the next data
///   when the limit fired (zero when it was not waiting);
/// - `max_gap`: the maximum wait between two arrivals of data before that;
/// - `active`: the time since the body transfer began.
///
/// Data counts as flowing when the current wait is no longer than twice the
/// maximum earlier gap, or than an eighth of the transfer so far. A server
/// that sends a chunk every 20 ms passes. One that sent 10 bytes and then
/// nothing for the rest of the attempt does not.
///
/// NOTE: this is a heuristic. A server that paused once for long early on
/// and then stalls for less than twice that pause still counts as flowing.
pub(crate) fn was_flowing(
    data_seen: bool,
    current_gap: Duration,
    max_gap: Duration,
    active: Duration,
) -> bool {
    data_seen && current_gap <= max_gap.saturating_mul(2).max(active / 8)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn first_slot_rate_covers_time_so_far() {
        let mut window = RateWindow::new(1_000 * MS);

        window.advance_to(50 * MS);
        window.record(500);

        assert_eq!(window.recent(), (500, 50 * MS));
        assert_eq!(window.rate(), Some(10_000.0));
    }

    #[test]
    fn no_rate_before_any_waiting_time() {
        let mut window = RateWindow::new(1_000 * MS);

        window.record(100);

        assert_eq!(window.rate(), None);
        assert!(!window.is_below(u64::MAX));
    }

    #[test]
    fn old_slots_fall_out_of_the_window() {
        let mut window = RateWindow::new(1_000 * MS);
        window.advance_to(10 * MS);
        window.record(1_000);

        window.advance_to(1_150 * MS);

        let (bytes, span) = window.recent();
        assert_eq!(bytes, 0);
        // Slots 2 to 11 remain: from 200 ms to 1150 ms.
        assert_eq!(span, 950 * MS);
    }

    #[test]
    fn slot_still_in_window_keeps_its_bytes() {
        let mut window = RateWindow::new(1_000 * MS);
        window.advance_to(250 * MS);
        window.record(300);

        window.advance_to(1_150 * MS);

        assert_eq!(window.recent(), (300, 950 * MS));
    }

    #[test]
    fn long_jump_clears_every_slot() {
        let mut window = RateWindow::new(1_000 * MS);
        for step in 1..=10 {
            window.advance_to(step * 100 * MS);
            window.record(10);
        }

        window.advance_to(60_000 * MS);

        assert_eq!(window.recent().0, 0);
    }

    #[test]
    fn clock_never_moves_back() {
        let mut window = RateWindow::new(1_000 * MS);
        window.advance_to(500 * MS);

        window.advance_to(100 * MS);

        assert_eq!(window.clock(), 500 * MS);
    }

    #[test]
    fn rate_below_minimum_is_detected_exactly() {
        let mut window = RateWindow::new(1_000 * MS);
        window.advance_to(1_000 * MS);
        window.record(999);

        // Slots 1 to 10 cover 100 ms to 1000 ms: 999 bytes in 900 ms.
        assert!(!window.is_below(1_110));
        assert!(window.is_below(1_111));
    }

    #[test]
    fn next_slot_is_never_now() {
        let mut window = RateWindow::new(1_000 * MS);

        assert_eq!(window.until_next_slot(), 100 * MS);
        window.advance_to(100 * MS);
        assert_eq!(window.until_next_slot(), 100 * MS);
        window.advance_to(130 * MS);
        assert_eq!(window.until_next_slot(), 70 * MS);
    }

    #[test]
    fn huge_clock_does_not_overflow() {
        let mut window = RateWindow::new(10 * MS);

        window.advance_to(Duration::MAX);
        window.record(u64::MAX);
        window.record(u64::MAX);

        assert_eq!(window.recent().0, u64::MAX);
        assert!(!window.is_below(1));
        assert!(window.until_next_slot() > Duration::ZERO);
    }

    #[test]
    fn steady_chunks_count_as_flowing() {
        // A chunk every 20 ms; the limit fired 15 ms into a wait.
        assert!(was_flowing(true, 15 * MS, 20 * MS, 300 * MS));
    }

    #[test]
    fn silence_after_a_burst_is_a_stall() {
        // Ten bytes at once, then nothing for the rest of a 300 ms attempt.
        assert!(!was_flowing(true, 295 * MS, Duration::ZERO, 300 * MS));
    }

    #[test]
    fn short_wait_after_a_burst_still_flows() {
        assert!(was_flowing(true, 30 * MS, Duration::ZERO, 300 * MS));
    }

    #[test]
    fn nothing_received_is_never_flowing() {
        assert!(!was_flowing(
            false,
            Duration::ZERO,
            Duration::ZERO,
            300 * MS
        ));
    }

    #[test]
    fn stall_after_steady_flow_is_a_stall() {
        // Chunks every 20 ms for a second, then 400 ms of silence.
        assert!(!was_flowing(true, 400 * MS, 20 * MS, 1_400 * MS));
    }
}
