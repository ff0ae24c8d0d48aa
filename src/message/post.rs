//! How social networks and chat services count a post's length, and the
//! link facets Bluesky needs, since it does not find links in text itself.

use std::ops::Range;

use serde::{Deserialize, Serialize};
use unicode_segmentation::UnicodeSegmentation;

/// How a network counts a post's length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LengthRule {
    /// Mastodon: every URL counts as [`MASTODON_URL_LENGTH`] characters
    /// whatever its length, a mention `@user@domain` counts as `@user`, and
    /// the result is counted in extended grapheme clusters. See
    /// [`length`] for the version followed.
    Mastodon,
    /// Bluesky: grapheme clusters.
    Graphemes,
    /// Unicode scalar values (chars): Discord, Slack.
    Chars,
    /// UTF-16 code units: Telegram.
    Utf16,
}

/// What Mastodon counts any URL as (`StatusLengthValidator::URL_PLACEHOLDER`).
pub const MASTODON_URL_LENGTH: usize = 23;

/// Mastodon ignores a mention whose domain is longer than this.
const MAX_DOMAIN_LENGTH: usize = 253;

/// The length of `text` as the network counts it.
///
/// For [`LengthRule::Mastodon`] this follows `StatusLengthValidator` in
/// Mastodon 4.x (`app/validators/status_length_validator.rb`, with the
/// entity extraction of `lib/extractor.rb` and `Account::MENTION_RE`): URLs
/// and mentions are found, overlapping ones dropped (the earlier wins),
/// each URL replaced by 23 characters and each mention by its `@user` part,
/// and the result counted in grapheme clusters (`each_grapheme_cluster.size`
/// since mastodon/mastodon#34039, 2025; `mb_chars.grapheme_length` before,
/// which counts the same). A blank text counts 0, as `str.blank?` makes it.
/// The content warning is not part of `text`: Mastodon adds its grapheme
/// count, unshortened, to the same limit.
///
/// Two approximations: URLs are found by [`find_urls`], not by
/// twitter-text's pattern (which also demands a known top-level domain),
/// and `[[:word:]]` is taken as alphanumeric or `_`.
pub fn length(rule: LengthRule, text: &str) -> usize {
    match rule {
        LengthRule::Mastodon => mastodon_countable(text).graphemes(true).count(),
        LengthRule::Graphemes => text.graphemes(true).count(),
        LengthRule::Chars => text.chars().count(),
        LengthRule::Utf16 => text.encode_utf16().count(),
    }
}

/// URLs (http:// or https://, up to the next whitespace, minus trailing punctuation such as . , ; : ! ? ) ] ' " that ends a sentence) found in `text`, as byte ranges.
///
/// A closing `)` or `]` stays when the URL opened one (Wikipedia-style
/// paths); sentence punctuation of other scripts (`।`, `。`, `…`, closing
/// quotes) is trimmed too. The scheme must not follow a letter, digit,
/// `@`, `#` or `$` (as in both twitter-text and Bluesky), and a host must
/// follow it.
pub fn find_urls(text: &str) -> Vec<Range<usize>> {
    let mut urls = Vec::new();
    let mut from = 0;
    while let Some(offset) = text[from..].find(['h', 'H']) {
        let start = from + offset;
        let Some(scheme) = scheme_len(&text[start..]) else {
            from = start + 1;
            continue;
        };
        let end = text[start..]
            .find(char::is_whitespace)
            .map_or(text.len(), |n| start + n);
        from = end;
        let url_end = start + trimmed_len(&text[start..end]);
        let host_starts = text
            .get(start + scheme..url_end)
            .and_then(|host| host.chars().next())
            .is_some_and(char::is_alphanumeric);
        let preceded_ok = text[..start]
            .chars()
            .next_back()
            .is_none_or(|c| !(c.is_alphanumeric() || matches!(c, '@' | '＠' | '#' | '＃' | '$')));
        if host_starts && preceded_ok {
            urls.push(start..url_end);
        }
    }
    urls
}

/// A Bluesky rich-text link facet: the byte range (UTF-8) of the link in the post text, and its URI.
///
/// The record wants it as `{"index": {"byteStart", "byteEnd"}, "features":
/// [{"$type": "app.bsky.richtext.facet#link", "uri"}]}`, start inclusive,
/// end exclusive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LinkFacet {
    pub byte_start: usize,
    pub byte_end: usize,
    pub uri: String,
}

