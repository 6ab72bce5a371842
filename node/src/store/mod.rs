//! Local storage of a node: block files and the ordered object index.

pub mod blocks;
pub mod index;
mod keys;

pub use blocks::{BlockError, BlockStore};
pub use index::{Index, IndexError, ListQuery, Op, OpResult, StoreOutcome};
