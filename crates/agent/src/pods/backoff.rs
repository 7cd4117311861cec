//! The restart back-off of crashing containers and failing image pulls, as the kubelet does it:
//! the first retry is immediate, then 10 s doubling to a cap of 5 minutes; a container that ran
//! for 10 minutes starts over.

use std::time::Duration;

pub const INITIAL: Duration = Duration::from_secs(10);
pub const MAX: Duration = Duration::from_secs(300);
/// A container that ran this long without failing starts over with an immediate restart.
pub const RESET_AFTER: Duration = Duration::from_secs(600);

/// Back-off state of one container (or one image pull).
#[derive(Debug, Clone, Default)]
pub struct Backoff {
    /// The delay of the next failure; `None` until the first failure.
    next: Option<Duration>,
}

impl Backoff {
    /// The delay before retrying something that just failed after running for `ran`.
    pub fn next_delay(&mut self, ran: Duration) -> Duration {
        if ran >= RESET_AFTER {
            self.next = None;
        }
        match self.next {
            None => {
                self.next = Some(INITIAL);
                Duration::ZERO
            }
            Some(delay) => {
                self.next = Some((delay * 2).min(MAX));
                delay
            }
        }
    }

    /// Forget past failures (a pull that succeeded).
    pub fn reset(&mut self) {
        self.next = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn immediate_then_doubling_to_the_cap_and_reset() {
        let mut b = Backoff::default();
        let quick = Duration::from_secs(1);
        let delays: Vec<u64> = (0..8).map(|_| b.next_delay(quick).as_secs()).collect();
        assert_eq!(delays, [0, 10, 20, 40, 80, 160, 300, 300]);
        assert_eq!(b.next_delay(RESET_AFTER).as_secs(), 0);
        assert_eq!(b.next_delay(quick).as_secs(), 10);
        b.reset();
        assert_eq!(b.next_delay(quick).as_secs(), 0);
    }
}