/// A link facet for every URL in `text` ([`find_urls`]).
pub fn link_facets(text: &str) -> Vec<LinkFacet> {
    find_urls(text)
        .into_iter()
        .map(|range| LinkFacet {
            byte_start: range.start,
            byte_end: range.end,
            uri: text[range].to_owned(),
        })
        .collect()
}

/// Length of `http://` or `https://` (any case) at the start of `s`.
fn scheme_len(s: &str) -> Option<usize> {
    ["https://", "http://"].into_iter().find_map(|scheme| {
        s.get(..scheme.len())
            .filter(|head| head.eq_ignore_ascii_case(scheme))
            .map(|_| scheme.len())
    })
}

/// Length of `url` once punctuation that ends the sentence, not the URL,
/// is cut off.
fn trimmed_len(url: &str) -> usize {
    let mut end = url.len();
    while let Some(last) = url[..end].chars().next_back() {
        let cut = match last {
            ')' => more_closed(&url[..end], '(', ')'),
            ']' => more_closed(&url[..end], '[', ']'),
            '）' => more_closed(&url[..end], '（', '）'),
            '.' | ',' | ';' | ':' | '!' | '?' | '\'' | '"' | '…' | '”' | '’' | '“' | '‘' | '»'
            | '«' | '›' | '‹' | '।' | '॥' | '。' | '、' | '，' | '！' | '？' | '；' | '：' => {
                true
            }
            _ => false,
        };
        if !cut {
            break;
        }
        end -= last.len_utf8();
    }
    end
}

fn more_closed(s: &str, open: char, close: char) -> bool {
    s.matches(close).count() > s.matches(open).count()
}

/// `[[:word:]]` as Onigmo has it, less marks and connector punctuation
/// other than `_`: close enough for telling where a mention may start.
fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

fn is_username_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')
}

/// twitter-text's `latin_accents`: a mention followed by one of these is
/// not a mention (`end_mention_match`).
fn is_latin_accent(c: char) -> bool {
    matches!(c,
        '\u{C0}'..='\u{D6}' | '\u{D8}'..='\u{F6}' | '\u{F8}'..='\u{24F}'
        | '\u{253}'..='\u{254}' | '\u{256}'..='\u{257}' | '\u{259}' | '\u{25B}'
        | '\u{263}' | '\u{268}' | '\u{26F}' | '\u{272}' | '\u{289}' | '\u{28B}'
        | '\u{2BB}' | '\u{300}'..='\u{36F}' | '\u{1E00}'..='\u{1EFF}')
}

/// Byte length of the longest prefix of `s` made of `allowed` characters,
/// without trailing `.` or `-`, as `X+([X.-]+X+)?`-style patterns match.
fn run_without_trailing_dots(s: &str, allowed: impl Fn(char) -> bool) -> usize {
    let run = s.find(|c: char| !allowed(c)).unwrap_or(s.len());
    s[..run].trim_end_matches(['.', '-']).len()
}

/// A mention found in a status: its whole range and where its `@user` part ends.
struct Mention {
    range: Range<usize>,
    user_end: usize,
}

/// Mentions as Mastodon's `Extractor.extract_mentions_or_lists_with_indices`
/// finds them with `Account::MENTION_RE`:
/// `(?<![=/[:word:]])@(([a-z0-9_]+([a-z0-9_.-]+[a-z0-9_]+)?)(?:@[[:word:].-]+[[:word:]]+)?)`,
/// case-insensitive, rejected when followed by `@`, a Latin accent or `://`.
fn find_mentions(text: &str) -> Vec<Mention> {
    let mut mentions = Vec::new();
    for (at, _) in text.match_indices('@') {
        if text[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c == '=' || c == '/' || is_word(c))
        {
            continue;
        }
        let user_start = at + 1;
        let rest = &text[user_start..];
        if !rest.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        let user_end = user_start + run_without_trailing_dots(rest, is_username_char);

        let mut end = user_end;
        if let Some(domain) = text[user_end..].strip_prefix('@') {
            let domain_len =
                run_without_trailing_dots(domain, |c| is_word(c) || c == '.' || c == '-');
            let domain_chars = domain[..domain_len].chars().count();
            if domain_chars >= 2 {
                if domain_chars > MAX_DOMAIN_LENGTH {
                    continue;
                }
                end = user_end + 1 + domain_len;
            }
        }

        let after = &text[end..];
        if after.starts_with(['@', '＠']) || after.starts_with("://") {
            continue;
        }
        if after.chars().next().is_some_and(is_latin_accent) {
            continue;
        }
        mentions.push(Mention {
            range: at..end,
            user_end,
        });
    }
    mentions
}

