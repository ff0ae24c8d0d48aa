//! What a template sees: the views of the company, the crisis, the
//! announcement and its reader, documented in templates/README.md.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use crate::domain::directory::{self, ContactView};
use crate::domain::follow_up::FollowUpView;
use crate::domain::{AnnouncementKind, Crisis, Severity};

#[derive(Debug, Clone, Serialize)]
pub struct CompanyView {
    pub name: String,
    pub status_url: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct CrisisView {
    pub id: String,
    pub kind: String,
    /// Templates see its name (`critical`); a composed message keeps it
    /// for cards and headings.
    pub severity: Severity,
    pub title: String,
    pub summary: String,
    pub status: String,
    pub declared_at: String,
    pub declared_at_local: String,
    /// A drill: the renderer marks every message with the locale's
    /// `drill_marker`.
    pub drill: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct AnnouncementView {
    pub kind: AnnouncementKind,
    pub message: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RecipientView {
    pub name: String,
    pub timezone: String,
    /// The reader's one-click unsubscribe link (email only).
    pub unsubscribe_url: Option<String>,
}

/// Everything a template sees; documented in templates/README.md.
#[derive(Debug, Clone, Serialize)]
pub struct RenderContext {
    pub locale: String,
    pub company: CompanyView,
    pub crisis: CrisisView,
    pub announcement: AnnouncementView,
    pub recipient: Option<RecipientView>,
    pub contacts: Vec<ContactView>,
    pub emergency_contacts: Vec<ContactView>,
    pub now_local: String,
    /// For a follow-up: its topic and the reader's resources.
    pub follow_up: Option<FollowUpView>,
    /// How many optional parts a short form may carry, from [`MAX_ROOM`]
    /// down to 0: `compose` renders a short form with the most room that
    /// fits the channel's limit, so no template counts characters itself.
    pub room: u8,
    /// The question an SMS ends with ("Reply 1 if you need help now, 2 if
    /// you are safe."), in the reader's language: `compose` appends it,
    /// so it counts against the limit in both forms and no template has
    /// to print it.
    #[serde(skip)]
    pub question: Option<String>,
    /// An email's answers to the announcement's question, one link each
    /// (each reader's own, signed); none when it asks nothing or answer
    /// links cannot be signed (no `[consent]`).
    pub answers: Option<Vec<AnswerLinkView>>,
}

/// One answer of a question, as an email offers it.
#[derive(Debug, Clone, Serialize)]
pub struct AnswerLinkView {
    pub number: u8,
    /// What the answer means, in the reader's language.
    pub label: String,
    /// The reader's link that gives this answer.
    pub url: String,
    pub urgent: bool,
}

/// The most room a short form is rendered with; long forms always see it.
pub const MAX_ROOM: u8 = 3;

pub fn local_time(at: DateTime<Utc>, zone: Tz) -> String {
    format!(
        "{} ({})",
        at.with_timezone(&zone).format("%Y-%m-%d %H:%M"),
        zone.name()
    )
}

impl RenderContext {
    /// The context for one reader of one announcement.
    pub fn new(
        locale: &str,
        company: CompanyView,
        crisis: &Crisis,
        kind: AnnouncementKind,
        recipient: Option<(&str, Tz)>,
        contacts: Vec<ContactView>,
        now: DateTime<Utc>,
    ) -> Self {
        let zone = recipient.map_or(Tz::UTC, |(_, tz)| tz);
        let (title, summary) = crisis.text_for(locale);
        let emergency_contacts = directory::emergency_route(&contacts);
        Self {
            locale: locale.to_owned(),
            company,
            crisis: CrisisView {
                id: crisis.id.to_string(),
                kind: crisis.kind.to_string(),
                severity: crisis.severity,
                title: title.to_owned(),
                summary: summary.to_owned(),
                status: crisis.status.to_string(),
                declared_at: crisis.declared_at.to_rfc3339(),
                declared_at_local: local_time(crisis.declared_at, zone),
                drill: crisis.drill,
            },
            announcement: AnnouncementView {
                kind,
                message: crisis.message_for(locale).map(str::to_owned),
            },
            recipient: recipient.map(|(name, tz)| RecipientView {
                name: name.to_owned(),
                timezone: tz.name().to_owned(),
                unsubscribe_url: None,
            }),
            contacts,
            emergency_contacts,
            now_local: local_time(now, zone),
            follow_up: None,
            room: MAX_ROOM,
            question: None,
            answers: None,
        }
    }
}
