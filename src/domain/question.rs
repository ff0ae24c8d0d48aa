//! Questions with numbered answers ("Reply 1 if you need help now, 2 if
//! you are safe"), configured per template in `[answers.questions]`: the
//! key is the template an announcement is written from (`initial`,
//! `update`, `follow_up`, `resolved`), or `follow_up.<topic>` for the
//! follow-ups of one topic (a check-in), which wins over `follow_up`.
//!
//! An announcement that carries a question keeps its key; a reply from a
//! number is matched to the latest question sent to it that is still open
//! (`open_for` after it was sent). A reply that is none of the numbers
//! is kept as free text, never dropped.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::AnnouncementKind;

/// `[answers]`: the questions, and where urgent answers are posted.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AnswerSettings {
    /// By template key.
    #[serde(default)]
    pub questions: BTreeMap<String, Question>,
    /// A helpdesk's webhook: every urgent answer is POSTed to it as JSON.
    #[serde(default)]
    pub helpdesk: Option<HelpdeskSettings>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct HelpdeskSettings {
    pub url: String,
    /// Each attempt's limit.
    #[serde(default = "default_helpdesk_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Attempts in all, a second apart and then doubling.
    #[serde(default = "default_helpdesk_attempts")]
    pub attempts: u32,
}

fn default_helpdesk_timeout() -> Duration {
    Duration::from_secs(5)
}

fn default_helpdesk_attempts() -> u32 {
    3
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Question {
    /// What the SMS ends with, by locale; the default locale's where a
    /// reader's locale has none.
    pub prompt: BTreeMap<String, String>,
    pub choices: Vec<Choice>,
    /// How long after it was sent a reply still answers it.
    #[serde(default = "default_open_for", with = "humantime_serde")]
    pub open_for: Duration,
}

fn default_open_for() -> Duration {
    Duration::from_secs(3 * 24 * 3600)
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Choice {
    /// What the reader replies: 1 to 9.
    pub number: u8,
    /// What the answer means, by locale (the tallies, the email links,
    /// the confirmation page).
    pub label: BTreeMap<String, String>,
    /// Puts the reader on the callback list.
    #[serde(default)]
    pub urgent: bool,
}

/// The text of `texts` for `locale`: itself, its language, the default.
pub fn localized<'a>(texts: &'a BTreeMap<String, String>, locale: &str, default: &str) -> &'a str {
    let language = locale.split('-').next().unwrap_or(locale);
    [locale, language, default]
        .into_iter()
        .find_map(|l| texts.get(l))
        .or_else(|| texts.values().next())
        .map_or("", String::as_str)
}

/// One answer as read from a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Answered {
    pub number: u8,
    pub urgent: bool,
}

impl Question {
    /// The choice a reply names: its digit alone ("1", " 1. ", Bengali
    /// "১"), or `None` for anything else (kept as free text).
    pub fn answer(&self, reply: &str) -> Option<Answered> {
        let trimmed = reply
            .trim()
            .trim_matches(|c: char| c.is_ascii_punctuation() || c == '।' || c.is_whitespace());
        let mut chars = trimmed.chars();
        let digit = digit(chars.next()?)?;
        if chars.next().is_some() {
            return None;
        }
        self.choices
            .iter()
            .find(|c| c.number == digit)
            .map(|c| Answered {
                number: c.number,
                urgent: c.urgent,
            })
    }

    pub fn choice(&self, number: u8) -> Option<&Choice> {
        self.choices.iter().find(|c| c.number == number)
    }
}

/// An ASCII or Bengali digit's value.
fn digit(c: char) -> Option<u8> {
    let value = match c {
        '0'..='9' => c as u32 - '0' as u32,
        '০'..='৯' => c as u32 - '০' as u32,
        _ => return None,
    };
    u8::try_from(value).ok()
}

impl AnswerSettings {
    /// The question an announcement of `kind` (of follow-up `topic`)
    /// carries, with its key.
    pub fn for_announcement(
        &self,
        kind: AnnouncementKind,
        topic: Option<&str>,
    ) -> Option<(&str, &Question)> {
        let specific = topic.map(|t| format!("{kind}.{t}"));
        specific
            .iter()
            .map(String::as_str)
            .chain([kind.as_str()])
            .find_map(|key| self.questions.get_key_value(key))
            .map(|(k, q)| (k.as_str(), q))
    }

