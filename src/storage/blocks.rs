//! The block pipeline every large transfer shares: blocks move in parallel, their bytes are
//! handed on in order (so a whole-blob MD5 can be computed as they pass), and a byte budget
//! shared between transfers bounds memory whatever the blob sizes.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;

use azure_storage_blobs::prelude::BlockId;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::StorageError;

/// One budget unit: the budget counts mebibytes in flight.
const UNIT: u64 = 1 << 20;

/// Memory in flight, shared by every transfer that draws on it.
#[derive(Clone, Debug)]
pub struct Budget {
    sem: Arc<Semaphore>,
    units: u32,
}

impl Budget {
    /// A budget of `bytes` (at least one block's worth is always allowed).
    pub fn new(bytes: u64) -> Self {
        let units = (bytes / UNIT).clamp(1, u32::MAX as u64 / 2) as u32;
        Self {
            sem: Arc::new(Semaphore::new(units as usize)),
            units,
        }
    }

    /// The budget in bytes.
    pub fn bytes(&self) -> u64 {
        self.units as u64 * UNIT
    }

    /// Reserves room for `bytes`; released when the permit drops.
    pub async fn reserve(&self, bytes: u64) -> OwnedSemaphorePermit {
        let want = bytes.div_ceil(UNIT).clamp(1, self.units as u64) as u32;
        self.sem
            .clone()
            .acquire_many_owned(want)
            .await
            .expect("the budget semaphore is never closed")
    }
}

/// Block ids must have the same length within a blob; a fixed-width counter does that.
pub fn block_id(i: u64) -> BlockId {
    BlockId::new(format!("amsplay-{i:010}").into_bytes())
}

/// Byte range of block `i` of a blob of `size` bytes cut into `block` byte blocks.
pub fn block_range(i: u64, block: u64, size: u64) -> std::ops::Range<u64> {
    let start = i * block;
    start..(start + block).min(size)
}

/// Number of blocks for `size` bytes (zero-length blobs still have none).
pub fn block_count(size: u64, block: u64) -> u64 {
    size.div_ceil(block)
}

/// Runs `work(i)` for `i in 0..count`, at most `window` at a time, each spawned on the runtime
/// and each holding `cost(i)` bytes of `budget` until its output has been given to `sink`.
/// Outputs reach `sink` in block order. Budget is reserved in block order too, so the oldest
/// unfinished block of every transfer always holds its share: transfers sharing a budget
/// cannot starve each other.
pub async fn ordered<T, F, Fut>(
    count: u64,
    window: usize,
    budget: &Budget,
    cost: impl Fn(u64) -> u64,
    work: F,
    mut sink: impl FnMut(u64, T) -> Result<(), StorageError>,
) -> Result<(), StorageError>
where
    F: Fn(u64) -> Fut,
    Fut: Future<Output = Result<T, StorageError>> + Send + 'static,
    T: Send + 'static,
{
    type Slot<T> = tokio::task::JoinHandle<(Result<T, StorageError>, OwnedSemaphorePermit)>;
    let mut inflight: VecDeque<(u64, Slot<T>)> = VecDeque::new();
    let window = window.max(1);
    let result = async {
        for i in 0..count {
            while inflight.len() >= window {
                let (j, head) = inflight.pop_front().expect("nonempty");
                let (out, permit) = join(head).await?;
                sink(j, out?)?;
                drop(permit);
            }
            // Wait for budget, but keep draining finished blocks meanwhile so that this
            // transfer's own permits come back.
            let permit = loop {
                let reserve = budget.reserve(cost(i));
                tokio::pin!(reserve);
                match inflight.front_mut() {
                    None => break reserve.await,
                    Some((_, head)) => {
                        tokio::select! {
                            biased;
                            joined = head => {
                                let (j, _) = inflight.pop_front().expect("nonempty");
                                let (out, permit) = joined.map_err(join_error)?;
                                sink(j, out?)?;
                                drop(permit);
                            }
                            p = &mut reserve => break p,
                        }
                    }
                }
            };
            let fut = work(i);
            inflight.push_back((i, tokio::spawn(async move { (fut.await, permit) })));
        }
        while let Some((j, head)) = inflight.pop_front() {
            let (out, permit) = join(head).await?;
            sink(j, out?)?;
            drop(permit);
        }
        Ok(())
    }
    .await;
    if result.is_err() {
        for (_, h) in inflight {
            h.abort();
        }
    }
    result
}

async fn join<T>(
    h: tokio::task::JoinHandle<(Result<T, StorageError>, OwnedSemaphorePermit)>,
) -> Result<(Result<T, StorageError>, OwnedSemaphorePermit), StorageError> {
    h.await.map_err(join_error)
}

fn join_error(e: tokio::task::JoinError) -> StorageError {
    StorageError::Other {
        op: "block transfer".into(),
        message: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_cover_the_blob() {
        assert_eq!(block_count(0, 4), 0);
        assert_eq!(block_count(9, 4), 3);
        assert_eq!(block_range(2, 4, 9), 8..9);
        assert_eq!(block_id(3).bytes().len(), block_id(12345).bytes().len());
    }

    #[tokio::test]
    async fn outputs_arrive_in_order_under_a_tight_budget() {
        let budget = Budget::new(2 << 20);
        let mut seen = Vec::new();
        ordered(
            50,
            8,
            &budget,
            |_| 1 << 20,
            |i| async move {
                tokio::time::sleep(std::time::Duration::from_millis((50 - i) % 7)).await;
                Ok(i)
            },
            |j, v| {
                assert_eq!(j, v);
                seen.push(v);
                Ok(())
            },
        )
        .await
        .unwrap();
        assert_eq!(seen, (0..50).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn two_transfers_sharing_a_small_budget_both_finish() {
        let budget = Budget::new(3 << 20);
        let run = |b: Budget| async move {
            let mut n = 0;
            ordered(
                40,
                4,
                &b,
                |_| 1 << 20,
                |_| async { Ok(()) },
                |_, _| {
                    n += 1;
                    Ok(())
                },
            )
            .await
            .map(|_| n)
        };
        let (a, b) = tokio::join!(run(budget.clone()), run(budget.clone()));
        assert_eq!((a.unwrap(), b.unwrap()), (40, 40));
    }
}
