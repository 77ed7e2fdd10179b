//! The agent's bounded queues and their counters: capacity, what waits in it now, the most that
//! ever waited, and what its policy turned away, read by the stats message and `/metrics`.
//! [`channel`] (tokio) and [`sync_channel`] (threads) count for themselves; queues that keep their
//! own length (the outbox, a frame slot) report it with [`QueueStats::set_depth`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc as std_mpsc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::mpsc;

/// What a full queue does with one more item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// The sender waits (events, results: nothing may be lost).
    Wait,
    /// The newest item replaces the waiting one, which is counted as dropped (live frames).
    Replace,
    /// The new item is dropped and counted (diagnostics that are also logged).
    Drop,
    /// The new item is refused, counted, and its sender told why (texts from MQTT).
    Refuse,
    /// The oldest item is dropped and counted to make room (the outbox).
    DropOldest,
}

impl Policy {
    /// The name used in stats and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Policy::Wait => "wait",
            Policy::Replace => "replace",
            Policy::Drop => "drop",
            Policy::Refuse => "refuse",
            Policy::DropOldest => "drop-oldest",
        }
    }
}

/// The counters of one queue.
#[derive(Debug)]
pub struct QueueStats {
    /// Its name in stats and metrics, e.g. `publish` or `frames/door`.
    pub name: String,
    /// Most items it holds.
    pub capacity: usize,
    /// What it does when full.
    pub policy: Policy,
    depth: AtomicU64,
    high_water: AtomicU64,
    dropped: AtomicU64,
}

impl QueueStats {
    /// New counters for a queue of `capacity` items.
    pub fn new(name: impl Into<String>, capacity: usize, policy: Policy) -> Arc<QueueStats> {
        Arc::new(QueueStats {
            name: name.into(),
            capacity,
            policy,
            depth: AtomicU64::new(0),
            high_water: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        })
    }

    /// One item went in (or is about to: counted before a send, so that a receiver popping it
    /// first never sees the depth go below zero; a send that then fails is popped again, and
    /// the high-water mark never goes above the capacity).
    pub fn pushed(&self) {
        let depth = self.depth.fetch_add(1, Ordering::Relaxed) + 1;
        self.high_water
            .fetch_max(depth.min(self.capacity as u64), Ordering::Relaxed);
    }

    /// One item came out.
    pub fn popped(&self) {
        let _ = self
            .depth
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |d| d.checked_sub(1));
    }

    /// Sets the depth of a queue that reports its own length (the outbox, a frame slot).
    pub fn set_depth(&self, depth: u64) {
        self.depth.store(depth, Ordering::Relaxed);
        self.high_water.fetch_max(depth, Ordering::Relaxed);
    }

    /// One item was dropped or refused by the policy.
    pub fn dropped(&self) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
    }

    /// Sets the dropped count of a queue that keeps its own.
    pub fn set_dropped(&self, dropped: u64) {
        self.dropped.store(dropped, Ordering::Relaxed);
    }

    /// Items waiting now.
    pub fn depth(&self) -> u64 {
        self.depth.load(Ordering::Relaxed)
    }

    /// Most items that ever waited at once.
    pub fn high_water(&self) -> u64 {
        self.high_water.load(Ordering::Relaxed)
    }

    /// Items dropped or refused so far.
    pub fn dropped_total(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// The stats message's view.
    pub fn to_json(&self) -> Value {
        json!({
            "capacity": self.capacity,
            "depth": self.depth(),
            "high_water": self.high_water(),
            "dropped": self.dropped_total(),
            "policy": self.policy.name(),
        })
    }
}

/// The sending half of a counted tokio queue.
#[derive(Debug)]
pub struct Sender<T> {
    tx: mpsc::Sender<T>,
    stats: Arc<QueueStats>,
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        Sender {
            tx: self.tx.clone(),
            stats: self.stats.clone(),
        }
    }
}

/// The receiving half of a counted tokio queue.
#[derive(Debug)]
pub struct Receiver<T> {
    rx: mpsc::Receiver<T>,
    stats: Arc<QueueStats>,
}

/// A bounded tokio queue counted in `stats` (its capacity is `stats.capacity`, at least 1).
pub fn channel<T>(stats: Arc<QueueStats>) -> (Sender<T>, Receiver<T>) {
    let (tx, rx) = mpsc::channel(stats.capacity.max(1));
    (
        Sender {
            tx,
            stats: stats.clone(),
        },
        Receiver { rx, stats },
    )
}

impl<T> Sender<T> {
    /// Queues `item`, waiting while the queue is full; false when the receiver is gone.
    pub async fn send(&self, item: T) -> bool {
        let sent = self.tx.send(item).await.is_ok();
        if sent {
            self.stats.pushed();
        }
        sent
    }

    /// Queues `item` from a thread outside the runtime, waiting while the queue is full.
    pub fn blocking_send(&self, item: T) -> bool {
        let sent = self.tx.blocking_send(item).is_ok();
        if sent {
            self.stats.pushed();
        }
        sent
    }

    /// Queues `item` if there is room; a full queue counts it as dropped and gives it back.
    pub fn try_send(&self, item: T) -> Result<(), Full<T>> {
        self.stats.pushed();
        let back = match self.tx.try_send(item) {
            Ok(()) => return Ok(()),
            Err(mpsc::error::TrySendError::Full(item)) => {
                self.stats.dropped();
                Full::Full(item)
            }
            Err(mpsc::error::TrySendError::Closed(item)) => Full::Closed(item),
        };
        self.stats.popped();
        Err(back)
    }

    /// The queue's counters.
    pub fn stats(&self) -> &Arc<QueueStats> {
        &self.stats
    }
}

