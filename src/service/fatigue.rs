//! No reader is worn out by a flapping source: past `[fatigue]
//! max_per_reader_per_hour` non-critical announcements in an hour, a
//! reader's next one is written dead with cause `capped` and its reason
//! (visible in `crisisd dead`, requeueable by a person). Critical crises
//! and corrections are never held back.

use std::collections::HashMap;

use super::{CrisisService, ServiceError};
use crate::domain::{AnnouncementKind, Crisis, Severity};
use crate::outbox::{Announcement, DeadCause, NewDelivery, Planned};

/// The window the cap counts in.
const WINDOW: chrono::TimeDelta = chrono::TimeDelta::hours(1);

impl CrisisService {
    /// See `[fatigue] max_per_reader_per_hour`; 0 turns the cap off.
    pub fn with_reader_cap(mut self, per_hour: u32) -> Self {
        self.reader_cap = per_hour;
        self
    }

    /// Turns the queued deliveries of readers who have had their share of
    /// non-critical announcements this hour into dead ones, with why.
    /// Returns how many it held back.
    pub(super) async fn hold_back(
        &self,
        crisis: &Crisis,
        announcement: &Announcement,
        deliveries: &mut [NewDelivery],
    ) -> Result<usize, ServiceError> {
        let cap = self.reader_cap;
        if cap == 0 || exempt(crisis, announcement) {
            return Ok(0);
        }
        let mut readers: Vec<String> = deliveries
            .iter()
            .filter(|d| matches!(d.planned, Planned::Queued { .. }))
            .filter_map(|d| d.recipient_id.clone())
            .collect();
        readers.sort_unstable();
        readers.dedup();
        if readers.is_empty() {
            return Ok(0);
        }
        let since = announcement.created_at - WINDOW;
        let over: HashMap<String, u32> = self
            .storage
            .plans
            .recent_messages(&readers, since, announcement.id)
            .await?
            .into_iter()
            .filter(|(_, n)| *n >= cap)
            .collect();
        let mut held = 0;
        for delivery in deliveries.iter_mut() {
            let Some(had) = delivery.recipient_id.as_ref().and_then(|r| over.get(r)) else {
                continue;
            };
            if matches!(delivery.planned, Planned::Queued { .. }) {
                delivery.planned = Planned::Dead {
                    cause: DeadCause::Capped,
                    reason: format!(
                        "held back: the reader was sent {had} non-critical messages in the hour \
                         before ([fatigue] max_per_reader_per_hour = {cap})"
                    ),
                };
                held += 1;
            }
        }
        if held > 0 {
            tracing::info!(crisis_id = %crisis.id, announcement = %announcement.kind, held,
                "Deliveries held back by the per-reader cap.");
        }
        Ok(held)
    }
}

/// Critical crises and corrections always reach every reader.
fn exempt(crisis: &Crisis, announcement: &Announcement) -> bool {
    crisis.severity == Severity::Critical || announcement.kind == AnnouncementKind::Correction
}
