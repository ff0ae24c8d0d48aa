//! Sections of `strings.toml` that pages outside the messages read.

use serde::{Deserialize, Serialize};

/// `[consent]` of `strings.toml`: the unsubscribe and preference page.
/// `{address}` is the reader's address, `{company}` the company's name.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsentStrings {
    pub title: String,
    pub intro: String,
    /// What the reader gets now: everything, announcements only, nothing.
    pub now_everything: String,
    pub now_announcements: String,
    pub now_nothing: String,
    pub legend: String,
    pub choice_everything: String,
    pub choice_announcements: String,
    pub choice_nothing: String,
    /// Under the choice to stop everything.
    pub nothing_warning: String,
    pub save: String,
    /// Said once a one-click or a choice is recorded.
    pub saved: String,
    pub invalid_title: String,
    pub invalid_text: String,
    pub bad_choice: String,
    pub retry_title: String,
    pub retry_text: String,
}

impl Default for ConsentStrings {
    fn default() -> Self {
        let text = |s: &str| s.to_owned();
        Self {
            title: text("Your crisis emails from {company}"),
            intro: text("Choose which messages we send to {address}."),
            now_everything: text("You now get crisis announcements and follow-ups."),
            now_announcements: text("You now get crisis announcements only, no follow-ups."),
            now_nothing: text("You now get no crisis emails from us."),
            legend: text("What should we send you?"),
            choice_everything: text("Everything: crisis announcements and follow-ups"),
            choice_announcements: text(
                "Crisis announcements only (the first notice, each update, the all clear and \
                 corrections), no follow-ups",
            ),
            choice_nothing: text("Nothing, not even crisis announcements"),
            nothing_warning: text("Then no email from us reaches you in an emergency."),
            save: text("Save my choice"),
            saved: text("Your choice is saved."),
            invalid_title: text("This link is not valid"),
            invalid_text: text(
                "The link is incomplete or was not issued by us. Use the link from the email itself.",
            ),
            bad_choice: text("That is not one of the choices on this page."),
            retry_title: text("Please try again"),
            retry_text: text(
                "We could not record your choice just now. Please try again in a minute.",
            ),
        }
    }
}

/// `[glossary]` of `strings.toml`: the locale's one word for each thing a
/// reader meets in every message, which every template of the locale
/// prints (`glossaries.<locale>.<key>`) instead of writing it; English
/// where a locale has none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Glossary {
    /// A later announcement of a crisis, as a heading ("Update").
    pub update: String,
    /// The all-clear, as a heading.
    pub all_clear: String,
    /// What names the emergency route, as every phrase of it carries it
    /// (en "emergency" of "In an emergency", eo "kriza" of "Kriza linio").
    pub emergency: String,
    pub open_now: String,
    pub closed_now: String,
    pub always_open: String,
    /// A time in the reader's own zone.
    pub your_time: String,
    /// A contact marked unavailable.
    pub unavailable: String,
    /// Wrong variants the locale's templates and messages must never use
    /// (a synonym that would give one thing two names), matched in any
    /// case and inside words, so a stem ("Aktualig") catches every form.
    pub avoid: Vec<String>,
}

impl Default for Glossary {
    fn default() -> Self {
        let text = |s: &str| s.to_owned();
        Self {
            update: text("Update"),
            all_clear: text("All clear"),
            emergency: text("Emergency"),
            open_now: text("open now"),
            closed_now: text("closed now"),
            always_open: text("24/7"),
            your_time: text("your time"),
            unavailable: text("unavailable now"),
            avoid: Vec::new(),
        }
    }
}

impl Glossary {
    /// Each word with its key, as templates name it.
    pub fn words(&self) -> [(&'static str, &str); 8] {
        [
            ("update", &self.update),
            ("all_clear", &self.all_clear),
            ("emergency", &self.emergency),
            ("open_now", &self.open_now),
            ("closed_now", &self.closed_now),
            ("always_open", &self.always_open),
            ("your_time", &self.your_time),
            ("unavailable", &self.unavailable),
        ]
    }
}

/// `[sms]` of `strings.toml`: the locale's own SMS keywords (the
/// carriers' standard words are in `domain::keywords`, the same for every
/// locale) and the answer to HELP. `{company}` is the company's name,
/// `{status_url}` its status page. A locale's words match only a message
/// that is the word alone.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmsStrings {
    pub stop: Vec<String>,
    pub start: Vec<String>,
    pub help: Vec<String>,
    pub help_reply: String,
}

impl Default for SmsStrings {
    fn default() -> Self {
        Self {
            stop: Vec::new(),
            start: Vec::new(),
            help: Vec::new(),
            help_reply: "{company}: crisis alerts. Help and how to reach us: {status_url} \
                         Reply STOP to stop, START to resume."
                .into(),
        }
    }
}

/// `[answers]` of `strings.toml`: the page an email's answer link opens,
/// and the reminder to those who did not answer. `{answer}` is the
/// answer's label, `{status_url}` the status page, `{company}` the
/// company's name.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AnswerStrings {
    pub title: String,
    /// The page a link opens: nothing is recorded until the button.
    pub confirm: String,
    pub send: String,
    pub recorded: String,
    /// Said after an urgent answer.
    pub urgent_note: String,
    pub invalid_title: String,
    pub invalid_text: String,
    pub unknown_choice: String,
    pub closed_title: String,
    pub closed_text: String,
    pub retry_title: String,
    pub retry_text: String,
    /// What a reminder starts with, before the question again.
    pub reminder: String,
}

impl Default for AnswerStrings {
    fn default() -> Self {
        let text = |s: &str| s.to_owned();
        Self {
            title: text("Your answer"),
            confirm: text("Your answer will be: {answer}"),
            send: text("Send my answer"),
            recorded: text("Thank you. We have your answer: {answer}"),
            urgent_note: text(
                "Our support team sees your answer now and will contact you as soon as they can.",
            ),
            invalid_title: text("This link is not valid"),
            invalid_text: text(
                "The link is incomplete or was not issued by us. Use the link from the email itself.",
            ),
            unknown_choice: text("That is not one of the answers to this question."),
            closed_title: text("This question is closed"),
            closed_text: text(
                "We no longer collect answers to this question. The latest information is on {status_url}",
            ),
            retry_title: text("Please try again"),
            retry_text: text(
                "We could not record your answer just now. Please try again in a minute.",
            ),
            reminder: text("Reminder: we have not heard from you yet."),
        }
    }
}
