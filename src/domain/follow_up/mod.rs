//! Follow-ups while a crisis lasts: resource links, self-care and
//! check-ins on a schedule computed and stored when the crisis is declared,
//! sent as `follow_up` announcements through the same planner and outbox,
//! and cancelled by the all-clear.

mod listing;
mod quiet_hours;
mod resources;
mod settings;
mod steps;

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use listing::{FollowUpCounts, ScheduleEntry, ScheduleList};
pub use quiet_hours::{QuietHours, instant as local_instant, next_local};
pub use resources::{CategoryView, FollowUpView, Library, ResourceView};
pub use settings::{
    FollowUpSettings, PlanSettings, QuietHoursSettings, ResourceSettings, ResourceText,
    ResourcesFile, StepSettings,
};
pub use steps::{FollowUps, normalize_cron};

use crate::domain::{AnnouncementId, CrisisId, DomainError, string_enum};

string_enum!(
    /// What a resource is for.
    Category {
        GovernmentAssistance => "government_assistance",
        CommunityGroups => "community_groups",
        SelfCare => "self_care",
        GatedContent => "gated_content",
        Other => "other",
    }
);

string_enum!(
    /// What a follow-up says; picks the section of the follow-up templates.
    Topic {
        Resources => "resources",
        SelfCare => "self_care",
        StatusRecap => "status_recap",
        CheckIn => "check_in",
        Satisfaction => "satisfaction",
    }
);

string_enum!(
    /// While the crisis lasts, or after the all-clear.
    Phase {
        Active => "active",
        AfterResolution => "after_resolution",
    }
);

string_enum!(
    FollowUpState {
        Pending => "pending",
        Sent => "sent",
        Cancelled => "cancelled",
        Skipped => "skipped",
    }
);

/// What one follow-up sends, to whom and where; kept with the follow-up
/// and with the announcement it becomes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FollowUpSpec {
    pub plan: String,
    pub step: String,
    pub phase: Phase,
    pub topic: Topic,
    /// Resource categories to list; empty: all.
    #[serde(default)]
    pub categories: Vec<Category>,
    /// Channel names; empty: all.
    #[serde(default)]
    pub channels: Vec<String>,
    #[serde(default)]
    pub locales: Vec<String>,
    #[serde(default)]
    pub regions: Vec<String>,
    /// A reader-local step (`at = "09:00"`): each reader's message waits
    /// for this time in the reader's own zone (broadcasts: in `[follow_ups]
    /// time_zone`), held like quiet hours.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_at: Option<chrono::NaiveTime>,
}

impl FollowUpSpec {
    pub fn uses_channel(&self, channel: &str) -> bool {
        self.channels.is_empty() || self.channels.iter().any(|c| c == channel)
    }

    /// Whether a subscriber with this locale and region is in the step's
    /// audience. A locale matches by itself or its language (`bn` admits
    /// `bn-BD`).
    pub fn admits(&self, locale: &str, region: Option<&str>) -> bool {
        let language = locale.split('-').next().unwrap_or(locale);
        let locale_ok = self.locales.is_empty()
            || self
                .locales
                .iter()
                .any(|l| l.eq_ignore_ascii_case(locale) || l.eq_ignore_ascii_case(language));
        let region_ok = self.regions.is_empty()
            || region.is_some_and(|r| self.regions.iter().any(|x| x.eq_ignore_ascii_case(r)));
        locale_ok && region_ok
    }
}

/// A follow-up to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewFollowUp {
    pub id: Uuid,
    pub crisis_id: CrisisId,
    /// 1 for the first message of its step, 2 for the next, ...
    pub occurrence: u32,
    pub due_at: DateTime<Utc>,
    pub spec: FollowUpSpec,
}

/// A follow-up as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FollowUp {
    pub id: Uuid,
    pub crisis_id: CrisisId,
    pub occurrence: u32,
    pub due_at: DateTime<Utc>,
    pub spec: FollowUpSpec,
    pub state: FollowUpState,
    /// Why it was cancelled or skipped.
    pub reason: Option<String>,
    /// The announcement it became, once sent.
    pub announcement_id: Option<AnnouncementId>,
    /// When it was sent, cancelled or skipped.
    pub settled_at: Option<DateTime<Utc>>,
}

/// What a transition does to the crisis's follow-ups, in its transaction.
/// (A resolution always cancels the pending ones, whatever this says.)
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FollowUpChange {
    /// Cancel every pending follow-up, with this reason.
    pub cancel: Option<String>,
    pub schedule: Vec<NewFollowUp>,
}

/// The reason given to follow-ups (and their queued messages) that the
/// all-clear cancels.
pub const CANCELLED_BY_RESOLVE: &str = "cancelled: the crisis was resolved";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_admits_its_locales_with_their_regional_forms_and_its_regions() {
        let spec = FollowUpSpec {
            plan: "p".into(),
            step: "s".into(),
            phase: Phase::Active,
            topic: Topic::CheckIn,
            categories: Vec::new(),
            channels: vec!["sms".into()],
            locales: vec!["bn".into()],
            regions: vec!["North".into()],
            local_at: None,
        };
        assert!(spec.admits("bn-BD", Some("north")));
        assert!(spec.admits("bn", Some("NORTH")));
        assert!(!spec.admits("en", Some("north")));
        assert!(!spec.admits("bn", Some("south")));
        assert!(
            !spec.admits("bn", None),
            "a region is required when the step names some"
        );
        assert!(spec.uses_channel("sms") && !spec.uses_channel("email"));
        let everyone = FollowUpSpec {
            locales: Vec::new(),
            regions: Vec::new(),
            channels: Vec::new(),
            ..spec
        };
        assert!(everyone.admits("eo", None) && everyone.uses_channel("email"));
    }
}
