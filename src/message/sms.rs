//! SMS encoding and segment counting: which alphabet a text needs
//! (3GPP TS 23.038) and how many concatenated parts it takes (TS 23.040).

use serde::{Deserialize, Serialize};

/// Septets in one unconcatenated GSM-7 message: 140 octets × 8 / 7.
const GSM7_SINGLE: usize = 160;
/// Septets per part of a concatenated GSM-7 message: the 6-octet user data
/// header takes 7 septets (with fill bits) of the 160.
const GSM7_PART: usize = 153;
/// UTF-16 code units in one unconcatenated UCS-2 message: 140 octets / 2.
const UCS2_SINGLE: usize = 70;
/// UTF-16 code units per part once the 6-octet header is taken: 134 / 2.
const UCS2_PART: usize = 67;

/// Escape to the extension table; it occupies code 0x1B of the default
/// alphabet but is not a character a text can contain.
const ESC: char = '\u{1B}';

/// The GSM 03.38 default alphabet, in code order (row n holds codes
/// 0x10·n to 0x10·n + 0xF), so it can be checked against the spec's table.
#[rustfmt::skip]
const BASIC: [char; 128] = [
    '@', '£', '$', '¥', 'è', 'é', 'ù', 'ì', 'ò', 'Ç', '\n', 'Ø', 'ø', '\r', 'Å', 'å',
    'Δ', '_', 'Φ', 'Γ', 'Λ', 'Ω', 'Π', 'Ψ', 'Σ', 'Θ', 'Ξ', ESC, 'Æ', 'æ', 'ß', 'É',
    ' ', '!', '"', '#', '¤', '%', '&', '\'', '(', ')', '*', '+', ',', '-', '.', '/',
    '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', ':', ';', '<', '=', '>', '?',
    '¡', 'A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I', 'J', 'K', 'L', 'M', 'N', 'O',
    'P', 'Q', 'R', 'S', 'T', 'U', 'V', 'W', 'X', 'Y', 'Z', 'Ä', 'Ö', 'Ñ', 'Ü', '§',
    '¿', 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o',
    'p', 'q', 'r', 's', 't', 'u', 'v', 'w', 'x', 'y', 'z', 'ä', 'ö', 'ñ', 'ü', 'à',
];

