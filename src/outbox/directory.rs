//! The live directory: which contact entries are marked unavailable, kept
//! so a restart and every daemon on the store see the same.

use async_trait::async_trait;

use super::StoreError;
use crate::domain::directory::EntryAvailability;

#[async_trait]
pub trait DirectoryStore: Send + Sync + 'static {
    /// Records `change` as the entry's state, and in its log, unless the
    /// entry already stands so (same availability and reason): returns
    /// whether it changed anything.
    async fn set_availability(&self, change: &EntryAvailability) -> Result<bool, StoreError>;
    /// Every entry with a recorded state (an entry never changed has none:
    /// it is available).
    async fn availability(&self) -> Result<Vec<EntryAvailability>, StoreError>;
    /// An entry's changes, newest first, at most `limit`.
    async fn availability_log(
        &self,
        entry: &str,
        limit: u32,
    ) -> Result<Vec<EntryAvailability>, StoreError>;
}
