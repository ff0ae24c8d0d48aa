//! Sections of `strings.toml` that pages outside the messages read.

use serde::Deserialize;

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
