//! The crisis domain: what a crisis is and which transitions make sense.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};

use super::localized::{self, StaleLocales, TextField, Translations};
use super::selection::{AudienceSelection, Selection};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CrisisId(Uuid);

impl CrisisId {
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }

    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl Default for CrisisId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for CrisisId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for CrisisId {
    type Err = DomainError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s.trim())
            .map(Self)
            .map_err(|_| DomainError::InvalidId(s.to_owned()))
    }
}

macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
        #[serde(rename_all = "snake_case")]
        #[value(rename_all = "snake_case")]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(&self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl fmt::Display for $name {
            // `pad`, so a width in a format string lines tables up.
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = DomainError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(DomainError::UnknownValue {
                        what: stringify!($name),
                        value: other.to_owned(),
                        expected: [$($text),+].join(", "),
                    }),
                }
            }
        }
    };
}
// Also names the follow-ups' topics, categories and states, and the
// outbox's delivery states, dead causes and webhook verdicts.
pub(crate) use string_enum;

string_enum!(
    /// What kind of crisis this is; picks resources and wording.
    Kind {
        Outage => "outage",
        NaturalDisaster => "natural_disaster",
        Financial => "financial",
        Health => "health",
        Security => "security",
        Other => "other",
    }
);

string_enum!(
    /// How bad it is. `critical` banners use `role="alert"`.
    Severity {
        Minor => "minor",
        Major => "major",
        Critical => "critical",
    }
);

string_enum!(
    Status {
        Declared => "declared",
        Updated => "updated",
        Resolved => "resolved",
    }
);

string_enum!(
    /// One kind of message about a crisis; a correction is of a message
    /// sent in error, to those it reached.
    AnnouncementKind {
        Initial => "initial",
        Update => "update",
        FollowUp => "follow_up",
        Resolved => "resolved",
        Correction => "correction",
    }
);

string_enum!(
    /// Where a transition came from, for the audit trail; `daemon` for
    /// what the daemon did on its own account (a fallback released).
    ActorSource {
        Api => "api",
        Cli => "cli",
        FlagFile => "flag_file",
        Webhook => "webhook",
        Console => "console",
        Daemon => "daemon",
    }
);

impl Severity {
    /// Higher is worse; used to order banners.
    pub fn rank(&self) -> u8 {
        match self {
            Severity::Minor => 0,
            Severity::Major => 1,
            Severity::Critical => 2,
        }
    }
}

/// Who or what made a transition: an API token's name, a CLI user, the
/// flag file's path, a webhook source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub source: ActorSource,
    pub name: String,
}

impl Actor {
    pub fn new(source: ActorSource, name: impl Into<String>) -> Self {
        Self {
            source,
            name: name.into(),
        }
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.source, self.name)
    }
}

pub const MAX_TITLE_CHARS: usize = 200;
pub const MAX_SUMMARY_CHARS: usize = 4000;
pub const MAX_MESSAGE_CHARS: usize = 4000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    #[error(
        "a drill goes only to a drill audience, and none is configured: set [audience] drill_file"
    )]
    NoDrillAudience,
    #[error("`{0}` is not a crisis id (expected a UUID)")]
    InvalidId(String),
    #[error("unknown {what} `{value}` (expected one of: {expected})")]
    UnknownValue {
        what: &'static str,
        value: String,
        expected: String,
    },
    #[error("{field} must not be empty")]
    Empty { field: &'static str },
    #[error("{field} is too long ({len} characters, at most {max})")]
    TooLong {
        field: &'static str,
        len: usize,
        max: usize,
    },
    #[error("locale `{0}` is not a valid language tag")]
    InvalidLocale(String),
    #[error("crisis {id} is already resolved; declare a new crisis instead")]
    AlreadyResolved { id: CrisisId },
    #[error(
        "an update must change something: give a message, kind, severity, title, summary, audience or channels"
    )]
    EmptyUpdate,
    #[error("{field} must be one line (it is a headline in subjects, tables and chat)")]
    MultiLine { field: &'static str },
    #[error(
        "{field} contains the control character U+{code:04X} at character {at}; remove it \
         (control characters reach terminals and logs as commands)"
    )]
    ControlCharacter {
        field: &'static str,
        code: u32,
        at: usize,
    },
    #[error("{field} shows nothing: it is only spaces or invisible characters")]
    Invisible { field: &'static str },
    #[error(
        "localized text for `{0}` is empty: give a title, summary or message, or leave the locale out"
    )]
    EmptyTranslation(String),
    #[error(
        "localized messages need a message in the default language too (for every other reader)"
    )]
    MessageOnlyLocalized,
    #[error("{0}")]
    StaleLocales(StaleLocales),
    #[error("an all-clear changes only the message: give its localized text as `message` alone")]
    ResolutionRetitled,
}