    /// What is wrong with `[answers]`, for check-config.
    pub fn problems(&self, default_locale: &str) -> Vec<String> {
        let mut problems = Vec::new();
        for (key, question) in &self.questions {
            let template = key.split_once('.').map_or(key.as_str(), |(t, _)| t);
            let known = AnnouncementKind::ALL.iter().any(|k| k.as_str() == template);
            if !known || (key.contains('.') && template != "follow_up") {
                problems.push(format!(
                    "answers.questions.{key}: not a template (initial, update, follow_up, \
                     follow_up.<topic>, resolved)"
                ));
            }
            if !question.prompt.contains_key(default_locale) {
                problems.push(format!(
                    "answers.questions.{key}.prompt needs the default locale `{default_locale}`"
                ));
            }
            if question.choices.len() < 2 {
                problems.push(format!(
                    "answers.questions.{key} needs at least two choices"
                ));
            }
            let mut seen = Vec::new();
            for choice in &question.choices {
                if !(1..=9).contains(&choice.number) || seen.contains(&choice.number) {
                    problems.push(format!(
                        "answers.questions.{key}: choice numbers are 1 to 9, each once ({} is not)",
                        choice.number
                    ));
                }
                seen.push(choice.number);
                if !choice.label.contains_key(default_locale) {
                    problems.push(format!(
                        "answers.questions.{key}: choice {} needs a label in `{default_locale}`",
                        choice.number
                    ));
                }
            }
        }
        if let Some(helpdesk) = &self.helpdesk {
            if !(helpdesk.url.starts_with("https://") || helpdesk.url.starts_with("http://")) {
                problems.push("answers.helpdesk.url must be an http(s) URL".into());
            }
            if helpdesk.attempts == 0 || helpdesk.timeout < Duration::from_millis(100) {
                problems.push(
                    "answers.helpdesk needs at least one attempt and a timeout of at least 100ms"
                        .into(),
                );
            }
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> AnswerSettings {
        toml::from_str(
            r#"
            [questions.initial]
            prompt = { en = "Reply 1 if you need help now, 2 if you are safe." }
            choices = [
                { number = 1, urgent = true, label = { en = "Needs help now" } },
                { number = 2, label = { en = "Safe" } },
            ]
            [questions."follow_up.check_in"]
            prompt = { en = "Still OK? 1 no, 2 yes" }
            choices = [
                { number = 1, urgent = true, label = { en = "Not OK" } },
                { number = 2, label = { en = "OK" } },
            ]
            "#,
        )
        .unwrap()
    }

    #[test]
    fn a_digit_alone_answers_and_anything_else_is_free_text() {
        let settings = settings();
        let (key, question) = settings
            .for_announcement(AnnouncementKind::Initial, None)
            .unwrap();
        assert_eq!(key, "initial");
        let urgent = Some(Answered {
            number: 1,
            urgent: true,
        });
        assert_eq!(question.answer("1"), urgent);
        assert_eq!(question.answer(" 1. "), urgent);
        assert_eq!(question.answer("১"), urgent);
        assert_eq!(question.answer("2").map(|a| a.urgent), Some(false));
        assert_eq!(question.answer("3"), None);
        assert_eq!(question.answer("12"), None);
        assert_eq!(question.answer("1 but the road is flooded"), None);
        assert!(
            settings.problems("en").is_empty(),
            "{:?}",
            settings.problems("en")
        );
    }

    #[test]
    fn a_topics_question_wins_over_the_templates_and_bad_keys_are_problems() {
        let mut settings = settings();
        let check_in = settings.for_announcement(AnnouncementKind::FollowUp, Some("check_in"));
        assert_eq!(check_in.map(|(k, _)| k), Some("follow_up.check_in"));
        assert!(
            settings
                .for_announcement(AnnouncementKind::FollowUp, Some("resources"))
                .is_none()
        );
        assert!(
            settings
                .for_announcement(AnnouncementKind::Update, None)
                .is_none()
        );
        let question = settings.questions["initial"].clone();
        settings
            .questions
            .insert("initial.x".into(), question.clone());
        settings.questions.insert("nonsense".into(), question);
        assert_eq!(
            settings.problems("en").len(),
            2,
            "{:?}",
            settings.problems("en")
        );
        assert_eq!(settings.problems("bn").len(), 4 + 4 * 2 + 2);
    }
}
