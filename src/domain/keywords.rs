//! SMS keywords: what an inbound text asks for when it is not an answer.
//!
//! Two kinds of words. The carriers' standard ones (CTIA's and the
//! aggregators' lists, the same in every language) live here, once. Their
//! opt-out words match the first word of a message ("stop please"), as
//! the carriers honour them; START and HELP match only a message that is
//! the word alone, since "help, the water is rising" is a plea for the
//! callback list, not a question about the service. Each
//! locale's own words live in `[sms]` of its `strings.toml` (for example
//! Bengali "বন্ধ", Esperanto "HALTU") and match only a message that is
//! nothing but the word: "অফিস কি বন্ধ?" ("is the office closed?") is a
//! question for the support team, not an opt-out.

/// What a keyword asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmsKeyword {
    /// Stop every message to this number.
    Stop,
    /// Take a STOP back.
    Start,
    /// Who is texting and how to stop: answered, nothing recorded.
    Help,
}

/// The carriers' words, whatever the reader's language.
const CARRIER: &[(SmsKeyword, &[&str])] = &[
    (
        SmsKeyword::Stop,
        &[
            "STOP",
            "STOPALL",
            "UNSUBSCRIBE",
            "CANCEL",
            "END",
            "QUIT",
            "OPTOUT",
            "REVOKE",
        ],
    ),
    (SmsKeyword::Start, &["START", "UNSTOP", "YES"]),
    (SmsKeyword::Help, &["HELP", "INFO"]),
];

/// One locale's own words, from its strings.
#[derive(Debug, Clone, Copy)]
pub struct LocaleKeywords<'a> {
    pub locale: &'a str,
    pub stop: &'a [String],
    pub start: &'a [String],
    pub help: &'a [String],
}

/// What a message asks, and the locale whose own word it was (`None` for
/// a carrier's word, which says nothing of the reader's language).
pub fn classify<'a>(
    text: &str,
    locales: impl IntoIterator<Item = LocaleKeywords<'a>>,
) -> Option<(SmsKeyword, Option<&'a str>)> {
    if let Some(keyword) = carrier(text) {
        return Some((keyword, None));
    }
    let whole = fold(text);
    if whole.is_empty() {
        return None;
    }
    locales.into_iter().find_map(|words| {
        let lists = [
            (SmsKeyword::Stop, words.stop),
            (SmsKeyword::Start, words.start),
            (SmsKeyword::Help, words.help),
        ];
        lists.into_iter().find_map(|(keyword, list)| {
            list.iter()
                .any(|word| fold(word) == whole)
                .then_some((keyword, Some(words.locale)))
        })
    })
}

/// A carrier's word, in any case, with punctuation around it ignored:
/// an opt-out word as the message's first word, the others alone.
fn carrier(text: &str) -> Option<SmsKeyword> {
    let mut words = text.split_whitespace();
    let first = words.next()?.to_ascii_uppercase();
    let alone = words.next().is_none();
    let word = first.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    CARRIER
        .iter()
        .find(|(keyword, list)| (alone || *keyword == SmsKeyword::Stop) && list.contains(&word))
        .map(|(keyword, _)| *keyword)
}

/// A message as compared with a locale's words: upper case (Unicode, so
/// Esperanto "ĉesu" is "ĈESU"), without the punctuation and spaces
/// around it, and without the zero-width joiners some Bengali keyboards
/// put inside a conjunct.
fn fold(text: &str) -> String {
    text.chars()
        .filter(|c| !matches!(c, '\u{200C}' | '\u{200D}'))
        .collect::<String>()
        .trim_matches(|c: char| c.is_whitespace() || c.is_ascii_punctuation() || c == '।')
        .to_uppercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(list: &[&str]) -> Vec<String> {
        list.iter().map(|w| (*w).to_owned()).collect()
    }

    #[test]
    fn carrier_words_match_the_first_word_and_locale_words_the_whole_message() {
        let (bn_stop, bn_start, bn_help) = (words(&["বন্ধ"]), words(&["শুরু"]), words(&["সাহায্য"]));
        let (eo_stop, eo_start, eo_help) = (
            words(&["HALTU", "ĈESU", "CXESU"]),
            words(&["KOMENCU"]),
            words(&["HELPU"]),
        );
        let locales = || {
            [
                LocaleKeywords {
                    locale: "bn",
                    stop: &bn_stop,
                    start: &bn_start,
                    help: &bn_help,
                },
                LocaleKeywords {
                    locale: "eo",
                    stop: &eo_stop,
                    start: &eo_start,
                    help: &eo_help,
                },
            ]
        };
        let asks = |text: &str| classify(text, locales());
        assert_eq!(asks("STOP"), Some((SmsKeyword::Stop, None)));
        assert_eq!(asks(" stop please"), Some((SmsKeyword::Stop, None)));
        assert_eq!(asks("Unsubscribe."), Some((SmsKeyword::Stop, None)));
        assert_eq!(asks("START"), Some((SmsKeyword::Start, None)));
        assert_eq!(asks("help"), Some((SmsKeyword::Help, None)));
        assert_eq!(asks("Help, the water is rising"), None);
        assert_eq!(asks("yes I need someone"), None);
        assert_eq!(asks(" বন্ধ। "), Some((SmsKeyword::Stop, Some("bn"))));
        assert_eq!(asks("ব\u{200C}ন্ধ"), Some((SmsKeyword::Stop, Some("bn"))));
        assert_eq!(asks("অফিস কি বন্ধ?"), None);
        assert_eq!(asks("ĉesu!"), Some((SmsKeyword::Stop, Some("eo"))));
        assert_eq!(asks("Haltu"), Some((SmsKeyword::Stop, Some("eo"))));
        assert_eq!(asks("helpu"), Some((SmsKeyword::Help, Some("eo"))));
        assert_eq!(asks("শুরু"), Some((SmsKeyword::Start, Some("bn"))));
        assert_eq!(asks("1"), None);
        assert_eq!(asks("Is the outage over?"), None);
        assert_eq!(asks(""), None);
    }
}