/// What it takes to declare a crisis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Declaration {
    pub kind: Kind,
    pub severity: Severity,
    pub title: String,
    pub summary: String,
    /// Per-locale title, summary and message, e.g. `{"bn": {...}}`.
    #[serde(default)]
    pub localized: Translations,
    /// Optional first message, shown with the initial announcement.
    #[serde(default)]
    pub message: Option<String>,
    /// This is another crisis than an active one of the same kind and
    /// title: declare it anyway (without it, such a declaration is refused
    /// as a duplicate).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub separate: bool,
    /// An exercise: it reaches only the drill audience, every message is
    /// marked, and it stays a drill until it is resolved.
    #[serde(default)]
    pub drill: bool,
    /// Who is sent it: everyone (the default), or the readers of some
    /// locales and/or regions. Its updates and all-clear go to the same.
    #[serde(default)]
    pub audience: AudienceSelection,
    /// The channels it goes on; empty (the default): every channel.
    #[serde(default)]
    pub channels: Vec<String>,
}

/// A change to an active crisis. Every field is optional but at least one
/// must be given.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrisisUpdate {
    #[serde(default)]
    pub message: Option<String>,
    /// A crisis may be reclassified, e.g. an outage found to be a security
    /// incident.
    #[serde(default)]
    pub kind: Option<Kind>,
    #[serde(default)]
    pub severity: Option<Severity>,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub summary: Option<String>,
    /// New text per locale for what this update changes (and any other
    /// fix to a translation).
    #[serde(default)]
    pub localized: Option<Translations>,
    /// Locales with their own text for a field this update changes, and no
    /// new text here, read the default language's from now on. Without
    /// it, such an update is refused, naming the locales.
    #[serde(default)]
    pub fall_back: bool,
    /// A new audience for this update and what follows; absent: the same.
    #[serde(default)]
    pub audience: Option<AudienceSelection>,
    /// New channels for this update and what follows; absent: the same,
    /// `[]`: every channel.
    #[serde(default)]
    pub channels: Option<Vec<String>>,
}

/// The all-clear: an optional closing message, per locale too.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resolution {
    #[serde(default)]
    pub message: Option<String>,
    /// The message in other locales (`{"bn": {"message": "..."}}`).
    #[serde(default)]
    pub localized: Translations,
    /// As for an update: locales whose own message is not given here read
    /// the default language's.
    #[serde(default)]
    pub fall_back: bool,
}

impl From<Option<String>> for Resolution {
    fn from(message: Option<String>) -> Self {
        Self {
            message,
            ..Self::default()
        }
    }
}

/// Characters that take no room when shown: zero-width space, joiners
/// (which Bengali uses inside words, so only refused when they are all a
/// text has), word joiner, BOM, soft hyphen and the invisible operators.
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{200B}'..='\u{200D}' | '\u{2060}'..='\u{2064}' | '\u{FEFF}' | '\u{00AD}' | '\u{180E}'
    )
}

fn check_text(field: &'static str, text: &str, max: usize) -> Result<(), DomainError> {
    let len = text.chars().count();
    if text.trim().is_empty() {
        return Err(DomainError::Empty { field });
    }
    if len > max {
        return Err(DomainError::TooLong { field, len, max });
    }
    // Line breaks and tabs are text; every other C0 or C1 control and DEL
    // (ESC starts terminal sequences, NUL ends C strings) is refused.
    if let Some((at, c)) = text
        .chars()
        .enumerate()
        .find(|(_, c)| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err(DomainError::ControlCharacter {
            field,
            code: u32::from(c),
            at: at + 1,
        });
    }
    if text.chars().all(|c| c.is_whitespace() || is_invisible(c)) {
        return Err(DomainError::Invisible { field });
    }
    Ok(())
}

