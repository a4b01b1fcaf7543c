//! A cap on how many connections (or tasks) a listener runs at once.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Counts live connections up to a fixed capacity. A slot is held for as
/// long as its [`Slot`] lives; when none is free the caller refuses.
#[derive(Clone, Debug)]
pub struct Gauge {
    sem: Arc<Semaphore>,
    capacity: u32,
}

/// One occupied place in a [`Gauge`]; dropping it frees the place.
#[derive(Debug)]
pub struct Slot(#[allow(dead_code)] OwnedSemaphorePermit);

impl Gauge {
    pub fn new(capacity: u32) -> Gauge {
        let capacity = capacity.max(1);
        Gauge {
            sem: Arc::new(Semaphore::new(capacity as usize)),
            capacity,
        }
    }

    /// A free slot, or `None` when the gauge is full.
    pub fn try_enter(&self) -> Option<Slot> {
        self.sem.clone().try_acquire_owned().ok().map(Slot)
    }

    /// How many slots are taken now.
    pub fn in_use(&self) -> u32 {
        self.capacity - self.sem.available_permits() as u32
    }

    pub fn capacity(&self) -> u32 {
        self.capacity
    }

    /// Waits until every slot is free again, at most `grace`; true if they
    /// all came back in time.
    pub async fn wait_empty(&self, grace: Duration) -> bool {
        tokio::time::timeout(grace, self.sem.acquire_many(self.capacity))
            .await
            .is_ok_and(|r| r.is_ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_gauge_refuses_and_a_dropped_slot_frees_its_place() {
        let g = Gauge::new(2);
        let a = g.try_enter().unwrap();
        let _b = g.try_enter().unwrap();
        assert!(g.try_enter().is_none());
        assert_eq!(g.in_use(), 2);
        assert!(!g.wait_empty(Duration::from_millis(20)).await);
        drop(a);
        assert_eq!(g.in_use(), 1);
        assert!(g.try_enter().is_some());
    }
}