/// The text Mastodon counts: URLs replaced by 23 characters, mentions by
/// their `@user` part (`StatusLengthValidator#countable_text`).
fn mastodon_countable(text: &str) -> String {
    if text.chars().all(char::is_whitespace) {
        return String::new();
    }

    // (range, replacement); the replacement of a mention is its own prefix.
    let mut entities: Vec<(Range<usize>, Option<usize>)> = find_urls(text)
        .into_iter()
        .map(|range| (range, None))
        .chain(
            find_mentions(text)
                .into_iter()
                .map(|m| (m.range, Some(m.user_end))),
        )
        .collect();
    entities.sort_by_key(|(range, _)| range.start);

    let mut countable = String::with_capacity(text.len());
    let mut last = 0;
    for (range, user_end) in entities {
        // twitter-text's remove_overlapping_entities: the earlier one wins.
        if range.start < last {
            continue;
        }
        countable.push_str(&text[last..range.start]);
        match user_end {
            Some(user_end) => countable.push_str(&text[range.start..user_end]),
            None => countable.extend(std::iter::repeat_n('x', MASTODON_URL_LENGTH)),
        }
        last = range.end;
    }
    countable.push_str(&text[last..]);
    countable
}

#[cfg(test)]
mod tests {
    use super::*;

    fn urls(text: &str) -> Vec<&str> {
        find_urls(text).into_iter().map(|r| &text[r]).collect()
    }

    #[test]
    fn mastodon_counts_a_short_url_as_23() {
        assert_eq!(length(LengthRule::Mastodon, "https://x.io"), 23);
        assert_eq!(length(LengthRule::Mastodon, "See https://x.io"), 4 + 23);
    }

    #[test]
    fn mastodon_counts_a_long_url_as_23() {
        let url = format!("https://status.example.com/{}", "a".repeat(200));
        assert_eq!(length(LengthRule::Mastodon, &url), 23);
        let text = format!("Outage: {url}. Updates follow.");
        assert_eq!(length(LengthRule::Mastodon, &text), 8 + 23 + 17);
    }

    #[test]
    fn mastodon_matches_its_own_spec_for_urls() {
        // status_length_validator_spec: 476 a's, a space and a URL fit 500.
        let text = format!("{} http://{}.com/example", "a".repeat(476), "b".repeat(30));
        assert_eq!(length(LengthRule::Mastodon, &text), 500);
    }

    #[test]
    fn mastodon_counts_a_remote_mention_by_its_user_part() {
        assert_eq!(length(LengthRule::Mastodon, "@alice@example.social"), 6);
        assert_eq!(
            length(LengthRule::Mastodon, "Thanks @alice@example.social."),
            7 + 6 + 1
        );
    }

    #[test]
    fn mastodon_matches_its_own_spec_for_mentions() {
        // status_length_validator_spec: 475 a's, a space and a remote
        // mention fit 500.
        let text = format!("{} @alice@{}.com", "a".repeat(475), "b".repeat(30));
        assert_eq!(length(LengthRule::Mastodon, &text), 482);
    }

    #[test]
    fn mastodon_counts_a_local_mention_whole() {
        assert_eq!(length(LengthRule::Mastodon, "@alice hi"), 9);
    }

    #[test]
    fn mastodon_ignores_an_address_that_is_not_a_mention() {
        // An email address: the '@' follows a word character.
        assert_eq!(length(LengthRule::Mastodon, "ops@example.com"), 15);
        // A one-character domain cannot match, and the '@' after the user
        // part then rejects the mention.
        assert_eq!(length(LengthRule::Mastodon, "@alice@x"), 8);
    }

    #[test]
    fn mastodon_lets_the_earlier_of_overlapping_entities_win() {
        // The mention starts inside the URL, after the ','.
        let text = "https://example.com/a,@alice@example.social";
        assert_eq!(find_mentions(text).len(), 1);
        assert_eq!(length(LengthRule::Mastodon, text), 23);
    }

    #[test]
    fn mastodon_counts_a_blank_text_as_zero() {
        assert_eq!(length(LengthRule::Mastodon, " \n "), 0);
    }

    #[test]
    fn mastodon_counts_the_rest_in_grapheme_clusters() {
        assert_eq!(length(LengthRule::Mastodon, "👨‍👩‍👧 বন্যা"), 1 + 1 + 2);
    }

