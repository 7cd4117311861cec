//! The restart back-off of crashing containers, as the kubelet does it: 10 s, doubling to a cap
//! of 5 minutes, reset once a container has run for 10 minutes.

use std::time::Duration;

pub const INITIAL: Duration = Duration::from_secs(10);
pub const MAX: Duration = Duration::from_secs(300);
/// A container that ran this long without failing starts over at `INITIAL`.
pub const RESET_AFTER: Duration = Duration::from_secs(600);

/// Back-off state of one container.
#[derive(Debug, Clone, Default)]
pub struct Backoff {
    next: Option<Duration>,
}

impl Backoff {
    /// The delay before restarting a container that just exited after running for `ran`.
    pub fn next_delay(&mut self, ran: Duration) -> Duration {
        if ran >= RESET_AFTER {
            self.next = None;
        }
        let delay = self.next.unwrap_or(INITIAL);
        self.next = Some((delay * 2).min(MAX));
        delay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_to_the_cap_and_resets() {
        let mut b = Backoff::default();
        let quick = Duration::from_secs(1);
        let delays: Vec<u64> = (0..7).map(|_| b.next_delay(quick).as_secs()).collect();
        assert_eq!(delays, [10, 20, 40, 80, 160, 300, 300]);
        assert_eq!(b.next_delay(RESET_AFTER).as_secs(), 10);
        assert_eq!(b.next_delay(quick).as_secs(), 20);
    }
}
