//! How many validation / introspection callouts may be in flight at once.
//!
//! Every request with a credential the cache does not know costs a callout.
//! Without a bound, a flood of random keys or tokens becomes a flood on the
//! identity services (the gateway amplifies it), and each paused request
//! holds memory in Envoy until its callout answers or times out. The budget
//! is per Wasm VM, that is per Envoy worker: a counter only that worker
//! touches, so it needs no shared-data round trip and cannot leak across
//! workers (a VM that dies takes its count with it). The process-wide bound
//! is `maxCalloutsInFlight` × the number of workers.
//!
//! Beyond the bound the request is refused at once with 503 (fail closed),
//! never queued: a queue would only move the pile-up into the gateway.

/// Callouts in flight against a limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalloutBudget {
    limit: u32,
    in_flight: u32,
}

impl CalloutBudget {
    pub fn new(limit: u32) -> Self {
        Self {
            limit,
            in_flight: 0,
        }
    }

    /// Takes a slot for a callout; false when all `limit` slots are taken.
    pub fn try_acquire(&mut self) -> bool {
        if self.in_flight >= self.limit {
            return false;
        }
        self.in_flight += 1;
        true
    }

    /// Gives a slot back (when the callout answered, failed to start, or
    /// its request went away). Never below zero: a spurious release cannot
    /// open more slots than the limit.
    pub fn release(&mut self) {
        self.in_flight = self.in_flight.saturating_sub(1);
    }

    pub fn in_flight(&self) -> u32 {
        self.in_flight
    }

    pub fn limit(&self) -> u32 {
        self.limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_limit_slots_are_handed_out() {
        let mut b = CalloutBudget::new(3);
        assert!(b.try_acquire() && b.try_acquire() && b.try_acquire());
        assert!(!b.try_acquire());
        assert_eq!(b.in_flight(), 3);
        b.release();
        assert!(b.try_acquire());
        assert!(!b.try_acquire());
        assert_eq!((b.in_flight(), b.limit()), (3, 3));
    }

    #[test]
    fn spurious_releases_open_no_extra_slots() {
        let mut b = CalloutBudget::new(2);
        for _ in 0..5 {
            b.release();
        }
        assert_eq!(b.in_flight(), 0);
        assert!(b.try_acquire() && b.try_acquire());
        assert!(!b.try_acquire());
    }

    #[test]
    fn any_interleaving_stays_within_the_limit() {
        // acquire/release sequences: the count always equals the slots held
        let mut b = CalloutBudget::new(4);
        let mut held = 0u32;
        for step in 0..1000u32 {
            if step % 3 == 2 && held > 0 {
                b.release();
                held -= 1;
            } else if b.try_acquire() {
                held += 1;
            }
            assert_eq!(b.in_flight(), held);
            assert!(held <= 4);
        }
    }
}