    #[test]
    fn a_family_emoji_is_one_grapheme() {
        let family = "👨‍👩‍👧";
        assert_eq!(length(LengthRule::Graphemes, family), 1);
        assert_eq!(length(LengthRule::Chars, family), 5);
        assert_eq!(length(LengthRule::Utf16, family), 8);
    }

    #[test]
    fn a_bengali_conjunct_is_one_grapheme_cluster() {
        // ক + virama + ষ: one cluster under Unicode 15.1's conjunct rule
        // (GB9c), which unicode-segmentation implements; older data says 2.
        assert_eq!(length(LengthRule::Graphemes, "ক্ষ"), 1);
        assert_eq!(length(LengthRule::Chars, "ক্ষ"), 3);
    }

    #[test]
    fn a_bengali_word_counts_fewer_graphemes_than_chars() {
        // ব, ন্যা (conjunct with a vowel sign).
        assert_eq!(length(LengthRule::Graphemes, "বন্যা"), 2);
        assert_eq!(length(LengthRule::Chars, "বন্যা"), 5);
    }

    #[test]
    fn utf16_counts_an_emoji_as_two() {
        assert_eq!(length(LengthRule::Utf16, "😀"), 2);
        assert_eq!(length(LengthRule::Chars, "😀"), 1);
        assert_eq!(length(LengthRule::Utf16, "ক"), 1);
    }

    #[test]
    fn a_link_facet_counts_bytes_after_multibyte_text_and_drops_the_full_stop() {
        let text = "বন্যা: https://status.example.com/x.";
        let facets = link_facets(text);
        let start = "বন্যা: ".len();
        assert_eq!(start, 17);
        assert_eq!(
            facets,
            vec![LinkFacet {
                byte_start: start,
                byte_end: start + "https://status.example.com/x".len(),
                uri: "https://status.example.com/x".to_owned(),
            }]
        );
        assert_eq!(facets[0].byte_end, text.len() - 1);
    }

    #[test]
    fn two_links_give_two_facets() {
        let text = "Status: https://a.example/s, help: http://b.example/h?q=1!";
        let facets = link_facets(text);
        assert_eq!(facets.len(), 2);
        assert_eq!(facets[0].uri, "https://a.example/s");
        assert_eq!(
            &text[facets[0].byte_start..facets[0].byte_end],
            facets[0].uri
        );
        assert_eq!(facets[1].uri, "http://b.example/h?q=1");
        assert_eq!(
            &text[facets[1].byte_start..facets[1].byte_end],
            facets[1].uri
        );
    }

    #[test]
    fn a_url_at_the_very_end_of_the_text_is_found_whole() {
        let text = "Updates: https://status.example.com/incidents/42";
        assert_eq!(
            link_facets(text),
            vec![LinkFacet {
                byte_start: 9,
                byte_end: text.len(),
                uri: "https://status.example.com/incidents/42".to_owned(),
            }]
        );
    }

    #[test]
    fn balanced_parentheses_stay_in_a_url() {
        assert_eq!(
            urls("(see https://en.wikipedia.org/wiki/Flood_(disambiguation))."),
            ["https://en.wikipedia.org/wiki/Flood_(disambiguation)"]
        );
        assert_eq!(urls("(https://example.com)"), ["https://example.com"]);
    }

    #[test]
    fn sentence_punctuation_of_other_scripts_is_trimmed() {
        assert_eq!(
            urls("বিস্তারিত https://example.com/bn।"),
            ["https://example.com/bn"]
        );
        assert_eq!(
            urls("詳細は https://example.jp/。"),
            ["https://example.jp/"]
        );
        assert_eq!(urls("„https://example.de“"), ["https://example.de"]);
    }

    #[test]
    fn what_is_not_a_url_is_not_found() {
        assert!(find_urls("no links here, just http and https").is_empty());
        assert!(find_urls("https:// alone").is_empty());
        assert!(find_urls("xhttps://example.com").is_empty());
        assert!(find_urls("ftp://example.com").is_empty());
    }

    #[test]
    fn the_scheme_is_matched_in_any_case() {
        assert_eq!(urls("HTTPS://EXAMPLE.COM"), ["HTTPS://EXAMPLE.COM"]);
    }

    #[test]
    fn the_rule_deserializes_from_snake_case() {
        let rule: LengthRule = serde_json::from_str("\"utf16\"").unwrap();
        assert_eq!(rule, LengthRule::Utf16);
        let rule: LengthRule = serde_json::from_str("\"mastodon\"").unwrap();
        assert_eq!(rule, LengthRule::Mastodon);
    }
}
