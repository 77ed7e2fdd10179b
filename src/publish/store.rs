//! Where events wait for their acknowledgement: the SQLite outbox, or — when its file cannot be
//! opened — a bounded queue in memory, so the agent keeps running (without crash safety).

use std::collections::VecDeque;

use super::outbox::{Outbox, OutboxError, Pending};

/// Event storage used by the publisher.
pub enum Store {
    /// Durable, on disk.
    Disk(Outbox),
    /// Lost on exit; used only when the outbox cannot be opened.
    Memory(MemoryQueue),
}

/// A bounded in-memory queue with the outbox's semantics: insertion order, oldest dropped when full.
pub struct MemoryQueue {
    items: VecDeque<Pending>,
    capacity: usize,
    next_seq: i64,
    dropped: u64,
}

impl MemoryQueue {
    /// An empty queue holding at most `capacity` messages.
    pub fn new(capacity: usize) -> MemoryQueue {
        MemoryQueue {
            items: VecDeque::new(),
            capacity: capacity.max(1),
            next_seq: 1,
            dropped: 0,
        }
    }
}

impl Store {
    /// Appends a message; returns how many old ones were dropped to make room.
    pub fn push(
        &mut self,
        id: &str,
        topic: &str,
        payload: &[u8],
        retain: bool,
    ) -> Result<u64, OutboxError> {
        match self {
            Store::Disk(outbox) => outbox.push(id, topic, payload, retain),
            Store::Memory(q) => {
                let mut dropped = 0;
                while q.items.len() >= q.capacity {
                    q.items.pop_front();
                    dropped += 1;
                }
                q.dropped += dropped;
                q.items.push_back(Pending {
                    seq: q.next_seq,
                    id: id.to_owned(),
                    topic: topic.to_owned(),
                    payload: payload.to_vec(),
                    retain,
                });
                q.next_seq += 1;
                Ok(dropped)
            }
        }
    }

    /// Up to `limit` oldest messages after `after`.
    pub fn pending_after(&self, after: i64, limit: usize) -> Result<Vec<Pending>, OutboxError> {
        match self {
            Store::Disk(outbox) => outbox.pending_after(after, limit),
            Store::Memory(q) => Ok(q
                .items
                .iter()
                .filter(|p| p.seq > after)
                .take(limit)
                .cloned()
                .collect()),
        }
    }

    /// Forgets an acknowledged message.
    pub fn remove(&mut self, seq: i64) -> Result<(), OutboxError> {
        match self {
            Store::Disk(outbox) => outbox.remove(seq),
            Store::Memory(q) => {
                q.items.retain(|p| p.seq != seq);
                Ok(())
            }
        }
    }

    /// Messages waiting.
    pub fn len(&self) -> Result<usize, OutboxError> {
        match self {
            Store::Disk(outbox) => outbox.len(),
            Store::Memory(q) => Ok(q.items.len()),
        }
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> Result<bool, OutboxError> {
        Ok(self.len()? == 0)
    }

    /// Messages dropped for lack of room.
    pub fn dropped(&self) -> Result<u64, OutboxError> {
        match self {
            Store::Disk(outbox) => outbox.dropped(),
            Store::Memory(q) => Ok(q.dropped),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_queue_drops_the_oldest_when_full() {
        let mut store = Store::Memory(MemoryQueue::new(2));
        for id in ["a", "b", "c"] {
            store.push(id, "t", b"{}", false).unwrap();
        }
        let ids: Vec<String> = store
            .pending_after(0, 10)
            .unwrap()
            .into_iter()
            .map(|p| p.id)
            .collect();
        assert_eq!(ids, ["b", "c"]);
        assert_eq!(store.dropped().unwrap(), 1);
        let first = store.pending_after(0, 1).unwrap()[0].seq;
        store.remove(first).unwrap();
        assert_eq!(store.pending_after(first, 10).unwrap().len(), 1);
        assert_eq!(store.len().unwrap(), 1);
    }
}