fn check_title(field: &'static str, title: &str) -> Result<(), DomainError> {
    check_text(field, title, MAX_TITLE_CHARS)?;
    if title.contains(['\n', '\r', '\u{2028}', '\u{2029}']) {
        return Err(DomainError::MultiLine { field });
    }
    Ok(())
}

/// Every locale tag valid, every text within its limits; a message in a
/// locale only beside one in the default language.
fn check_localized(localized: &Translations, has_message: bool) -> Result<(), DomainError> {
    for (locale, text) in localized {
        if super::Locale::parse(locale).is_err() {
            return Err(DomainError::InvalidLocale(locale.clone()));
        }
        if text.is_empty() {
            return Err(DomainError::EmptyTranslation(locale.clone()));
        }
        if let Some(title) = &text.title {
            check_title("localized title", title)?;
        }
        if let Some(summary) = &text.summary {
            check_text("localized summary", summary, MAX_SUMMARY_CHARS)?;
        }
        if let Some(message) = &text.message {
            check_text("localized message", message, MAX_MESSAGE_CHARS)?;
            if !has_message {
                return Err(DomainError::MessageOnlyLocalized);
            }
        }
    }
    Ok(())
}

fn check_message(message: &Option<String>) -> Result<(), DomainError> {
    match message {
        Some(m) => check_text("message", m, MAX_MESSAGE_CHARS),
        None => Ok(()),
    }
}

impl Declaration {
    pub fn validate(&self) -> Result<(), DomainError> {
        check_title("title", &self.title)?;
        check_text("summary", &self.summary, MAX_SUMMARY_CHARS)?;
        check_localized(&self.localized, self.message.is_some())?;
        check_message(&self.message)
    }
}

impl CrisisUpdate {
    pub fn validate(&self) -> Result<(), DomainError> {
        if self.message.is_none()
            && self.kind.is_none()
            && self.severity.is_none()
            && self.title.is_none()
            && self.summary.is_none()
            && self.localized.is_none()
            && self.audience.is_none()
            && self.channels.is_none()
        {
            return Err(DomainError::EmptyUpdate);
        }
        check_message(&self.message)?;
        if let Some(title) = &self.title {
            check_title("title", title)?;
        }
        if let Some(summary) = &self.summary {
            check_text("summary", summary, MAX_SUMMARY_CHARS)?;
        }
        if let Some(localized) = &self.localized {
            check_localized(localized, self.message.is_some())?;
        }
        Ok(())
    }
}

/// One incident, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Crisis {
    pub id: CrisisId,
    pub kind: Kind,
    pub severity: Severity,
    pub title: String,
    pub summary: String,
    /// Title, summary and the latest message in other locales.
    pub localized: Translations,
    pub status: Status,
    /// Starts at 1 and grows with every transition; a write based on an
    /// older version is refused, so concurrent changes cannot overwrite
    /// each other.
    pub version: u32,
    /// The latest declaration, update or resolution message.
    pub last_message: Option<String>,
    pub declared_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    /// Set when declared, never changed: a drill cannot become live.
    #[serde(default)]
    pub drill: bool,
    /// Who its announcements go to and on which channels (`audience`
    /// and `channels` in its JSON).
    #[serde(flatten)]
    pub selection: Selection,
}

impl Crisis {
    pub fn declare(declaration: Declaration, now: DateTime<Utc>) -> Result<Self, DomainError> {
        declaration.validate()?;
        Ok(Self {
            id: CrisisId::new(),
            kind: declaration.kind,
            severity: declaration.severity,
            title: declaration.title.trim().to_owned(),
            summary: declaration.summary.trim().to_owned(),
            localized: trimmed(declaration.localized),
            status: Status::Declared,
            version: 1,
            last_message: declaration.message,
            declared_at: now,
            updated_at: now,
            resolved_at: None,
            drill: declaration.drill,
            selection: Selection::new(declaration.audience, declaration.channels),
        })
    }

