// SPDX-License-Identifier: GPL-2.0

//! Small per-module index pools: the N of `/dev/irqstormN` and of `/sys/class/irqstorm/irqstormN`
//! (the lowest free index, returned when its holder is dropped).

use kernel::sync::atomic::{Atomic, Full, Relaxed};

/// Up to 32 indices, as bits of one atomic word.
pub(crate) struct IndexPool {
    taken: Atomic<u32>,
    size: u32,
}

/// A taken index; given back on drop.
pub(crate) struct Index {
    pool: &'static IndexPool,
    index: u32,
}

impl IndexPool {
    /// A pool of `size` (at most 32) indices.
    pub(crate) const fn new(size: u32) -> Self {
        Self { taken: Atomic::new(0), size: if size > 32 { 32 } else { size } }
    }

    /// The lowest free index; `None` when all are taken.
    pub(crate) fn take(&'static self) -> Option<Index> {
        let mut cur = self.taken.load(Relaxed);
        loop {
            let i = (0..self.size).find(|i| cur & (1 << i) == 0)?;
            match self.taken.cmpxchg(cur, cur | (1 << i), Full) {
                Ok(_) => return Some(Index { pool: self, index: i }),
                Err(seen) => cur = seen,
            }
        }
    }
}

impl Index {
    pub(crate) fn get(&self) -> u32 {
        self.index
    }
}

impl Drop for Index {
    fn drop(&mut self) {
        let mut cur = self.pool.taken.load(Relaxed);
        while let Err(seen) = self.pool.taken.cmpxchg(cur, cur & !(1 << self.index), Full) {
            cur = seen;
        }
    }
}

#[kernel::prelude::kunit_tests(irqstorm_index_pool)]
mod tests {
    use super::*;

    static POOL: IndexPool = IndexPool::new(3);

    #[test]
    fn the_lowest_free_index_is_taken_and_a_dropped_one_comes_back() {
        let a = POOL.take().unwrap();
        let b = POOL.take().unwrap();
        let c = POOL.take().unwrap();
        assert_eq!((a.get(), b.get(), c.get()), (0, 1, 2));
        assert!(POOL.take().is_none());
        drop(b);
        let d = POOL.take().unwrap();
        assert_eq!(d.get(), 1);
        drop((a, c, d));
        assert_eq!(POOL.take().map(|i| i.get()), Some(0));
    }
}