/// The extension table's characters with their codes; each is sent as ESC
/// followed by the code, so it costs two septets. (0x0D and 0x1B are
/// reserved control codes, not characters.)
const EXTENSION: [(u8, char); 10] = [
    (0x0A, '\u{0C}'), // form feed
    (0x14, '^'),
    (0x28, '{'),
    (0x29, '}'),
    (0x2F, '\\'),
    (0x3C, '['),
    (0x3D, '~'),
    (0x3E, ']'),
    (0x40, '|'),
    (0x65, '€'),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmsEncoding {
    Gsm7,
    /// Strictly UCS-2 cannot hold characters outside the BMP; every gateway
    /// sends UTF-16 under this name, so that is what is counted.
    Ucs2,
}

impl SmsEncoding {
    pub fn name(self) -> &'static str {
        match self {
            SmsEncoding::Gsm7 => "GSM-7",
            SmsEncoding::Ucs2 => "UCS-2",
        }
    }

    /// Units (septets or UTF-16 units) that `segments` parts carry in this
    /// encoding: one part has the whole 140 octets, several lose a header each.
    pub fn capacity(self, segments: usize) -> usize {
        let (single, part) = match self {
            SmsEncoding::Gsm7 => (GSM7_SINGLE, GSM7_PART),
            SmsEncoding::Ucs2 => (UCS2_SINGLE, UCS2_PART),
        };
        if segments <= 1 {
            single * segments
        } else {
            part * segments
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmsInfo {
    pub encoding: SmsEncoding,
    /// septets for GSM-7 (extension-table characters count 2), UTF-16 code units for UCS-2
    pub units: usize,
    /// Parts the message is sent as. An empty text is 0 segments, although
    /// a gateway that accepted it would bill one.
    pub segments: usize,
    /// units that still fit in the last segment (0 when exactly full)
    pub remaining: usize,
}

/// Septets `c` costs in GSM-7, or `None` when GSM-7 cannot carry it.
fn septets(c: char) -> Option<usize> {
    if c != ESC && BASIC.contains(&c) {
        Some(1)
    } else if EXTENSION.iter().any(|&(_, e)| e == c) {
        Some(2)
    } else {
        None
    }
}

/// Whether every character is in the GSM 03.38 default alphabet or its extension table.
pub fn is_gsm7(text: &str) -> bool {
    text.chars().all(|c| septets(c).is_some())
}

/// The encoding a text needs, its size in that encoding, and how it splits
/// into segments.
/// Typographic characters that make an otherwise plain message UCS-2
/// (halving what fits in a segment), and their GSM-7 look-alikes.
const LOOK_ALIKES: [(char, &str); 12] = [
    ('\u{2018}', "'"),
    ('\u{2019}', "'"),
    ('\u{201A}', "'"),
    ('\u{201C}', "\""),
    ('\u{201D}', "\""),
    ('\u{201E}', "\""),
    ('\u{2013}', "-"),
    ('\u{2014}', "-"),
    ('\u{2026}', "..."),
    ('\u{00A0}', " "),
    ('\u{2022}', "-"),
    ('\u{2212}', "-"),
];

/// The text with curly quotes, dashes and the like replaced by GSM-7
/// look-alikes, when that makes the whole text GSM-7; otherwise unchanged
/// (a Bengali message is UCS-2 anyway, and keeps its punctuation).
pub fn prefer_gsm7(text: &str) -> std::borrow::Cow<'_, str> {
    if is_gsm7(text) {
        return text.into();
    }
    let replaced: String = text
        .chars()
        .map(|c| match LOOK_ALIKES.iter().find(|(from, _)| *from == c) {
            Some((_, to)) => (*to).to_owned(),
            None => c.to_string(),
        })
        .collect();
    if is_gsm7(&replaced) {
        replaced.into()
    } else {
        text.into()
    }
}

pub fn analyze(text: &str) -> SmsInfo {
    // One character's cost is indivisible: an escape pair or a surrogate
    // pair is never split across two segments.
    let gsm7: Option<Vec<usize>> = text.chars().map(septets).collect();
    let (encoding, costs, single, part) = match gsm7 {
        Some(costs) => (SmsEncoding::Gsm7, costs, GSM7_SINGLE, GSM7_PART),
        None => (
            SmsEncoding::Ucs2,
            text.chars().map(char::len_utf16).collect(),
            UCS2_SINGLE,
            UCS2_PART,
        ),
    };
    let units: usize = costs.iter().sum();

    if units <= single {
        return SmsInfo {
            encoding,
            units,
            segments: usize::from(units > 0),
            remaining: single - units,
        };
    }

    // Pack like a sender does, so a pair that would straddle a boundary
    // moves whole into the next segment; plain division undercounts then.
    let mut segments = 1;
    let mut used = 0;
    for cost in costs {
        if used + cost > part {
            segments += 1;
            used = 0;
        }
        used += cost;
    }
    SmsInfo {
        encoding,
        units,
        segments,
        remaining: part - used,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typographic_punctuation_is_made_gsm7_only_when_that_makes_the_whole_text_gsm7() {
        assert_eq!(
            prefer_gsm7("We’re on it – details…"),
            "We're on it - details..."
        );
        assert_eq!(
            analyze(&prefer_gsm7("We’re on it")).encoding,
            SmsEncoding::Gsm7
        );
        assert_eq!(prefer_gsm7("বন্যা – অফিস"), "বন্যা – অফিস");
        assert_eq!(prefer_gsm7("plain"), "plain");
    }

    fn info(encoding: SmsEncoding, units: usize, segments: usize, remaining: usize) -> SmsInfo {
        SmsInfo {
            encoding,
            units,
            segments,
            remaining,
        }
    }

    #[test]
    fn an_empty_text_is_gsm7_with_no_segments() {
        assert_eq!(analyze(""), info(SmsEncoding::Gsm7, 0, 0, 160));
    }

    #[test]
    fn one_hundred_sixty_gsm7_characters_fill_one_segment() {
        let text = "a".repeat(160);
        assert_eq!(analyze(&text), info(SmsEncoding::Gsm7, 160, 1, 0));
    }

    #[test]
    fn one_hundred_sixty_one_gsm7_characters_take_two_segments() {
        let text = "a".repeat(161);
        assert_eq!(analyze(&text), info(SmsEncoding::Gsm7, 161, 2, 145));
    }

    #[test]
    fn three_hundred_six_gsm7_characters_fill_two_segments() {
        let text = "a".repeat(306);
        assert_eq!(analyze(&text), info(SmsEncoding::Gsm7, 306, 2, 0));
    }

    #[test]
    fn three_hundred_seven_gsm7_characters_take_three_segments() {
        let text = "a".repeat(307);
        assert_eq!(analyze(&text), info(SmsEncoding::Gsm7, 307, 3, 152));
    }

    #[test]
    fn eighty_euro_signs_are_160_septets_in_one_segment() {
        let text = "€".repeat(80);
        assert_eq!(analyze(&text), info(SmsEncoding::Gsm7, 160, 1, 0));
    }

    #[test]
    fn eighty_one_euro_signs_take_two_segments() {
        // 76 pairs fill 152 septets of the first part; the 77th moves whole.
        let text = "€".repeat(81);
        assert_eq!(analyze(&text), info(SmsEncoding::Gsm7, 162, 2, 143));
    }

    #[test]
    fn every_extension_character_costs_two_septets() {
        let text = "^{}\\[~]|€\u{0C}";
        assert!(is_gsm7(text));
        assert_eq!(analyze(text).units, 20);
    }

    #[test]
    fn an_escape_pair_at_the_153_boundary_moves_whole_to_the_next_segment() {
        // 306 septets would be 2 segments by division; the € cannot start in
        // the last free septet of part one, so part two overflows into three.
        let text = format!("{}€{}", "a".repeat(152), "b".repeat(152));
        assert_eq!(analyze(&text), info(SmsEncoding::Gsm7, 306, 3, 152));
    }

    #[test]
    fn an_escape_pair_that_fits_before_the_boundary_stays() {
        let text = format!("{}€{}", "a".repeat(151), "b".repeat(153));
        assert_eq!(analyze(&text), info(SmsEncoding::Gsm7, 306, 2, 0));
    }

    #[test]
    fn seventy_ucs2_units_fill_one_segment() {
        let text = "ক".repeat(70);
        assert_eq!(analyze(&text), info(SmsEncoding::Ucs2, 70, 1, 0));
    }

    #[test]
    fn seventy_one_ucs2_units_take_two_segments() {
        let text = "ক".repeat(71);
        assert_eq!(analyze(&text), info(SmsEncoding::Ucs2, 71, 2, 63));
    }

    #[test]
    fn one_hundred_thirty_four_ucs2_units_fill_two_segments() {
        let text = "ক".repeat(134);
        assert_eq!(analyze(&text), info(SmsEncoding::Ucs2, 134, 2, 0));
    }

    #[test]
    fn one_hundred_thirty_five_ucs2_units_take_three_segments() {
        let text = "ক".repeat(135);
        assert_eq!(analyze(&text), info(SmsEncoding::Ucs2, 135, 3, 66));
    }

    #[test]
    fn bengali_text_is_ucs2_counted_in_utf16_units() {
        let text = "পেমেন্ট বন্ধ";
        assert!(!is_gsm7(text));
        let sms = analyze(text);
        assert_eq!(sms.encoding, SmsEncoding::Ucs2);
        assert_eq!(sms.units, 12);
        assert_eq!(sms.segments, 1);
        assert_eq!(sms.remaining, 58);
    }

    #[test]
    fn an_emoji_makes_gsm_text_ucs2_and_counts_two_units() {
        let text = "Hello 👋";
        assert!(!is_gsm7(text));
        assert_eq!(analyze(text), info(SmsEncoding::Ucs2, 8, 1, 62));
    }

    #[test]
    fn a_surrogate_pair_at_the_67_boundary_moves_whole_to_the_next_segment() {
        // 134 units would be 2 segments by division.
        let text = format!("{}😀{}", "ক".repeat(66), "ক".repeat(66));
        assert_eq!(analyze(&text), info(SmsEncoding::Ucs2, 134, 3, 66));
    }

    #[test]
    fn is_gsm7_accepts_basic_and_extension_characters() {
        assert!(is_gsm7("Hello @ £ € {}"));
        assert!(is_gsm7("ΔΦΓΛΩΠΨΣΘΞ ÆæßÉ ¤¡¿§ ÄÖÑÜäöñüà èéùìòÇØøÅå\r\n_$¥"));
    }

    #[test]
    fn is_gsm7_rejects_esperanto_c_circumflex() {
        assert!(!is_gsm7("ĉ"));
    }

    #[test]
    fn is_gsm7_rejects_lowercase_c_cedilla() {
        // Only the uppercase Ç is in the default alphabet.
        assert!(!is_gsm7("ç"));
        assert!(is_gsm7("Ç"));
    }

    #[test]
    fn is_gsm7_rejects_ascii_outside_the_alphabet() {
        assert!(!is_gsm7("`"));
        assert!(!is_gsm7("\t"));
        assert!(!is_gsm7(&ESC.to_string()));
    }

    #[test]
    fn the_alphabet_has_127_distinct_characters_and_ten_extensions() {
        let mut basic: Vec<char> = BASIC.iter().copied().filter(|&c| c != ESC).collect();
        basic.sort_unstable();
        basic.dedup();
        assert_eq!(basic.len(), 127);
        assert_eq!(BASIC[0x1B], ESC);
        assert!(EXTENSION.iter().all(|&(_, c)| !BASIC.contains(&c)));
    }

    #[test]
    fn the_encoding_serializes_in_snake_case() {
        let json = serde_json::to_value(analyze("hi")).unwrap();
        assert_eq!(json["encoding"], "gsm7");
        let json = serde_json::to_value(analyze("ĉ")).unwrap();
        assert_eq!(json["encoding"], "ucs2");
    }
}