/// Why [`Sender::try_send`] gave an item back.
#[derive(Debug, PartialEq, Eq)]
pub enum Full<T> {
    /// The queue holds its capacity.
    Full(T),
    /// The receiver is gone.
    Closed(T),
}

impl<T> Receiver<T> {
    /// The next item; `None` when every sender is gone and the queue is empty.
    pub async fn recv(&mut self) -> Option<T> {
        let item = self.rx.recv().await;
        if item.is_some() {
            self.stats.popped();
        }
        item
    }

    /// The next item, from a thread outside the runtime.
    pub fn blocking_recv(&mut self) -> Option<T> {
        let item = self.rx.blocking_recv();
        if item.is_some() {
            self.stats.popped();
        }
        item
    }
}

/// The sending half of a counted queue between threads.
#[derive(Debug)]
pub struct SyncSender<T> {
    tx: std_mpsc::SyncSender<T>,
    stats: Arc<QueueStats>,
}

impl<T> Clone for SyncSender<T> {
    fn clone(&self) -> Self {
        SyncSender {
            tx: self.tx.clone(),
            stats: self.stats.clone(),
        }
    }
}

/// The receiving half of a counted queue between threads.
#[derive(Debug)]
pub struct SyncReceiver<T> {
    rx: std_mpsc::Receiver<T>,
    stats: Arc<QueueStats>,
}

/// A bounded queue between threads counted in `stats`; senders wait while it is full.
pub fn sync_channel<T>(stats: Arc<QueueStats>) -> (SyncSender<T>, SyncReceiver<T>) {
    let (tx, rx) = std_mpsc::sync_channel(stats.capacity.max(1));
    (
        SyncSender {
            tx,
            stats: stats.clone(),
        },
        SyncReceiver { rx, stats },
    )
}

impl<T> SyncSender<T> {
    /// Queues `item`, waiting while the queue is full; false when the receiver is gone.
    pub fn send(&self, item: T) -> bool {
        // Counted first: the receiver may pop it before `send` returns.
        self.stats.pushed();
        let sent = self.tx.send(item).is_ok();
        if !sent {
            self.stats.popped();
        }
        sent
    }

    /// Queues `item` without waiting; when the queue is full the item is dropped and counted
    /// (the `Drop` policy). False when it was dropped or the receiver is gone.
    pub fn try_send(&self, item: T) -> bool {
        self.stats.pushed();
        let full = match self.tx.try_send(item) {
            Ok(()) => return true,
            Err(e) => matches!(e, std_mpsc::TrySendError::Full(_)),
        };
        self.stats.popped();
        if full {
            self.stats.dropped();
        }
        false
    }

    /// The queue's counters.
    pub fn stats(&self) -> &Arc<QueueStats> {
        &self.stats
    }
}

impl<T> SyncReceiver<T> {
    /// The next item within `timeout`.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<T, std_mpsc::RecvTimeoutError> {
        let item = self.rx.recv_timeout(timeout);
        if item.is_ok() {
            self.stats.popped();
        }
        item
    }

    /// The next item if one waits.
    pub fn try_recv(&self) -> Result<T, std_mpsc::TryRecvError> {
        let item = self.rx.try_recv();
        if item.is_ok() {
            self.stats.popped();
        }
        item
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_and_high_water_follow_pushes_and_pops() {
        let q = QueueStats::new("publish", 4, Policy::Wait);
        q.pushed();
        q.pushed();
        q.popped();
        q.pushed();
        q.popped();
        q.popped();
        q.popped();
        assert_eq!((q.depth(), q.high_water()), (0, 2));
        q.dropped();
        assert_eq!(q.to_json()["dropped"], 1);
        assert_eq!(q.to_json()["policy"], "wait");
    }

    #[test]
    fn a_full_thread_queue_drops_and_counts() {
        let (tx, rx) = sync_channel(QueueStats::new("fallback_answers/door", 2, Policy::Drop));
        assert!(tx.try_send(1));
        assert!(tx.try_send(2));
        assert!(!tx.try_send(3));
        let stats = tx.stats();
        assert_eq!(
            (stats.depth(), stats.high_water(), stats.dropped_total()),
            (2, 2, 1)
        );
        assert_eq!(rx.try_recv(), Ok(1));
        assert_eq!(rx.try_recv(), Ok(2));
        assert!(rx.try_recv().is_err());
        assert_eq!(stats.depth(), 0);
    }

    #[tokio::test]
    async fn a_full_queue_refuses_and_counts() {
        let (tx, mut rx) = channel(QueueStats::new("text_in", 2, Policy::Refuse));
        assert_eq!(tx.try_send(1), Ok(()));
        assert_eq!(tx.try_send(2), Ok(()));
        assert_eq!(tx.try_send(3), Err(Full::Full(3)));
        assert_eq!(
            (
                tx.stats().depth(),
                tx.stats().high_water(),
                tx.stats().dropped_total()
            ),
            (2, 2, 1)
        );
        assert_eq!(rx.recv().await, Some(1));
        assert_eq!(tx.stats().depth(), 1);
        drop(rx);
        assert_eq!(tx.try_send(4), Err(Full::Closed(4)));
    }

    #[test]
    fn a_sync_queue_counts_what_waits() {
        let (tx, rx) = sync_channel(QueueStats::new("text", 3, Policy::Wait));
        assert!(tx.send("a"));
        assert!(tx.send("b"));
        assert_eq!(rx.try_recv(), Ok("a"));
        assert_eq!(rx.recv_timeout(Duration::from_millis(10)), Ok("b"));
        assert!(rx.try_recv().is_err());
        assert_eq!((tx.stats.depth(), tx.stats.high_water()), (0, 2));
    }
}
