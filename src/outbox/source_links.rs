//! Which crisis an outside source's incident (the flag file, a webhook's
//! incident) drives. Links are set and removed with transitions; here they
//! are read, and forgotten when their crisis was resolved another way.

use async_trait::async_trait;

use super::StoreError;
use crate::domain::CrisisId;

/// An outside source's incident and the crisis it drives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceLink {
    pub source: String,
    pub external_id: String,
    pub crisis_id: CrisisId,
    /// What the source last said, to notice a change.
    pub fingerprint: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceLinkChange {
    Set(SourceLink),
    Remove { source: String, external_id: String },
}

#[async_trait]
pub trait SourceLinkStore: Send + Sync + 'static {
    async fn source_link(
        &self,
        source: &str,
        external_id: &str,
    ) -> Result<Option<SourceLink>, StoreError>;
    /// Forgets a source's link, when its crisis was resolved another way.
    async fn unlink_source(&self, source: &str, external_id: &str) -> Result<(), StoreError>;
}