    pub fn is_active(&self) -> bool {
        self.status != Status::Resolved
    }

    pub fn apply_update(
        &mut self,
        update: CrisisUpdate,
        now: DateTime<Utc>,
    ) -> Result<(), DomainError> {
        if !self.is_active() {
            return Err(DomainError::AlreadyResolved { id: self.id });
        }
        update.validate()?;
        let mut changed = Vec::new();
        if update
            .title
            .as_deref()
            .is_some_and(|t| t.trim() != self.title)
        {
            changed.push(TextField::Title);
        }
        if update
            .summary
            .as_deref()
            .is_some_and(|s| s.trim() != self.summary)
        {
            changed.push(TextField::Summary);
        }
        if update.message.is_some() {
            changed.push(TextField::Message);
        }
        let given = update.localized.unwrap_or_default();
        localized::apply_change(&mut self.localized, &changed, &given, update.fall_back)
            .map_err(DomainError::StaleLocales)?;
        if let Some(kind) = update.kind {
            self.kind = kind;
        }
        if let Some(severity) = update.severity {
            self.severity = severity;
        }
        if let Some(title) = update.title {
            self.title = title.trim().to_owned();
        }
        if let Some(summary) = update.summary {
            self.summary = summary.trim().to_owned();
        }
        if let Some(audience) = update.audience {
            self.selection.audience = audience.normalized();
        }
        if let Some(channels) = update.channels {
            self.selection = Selection::new(self.selection.audience.clone(), channels);
        }
        self.last_message = update.message;
        self.status = Status::Updated;
        self.version += 1;
        self.updated_at = now;
        Ok(())
    }

