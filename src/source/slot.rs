//! The hand-off between a source and inference: one slot holding the newest frame. Live sources
//! `put` (an unread frame is replaced and counted as dropped, so a slow model never builds a
//! backlog); file sources `put_wait` (they wait for the slot, nothing is dropped).

use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

/// What [`Slot::take`] found.
#[derive(Debug, PartialEq)]
pub enum Taken<T> {
    /// The newest item.
    Item(T),
    /// Nothing arrived in time.
    Timeout,
    /// The source is finished and the slot is empty.
    Closed,
}

struct State<T> {
    item: Option<T>,
    closed: bool,
    dropped: u64,
}

/// A single-item, newest-wins channel between two threads.
pub struct Slot<T> {
    state: Mutex<State<T>>,
    changed: Condvar,
}

impl<T> Default for Slot<T> {
    fn default() -> Self {
        Slot {
            state: Mutex::new(State {
                item: None,
                closed: false,
                dropped: 0,
            }),
            changed: Condvar::new(),
        }
    }
}

impl<T> Slot<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whether an unread item waits.
    pub fn is_full(&self) -> bool {
        self.lock().item.is_some()
    }

    /// Puts `item`, replacing (and counting) an unread one. Returns false once closed.
    pub fn put(&self, item: T) -> bool {
        let mut state = self.lock();
        if state.closed {
            return false;
        }
        if state.item.replace(item).is_some() {
            state.dropped += 1;
        }
        self.changed.notify_all();
        true
    }

    /// Waits until the slot is empty, then puts `item`. Returns false once closed.
    pub fn put_wait(&self, item: T) -> bool {
        let mut state = self.lock();
        while state.item.is_some() && !state.closed {
            state = self
                .changed
                .wait(state)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        if state.closed {
            return false;
        }
        state.item = Some(item);
        self.changed.notify_all();
        true
    }

    /// Takes the newest item, waiting up to `timeout`.
    pub fn take(&self, timeout: Duration) -> Taken<T> {
        let state = self.lock();
        let (mut state, _) = self
            .changed
            .wait_timeout_while(state, timeout, |s| s.item.is_none() && !s.closed)
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match state.item.take() {
            Some(item) => {
                self.changed.notify_all();
                Taken::Item(item)
            }
            None if state.closed => Taken::Closed,
            None => Taken::Timeout,
        }
    }

    /// No more items will come; a waiting item can still be taken.
    pub fn close(&self) {
        self.lock().closed = true;
        self.changed.notify_all();
    }

    /// Whether [`Slot::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// Items replaced before they were read.
    pub fn dropped(&self) -> u64 {
        self.lock().dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn stale_frames_are_dropped_and_counted() {
        let slot = Slot::default();
        for i in 0..5 {
            assert!(slot.put(i));
        }
        assert_eq!(slot.take(Duration::ZERO), Taken::Item(4));
        assert_eq!(slot.dropped(), 4);
        assert_eq!(slot.take(Duration::from_millis(1)), Taken::Timeout);
    }

    #[test]
    fn put_wait_loses_nothing() {
        let slot = Arc::new(Slot::default());
        let producer = {
            let slot = slot.clone();
            std::thread::spawn(move || {
                for i in 0..100 {
                    assert!(slot.put_wait(i));
                }
                slot.close();
            })
        };
        let mut seen = Vec::new();
        while let Taken::Item(i) = slot.take(Duration::from_secs(5)) {
            seen.push(i);
        }
        producer.join().unwrap();
        assert_eq!(seen, (0..100).collect::<Vec<_>>());
        assert_eq!(slot.dropped(), 0);
    }

    #[test]
    fn close_wakes_the_reader_after_the_last_item() {
        let slot = Slot::default();
        slot.put(1);
        slot.close();
        assert!(!slot.put(2));
        assert_eq!(slot.take(Duration::from_secs(1)), Taken::Item(1));
        assert_eq!(slot.take(Duration::from_secs(1)), Taken::Closed);
    }
}
