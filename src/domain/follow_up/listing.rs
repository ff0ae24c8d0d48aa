//! The schedule as the API returns it and `crisisd schedule` prints it.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{FollowUp, FollowUpState, Phase, Topic};
use crate::domain::{AnnouncementId, CrisisId};

/// A crisis's follow-ups at a glance, in its detail (`crisisd status ID`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FollowUpCounts {
    pub pending: u64,
    pub sent: u64,
    pub cancelled: u64,
    pub skipped: u64,
    /// When the next pending one is due.
    pub next_due: Option<DateTime<Utc>>,
}

impl FollowUpCounts {
    pub fn of(follow_ups: &[FollowUp]) -> Self {
        let mut counts = Self::default();
        for f in follow_ups {
            match f.state {
                FollowUpState::Pending => {
                    counts.pending += 1;
                    counts.next_due = Some(counts.next_due.map_or(f.due_at, |d| d.min(f.due_at)));
                }
                FollowUpState::Sent => counts.sent += 1,
                FollowUpState::Cancelled => counts.cancelled += 1,
                FollowUpState::Skipped => counts.skipped += 1,
            }
        }
        counts
    }

    /// One line for `crisisd status ID`, or none without follow-ups.
    pub fn line(&self) -> Option<String> {
        if self.pending + self.sent + self.cancelled + self.skipped == 0 {
            return None;
        }
        let next = self
            .next_due
            .map(|at| format!(" (next {})", at.format("%Y-%m-%d %H:%M UTC")))
            .unwrap_or_default();
        Some(format!(
            "Follow-ups: {} pending{next}, {} sent, {} cancelled, {} skipped",
            self.pending, self.sent, self.cancelled, self.skipped
        ))
    }
}

/// `GET /v1/follow-ups` and `GET /v1/crises/{id}/follow-ups`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScheduleList {
    /// The zone of `due_local`: the one asked for with `?tz=`, else the
    /// daemon's `[follow_ups] time_zone`.
    pub time_zone: String,
    /// By due time.
    pub follow_ups: Vec<ScheduleEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScheduleEntry {
    pub id: Uuid,
    pub crisis_id: CrisisId,
    pub plan: String,
    pub step: String,
    pub phase: Phase,
    pub topic: Topic,
    pub occurrence: u32,
    pub due_at: DateTime<Utc>,
    pub due_local: String,
    pub state: FollowUpState,
    pub reason: Option<String>,
    pub announcement_id: Option<AnnouncementId>,
    pub settled_at: Option<DateTime<Utc>>,
}

impl ScheduleList {
    pub fn new(follow_ups: Vec<FollowUp>, zone: Tz) -> Self {
        Self {
            time_zone: zone.name().to_owned(),
            follow_ups: follow_ups
                .into_iter()
                .map(|f| ScheduleEntry {
                    due_local: local(f.due_at, zone),
                    id: f.id,
                    crisis_id: f.crisis_id,
                    plan: f.spec.plan,
                    step: f.spec.step,
                    phase: f.spec.phase,
                    topic: f.spec.topic,
                    occurrence: f.occurrence,
                    due_at: f.due_at,
                    state: f.state,
                    reason: f.reason,
                    announcement_id: f.announcement_id,
                    settled_at: f.settled_at,
                })
                .collect(),
        }
    }

    /// A table for a terminal, due times in `zone`.
    pub fn table(&self, zone: Tz, with_crisis: bool) -> String {
        if self.follow_ups.is_empty() {
            return "No follow-ups.\n".to_owned();
        }
        let mut rows = vec![vec![
            format!("DUE ({})", zone.name()),
            "STATE".to_owned(),
            "STEP".to_owned(),
            "TOPIC".to_owned(),
            "REASON".to_owned(),
        ]];
        if with_crisis {
            rows[0].insert(1, "CRISIS".to_owned());
        }
        for f in &self.follow_ups {
            let mut step = match f.phase {
                Phase::Active => f.step.clone(),
                Phase::AfterResolution => format!("after: {}", f.step),
            };
            if f.occurrence > 1 {
                step = format!("{step} #{}", f.occurrence);
            }
            let mut row = vec![
                local(f.due_at, zone),
                f.state.to_string(),
                step,
                f.topic.to_string(),
                f.reason.clone().unwrap_or_default(),
            ];
            if with_crisis {
                row.insert(1, f.crisis_id.to_string());
            }
            rows.push(row);
        }
        let columns = rows[0].len();
        let widths: Vec<usize> = (0..columns)
            .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
            .collect();
        let mut out = String::new();
        for row in rows {
            let line: Vec<String> = row
                .iter()
                .zip(&widths)
                .map(|(cell, width)| format!("{cell:<width$}"))
                .collect();
            out.push_str(line.join("  ").trim_end());
            out.push('\n');
        }
        out
    }
}

fn local(at: DateTime<Utc>, zone: Tz) -> String {
    at.with_timezone(&zone)
        .format("%Y-%m-%d %H:%M %Z")
        .to_string()
}