    pub fn resolve(
        &mut self,
        message: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<(), DomainError> {
        self.resolve_with(Resolution::from(message), now)
    }

    /// The all-clear, with its message in other locales.
    pub fn resolve_with(
        &mut self,
        resolution: Resolution,
        now: DateTime<Utc>,
    ) -> Result<(), DomainError> {
        if !self.is_active() {
            return Err(DomainError::AlreadyResolved { id: self.id });
        }
        check_message(&resolution.message)?;
        if resolution
            .localized
            .values()
            .any(|text| text.title.is_some() || text.summary.is_some())
        {
            return Err(DomainError::ResolutionRetitled);
        }
        check_localized(&resolution.localized, resolution.message.is_some())?;
        let changed: &[TextField] = if resolution.message.is_some() {
            &[TextField::Message]
        } else {
            &[]
        };
        localized::apply_change(
            &mut self.localized,
            changed,
            &resolution.localized,
            resolution.fall_back,
        )
        .map_err(DomainError::StaleLocales)?;
        self.status = Status::Resolved;
        self.version += 1;
        self.last_message = resolution.message;
        self.updated_at = now;
        self.resolved_at = Some(now);
        Ok(())
    }

    /// Title and summary for a locale, each falling back to the
    /// default language's.
    pub fn text_for(&self, locale: &str) -> (&str, &str) {
        (
            localized::lookup(&self.localized, locale, TextField::Title).unwrap_or(&self.title),
            localized::lookup(&self.localized, locale, TextField::Summary).unwrap_or(&self.summary),
        )
    }

    /// The latest message for a locale, falling back to the default
    /// language's; none when the latest transition had none.
    pub fn message_for(&self, locale: &str) -> Option<&str> {
        let message = self.last_message.as_deref()?;
        Some(localized::lookup(&self.localized, locale, TextField::Message).unwrap_or(message))
    }
}

/// Translations as stored: each text trimmed like the default one.
fn trimmed(mut localized: Translations) -> Translations {
    for text in localized.values_mut() {
        for value in [&mut text.title, &mut text.summary, &mut text.message]
            .into_iter()
            .flatten()
        {
            *value = value.trim().to_owned();
        }
    }
    localized
}

string_enum!(
    /// What an audit entry records.
    EventKind {
        Declared => "declared",
        Updated => "updated",
        Resolved => "resolved",
        Corrected => "corrected",
        // What the daemon notes on the trail without changing the crisis
        // (a fallback released, bad contact points held back).
        Noted => "noted",
    }
);

impl EventKind {
    /// The entry a transition leaving a crisis in `status` makes.
    pub fn of(status: Status) -> Self {
        match status {
            Status::Declared => EventKind::Declared,
            Status::Updated => EventKind::Updated,
            Status::Resolved => EventKind::Resolved,
        }
    }
}

/// One line of the audit trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrisisEvent {
    pub crisis_id: CrisisId,
    /// What happened: a transition, or a correction (which leaves the
    /// status as it was).
    pub kind: EventKind,
    /// The crisis's status after it.
    pub status: Status,
    pub actor: Actor,
    pub message: Option<String>,
    pub at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {

    #[test]
    fn control_characters_and_text_that_shows_nothing_are_refused_naming_the_field() {
        let mut declaration = declaration();
        declaration.title = "Payments \u{1b}[2J are down".into();
        let err = declaration.validate().unwrap_err().to_string();
        assert!(
            err.starts_with("title contains the control character U+001B at character 10"),
            "{err}"
        );
        declaration.title = "\u{200b}\u{200d} \u{feff}".into();
        assert_eq!(
            declaration.validate().unwrap_err().to_string(),
            "title shows nothing: it is only spaces or invisible characters"
        );
        declaration.title = "Payments are down".into();
        declaration.message = Some("Line one\r\nline two\twith a tab\u{0}".into());
        let err = declaration.validate().unwrap_err().to_string();
        assert!(
            err.starts_with("message contains the control character U+0000"),
            "{err}"
        );
        declaration.message = Some("Line one\r\nline two\twith a tab".into());
        // Bengali joins letters with ZWJ/ZWNJ inside words: that is text.
        declaration.summary = "র\u{200d}্যাব বন্ধ".into();
        assert!(declaration.validate().is_ok());
    }
    use super::*;
    use crate::domain::LocalizedText;

    fn declaration() -> Declaration {
        Declaration {
            kind: Kind::Outage,
            severity: Severity::Major,
            title: "Payments are down".into(),
            summary: "Card payments fail.".into(),
            localized: Translations::new(),
            message: None,
            separate: false,
            drill: false,
            audience: AudienceSelection::default(),
            channels: Vec::new(),
        }
    }

    #[test]
    fn resolving_a_resolved_crisis_is_refused() {
        let mut crisis = Crisis::declare(declaration(), Utc::now()).expect("valid");
        crisis.resolve(None, Utc::now()).expect("first resolve");
        let err = crisis.resolve(None, Utc::now()).unwrap_err();
        assert_eq!(err, DomainError::AlreadyResolved { id: crisis.id });
    }

    #[test]
    fn an_update_that_changes_nothing_is_refused() {
        let mut crisis = Crisis::declare(declaration(), Utc::now()).expect("valid");
        let err = crisis
            .apply_update(CrisisUpdate::default(), Utc::now())
            .unwrap_err();
        assert_eq!(err, DomainError::EmptyUpdate);
    }

    #[test]
    fn an_empty_title_is_refused() {
        let mut decl = declaration();
        decl.title = "  ".into();
        assert_eq!(
            Crisis::declare(decl, Utc::now()).unwrap_err(),
            DomainError::Empty { field: "title" }
        );
    }

    #[test]
    fn localized_text_falls_back_by_language_then_default() {
        let mut decl = declaration();
        decl.localized.insert(
            "bn".into(),
            LocalizedText {
                title: Some("পেমেন্ট বন্ধ".into()),
                summary: Some("কার্ড পেমেন্ট ব্যর্থ।".into()),
                message: None,
            },
        );
        let crisis = Crisis::declare(decl, Utc::now()).expect("valid");
        assert_eq!(crisis.text_for("bn-BD").0, "পেমেন্ট বন্ধ");
        assert_eq!(crisis.text_for("eo").0, "Payments are down");
    }
}
