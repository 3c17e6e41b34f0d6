//! The upstreams a request may go to, in the balancer's order: its pick
//! first, then each node after it, wrapping round, each once (pingora's
//! `BackendIter`).
//!
//! A request that cannot use its pick walks on: an open circuit breaker
//! (熔断) passes it to the next candidate, and so does a connection that
//! failed (`--retries`). Both walk the same iterator, so a request never
//! goes back to an upstream it has passed, and never tries one twice.

/// The nodes after a pick, in order (see the module).
#[derive(Debug, Clone)]
pub struct Candidates {
    first: usize,
    len: usize,
    walked: usize,
}

impl Candidates {
    /// The candidates of a pick of node `first` among `len` nodes.
    pub fn after(first: usize, len: usize) -> Candidates {
        Candidates {
            first,
            len,
            walked: 0,
        }
    }

    /// How many are left to walk.
    pub fn remaining(&self) -> usize {
        self.len - self.walked
    }
}

impl Iterator for Candidates {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        if self.walked == self.len {
            return None;
        }
        let index = (self.first + self.walked) % self.len;
        self.walked += 1;
        Some(index)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining(), Some(self.remaining()))
    }
}

impl ExactSizeIterator for Candidates {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pick_first_then_round_the_ring_once() {
        // Four nodes, the balancer picked 2:
        //
        //   0   1  [2]  3        2 → 3 → 0 → 1, then nothing
        //   ^---------------'
        let walk: Vec<usize> = Candidates::after(2, 4).collect();
        assert_eq!(walk, [2, 3, 0, 1]);
        assert_eq!(Candidates::after(0, 1).collect::<Vec<_>>(), [0]);
        assert_eq!(Candidates::after(0, 0).next(), None);
    }

    #[test]
    fn a_walk_goes_on_where_it_stopped() {
        // A breaker passed over 1; the request went to 2, whose connection
        // failed; the retry goes on from 3, never back to 1 or 2.
        let mut candidates = Candidates::after(1, 4);
        assert_eq!(candidates.next(), Some(1));
        assert_eq!(candidates.next(), Some(2));
        assert_eq!(candidates.remaining(), 2);
        assert_eq!(candidates.collect::<Vec<_>>(), [3, 0]);
    }
}
