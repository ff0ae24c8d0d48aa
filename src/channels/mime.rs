//! Email messages encoded once per rendition and completed per reader.
//!
//! A fan-out sends one rendition (same language, time zone and text) to
//! thousands of readers who differ only in their address, name and
//! unsubscribe link. Building each message with lettre's `MessageBuilder`
//! encodes the whole ~10 KB body again for every reader (choosing an
//! encoding, quoted-printable, CRLF normalisation): the largest part of the
//! email channel's CPU time in the fan-out benchmark. So the body is
//! encoded here once, in pieces around the reader's fields, and each
//! message is the pieces joined with the reader's fields encoded alone.
//! Headers still go through lettre's header types, so their RFC 2047
//! encoding and folding stay lettre's.
//!
//! The output is all ASCII (quoted-printable bodies, encoded headers) and
//! no line starts with a dot, so it needs no 8BITMIME and no dot-stuffing:
//! it can be written to an SMTP DATA stream as it is.

use std::fmt::Write as _;

use lettre::message::header::{self, ContentType, HeaderName, HeaderValue, Headers};
use lettre::message::{Mailbox, Mailboxes};
use quoted_printable::{InputMode, Options};

use crate::message::{ANSWER_MARK, EmailContent, NAME_MARK, UNSUBSCRIBE_MARK, escape_html};

/// Encoded line length before the dot guard: a soft break adds `=`, and a
/// leading `.` becomes `=2E`, and the line must stay within RFC 2045's 76.
const LINE_LIMIT: usize = 73;

/// The fixed part of every message of a rendition.
#[derive(Debug)]
pub struct PreparedEmail {
    /// From, Reply-To, Auto-Submitted, the subject when it names no
    /// reader, MIME-Version and the multipart Content-Type, encoded.
    fixed_headers: String,
    /// The subject, when it has a reader's field in it.
    personal_subject: Option<String>,
    text: Vec<Piece>,
    html: Vec<Piece>,
    boundary: String,
    size: usize,
}

/// A piece of an encoded body part: encoded text, or where a reader's
/// field goes.
#[derive(Debug)]
enum Piece {
    Encoded(String),
    Field(Field),
}

/// A reader's field.
#[derive(Debug, Clone, Copy)]
enum Field {
    Name,
    Unsubscribe,
    Answer,
}

/// Each mark and the field it stands for.
const MARKS: [(&str, Field); 3] = [
    (NAME_MARK, Field::Name),
    (UNSUBSCRIBE_MARK, Field::Unsubscribe),
    (ANSWER_MARK, Field::Answer),
];

/// One reader's fields.
#[derive(Debug)]
pub struct Reader<'a> {
    pub to: &'a Mailbox,
    pub message_id: &'a str,
    pub locale: &'a str,
    pub name: &'a str,
    pub unsubscribe_url: Option<&'a str>,
    /// Where the reader's answer links start, for a message that asks.
    pub answer_url: Option<&'a str>,
}

/// `Content-Language`, so mail clients and filters know the language.
#[derive(Debug, Clone)]
struct ContentLanguage(String);

impl header::Header for ContentLanguage {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("Content-Language")
    }

    fn parse(s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(Self(s.to_owned()))
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), self.0.clone())
    }
}

/// `List-Unsubscribe: <https://…>` (RFC 2369).
#[derive(Debug, Clone)]
struct ListUnsubscribe(String);

impl header::Header for ListUnsubscribe {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("List-Unsubscribe")
    }

    fn parse(s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(Self(s.trim_matches(['<', '>']).to_owned()))
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), format!("<{}>", self.0))
    }
}

/// `List-Unsubscribe-Post: List-Unsubscribe=One-Click` (RFC 8058): mail
/// providers may unsubscribe with one POST, without a page in between.
#[derive(Debug, Clone)]
struct ListUnsubscribePost;

impl header::Header for ListUnsubscribePost {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("List-Unsubscribe-Post")
    }

    fn parse(_: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(Self)
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), "List-Unsubscribe=One-Click".to_owned())
    }
}

/// `Auto-Submitted: auto-generated` (RFC 3834): auto-responders stay quiet.
#[derive(Debug, Clone)]
struct AutoSubmitted;

impl header::Header for AutoSubmitted {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("Auto-Submitted")
    }

    fn parse(_: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(Self)
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), "auto-generated".to_owned())
    }
}

const TEXT_PART: &str = "Content-Type: text/plain; charset=utf-8\r\n\
     Content-Transfer-Encoding: quoted-printable\r\n\r\n";
const HTML_PART: &str = "Content-Type: text/html; charset=utf-8\r\n\
     Content-Transfer-Encoding: quoted-printable\r\n\r\n";

impl PreparedEmail {
    /// Encodes `content` (with marks for the reader's fields, or without
    /// any) for the sender `from`.
    pub fn new(
        content: &EmailContent,
        from: &Mailbox,
        reply_to: Option<&Mailbox>,
    ) -> Result<Self, String> {
        // `=_` cannot occur in quoted-printable text (`=` is followed by two
        // hex digits or a line break), so no body can contain the boundary.
        let boundary = format!("=_crisisd_{}", uuid::Uuid::new_v4().simple());
        let mut headers = Headers::new();
        headers.set(header::From::from(Mailboxes::from(from.clone())));
        if let Some(reply_to) = reply_to {
            headers.set(header::ReplyTo::from(Mailboxes::from(reply_to.clone())));
        }
        let personal_subject = has_marks(&content.subject).then(|| content.subject.clone());
        if personal_subject.is_none() {
            headers.set(header::Subject::from(content.subject.clone()));
        }
        headers.set(AutoSubmitted);
        headers.set(header::MIME_VERSION_1_0);
        headers.set(
            ContentType::parse(&format!("multipart/alternative; boundary=\"{boundary}\""))
                .map_err(|e| format!("multipart content type: {e}"))?,
        );
        let text = pieces(&content.text);
        let html = pieces(&content.html);
        let size = [&text, &html]
            .iter()
            .flat_map(|part| part.iter())
            .map(|piece| match piece {
                Piece::Encoded(encoded) => encoded.len(),
                Piece::Field(_) => 64,
            })
            .sum();
        Ok(Self {
            fixed_headers: headers.to_string(),
            personal_subject,
            text,
            html,
            boundary,
            size,
        })
    }

    /// The whole message for one reader, ending in CRLF.
    pub fn message(&self, reader: &Reader<'_>) -> String {
        let mut out = String::with_capacity(self.size + self.fixed_headers.len() + 1024);
        let mut headers = Headers::new();
        headers.set(header::Date::now());
        headers.set(header::To::from(Mailboxes::from(reader.to.clone())));
        headers.set(header::MessageId::from(reader.message_id.to_owned()));
        if let Some(subject) = &self.personal_subject {
            let url = reader.unsubscribe_url.unwrap_or_default();
            headers.set(header::Subject::from(
                subject
                    .replace(NAME_MARK, reader.name)
                    .replace(UNSUBSCRIBE_MARK, url)
                    .replace(ANSWER_MARK, reader.answer_url.unwrap_or_default()),
            ));
        }
        headers.set(ContentLanguage(reader.locale.to_owned()));
        if let Some(url) = reader.unsubscribe_url {
            headers.set(ListUnsubscribe(url.to_owned()));
            headers.set(ListUnsubscribePost);
        }
        let _ = write!(out, "{headers}");
        out.push_str(&self.fixed_headers);
        out.push_str("\r\n");

        let url = reader.unsubscribe_url.unwrap_or_default();
        let fields = Fields {
            name: reader.name,
            unsubscribe_url: url,
            answer_url: reader.answer_url.unwrap_or_default(),
        };
        let _ = write!(out, "--{}\r\n{TEXT_PART}", self.boundary);
        push_part(&mut out, &self.text, &fields, false);
        let _ = write!(out, "\r\n--{}\r\n{HTML_PART}", self.boundary);
        push_part(&mut out, &self.html, &fields, true);
        let _ = write!(out, "\r\n--{}--\r\n", self.boundary);
        out
    }
}

struct Fields<'a> {
    name: &'a str,
    unsubscribe_url: &'a str,
    answer_url: &'a str,
}

impl Fields<'_> {
    fn of(&self, field: Field) -> &str {
        match field {
            Field::Name => self.name,
            Field::Unsubscribe => self.unsubscribe_url,
            Field::Answer => self.answer_url,
        }
    }
}

fn has_marks(text: &str) -> bool {
    MARKS.iter().any(|(mark, _)| text.contains(mark))
}

/// Splits `text` at the marks and encodes what lies between.
fn pieces(text: &str) -> Vec<Piece> {
    let mut pieces = Vec::new();
    let mut rest = text;
    let next_mark = |rest: &str| {
        MARKS
            .iter()
            .enumerate()
            .filter_map(|(i, (mark, _))| rest.find(mark).map(|at| (at, i)))
            .min()
    };
    while let Some((at, i)) = next_mark(rest) {
        if at > 0 {
            pieces.push(Piece::Encoded(encode(&rest[..at])));
        }
        let (mark, field) = MARKS[i];
        pieces.push(Piece::Field(field));
        rest = &rest[at + mark.len()..];
    }
    if !rest.is_empty() {
        pieces.push(Piece::Encoded(encode(rest)));
    }
    pieces
}

/// Joins the pieces of a part with the reader's fields. Every piece starts
/// on a line of its own (after a soft line break, which decoding removes),
/// so each can be encoded alone and no line grows past the limit.
fn push_part(out: &mut String, pieces: &[Piece], fields: &Fields<'_>, html: bool) {
    for (i, piece) in pieces.iter().enumerate() {
        match piece {
            Piece::Encoded(encoded) => out.push_str(encoded),
            Piece::Field(field) if html => out.push_str(&encode(&escape_html(fields.of(*field)))),
            Piece::Field(field) => out.push_str(&encode(fields.of(*field))),
        }
        if i + 1 < pieces.len() && !out.ends_with("\r\n") {
            out.push_str("=\r\n");
        }
    }
}

/// Quoted-printable with CRLF line ends, and `=2E` for a dot at the start
/// of a line, so the text passes SMTP's DATA unchanged.
fn encode(text: &str) -> String {
    let crlf = to_crlf(text);
    let encoded = quoted_printable::encode_with_options(
        crlf.as_bytes(),
        Options::default()
            .line_length_limit(LINE_LIMIT)
            .input_mode(InputMode::Text),
    );
    if !encoded.starts_with('.') && !encoded.contains("\n.") {
        return encoded;
    }
    let mut guarded = String::with_capacity(encoded.len() + 16);
    for (i, line) in encoded.split("\r\n").enumerate() {
        if i > 0 {
            guarded.push_str("\r\n");
        }
        match line.strip_prefix('.') {
            Some(rest) => {
                guarded.push_str("=2E");
                guarded.push_str(rest);
            }
            None => guarded.push_str(line),
        }
    }
    guarded
}

/// Bare LF and CR become CRLF, as RFC 5322 wants line ends.
fn to_crlf(text: &str) -> std::borrow::Cow<'_, str> {
    let bytes = text.as_bytes();
    let already = bytes.iter().enumerate().all(|(i, b)| match b {
        b'\n' => i > 0 && bytes[i - 1] == b'\r',
        b'\r' => bytes.get(i + 1) == Some(&b'\n'),
        _ => true,
    });
    if already {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + text.len() / 16);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => {
                if chars.peek() == Some(&'\n') {
                    chars.next();
                }
                out.push_str("\r\n");
            }
            '\n' => out.push_str("\r\n"),
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn content(subject: &str, text: &str, html: &str) -> EmailContent {
        EmailContent {
            subject: subject.to_owned(),
            text: text.to_owned(),
            html: html.to_owned(),
            unsubscribe_url: Some(UNSUBSCRIBE_MARK.to_owned()),
        }
    }

    const ANSWERS: &str = "https://crisis.example.com/v1/answers/t.s";

    fn message_for(prepared: &PreparedEmail, name: &str, url: Option<&str>) -> String {
        let to: Mailbox = "reader@example.com".parse().expect("mailbox");
        prepared.message(&Reader {
            to: &to,
            message_id: "<d1@example.com>",
            locale: "bn",
            name,
            unsubscribe_url: url,
            answer_url: Some(ANSWERS),
        })
    }

    fn parse(raw: &str) -> mail_parser::Message<'_> {
        mail_parser::MessageParser::default()
            .parse(raw.as_bytes())
            .expect("parsable message")
    }

    #[test]
    fn readers_fields_are_filled_in_and_decode_exactly() {
        let long_line = "ঢাকা ".repeat(40);
        let text = format!(
            "Hello {NAME_MARK},\n{long_line}\n.starts with a dot\nSafe: {ANSWER_MARK}/2?lang=bn\nUnsubscribe: {UNSUBSCRIBE_MARK}\n"
        );
        let html = format!(
            "<p>Hello {NAME_MARK} &amp; co</p><a href=\"{ANSWER_MARK}/1?lang=bn\">1</a><a href=\"{UNSUBSCRIBE_MARK}\">x</a>"
        );
        let from: Mailbox = "Bench Co. <alerts@example.com>".parse().expect("from");
        let prepared = PreparedEmail::new(
            &content(&format!("Für {NAME_MARK}: Störung"), &text, &html),
            &from,
            None,
        )
        .expect("prepared");
        let url = "https://crisis.example.com/v1/unsubscribe/abc?x=1&y=2";
        let raw = message_for(&prepared, "Ana <& Bo>", Some(url));

        assert!(raw.is_ascii());
        for line in raw.split("\r\n") {
            assert!(line.len() <= 76, "line too long: {line:?}");
            assert!(!line.starts_with('.'), "line starts with a dot: {line:?}");
        }
        let message = parse(&raw);
        assert_eq!(message.subject(), Some("Für Ana <& Bo>: Störung"));
        assert_eq!(
            message.body_text(0).as_deref(),
            Some(
                format!(
                    "Hello Ana <& Bo>,\r\n{long_line}\r\n.starts with a dot\r\nSafe: {ANSWERS}/2?lang=bn\r\nUnsubscribe: {url}\r\n"
                )
                .as_str()
            )
        );
        assert_eq!(
            message.body_html(0).as_deref(),
            Some(
                format!(
                    "<p>Hello Ana &lt;&amp; Bo&gt; &amp; co</p><a href=\"{ANSWERS}/1?lang=bn\">1</a><a href=\"{}\">x</a>",
                    escape_html(url)
                )
                .as_str()
            )
        );
        assert!(raw.contains(&format!("\r\nList-Unsubscribe: <{url}>\r\n")));
        assert!(raw.contains("\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"));
        assert_eq!(message.message_id(), Some("d1@example.com"));
        assert_eq!(
            message.header("Content-Language").and_then(|h| h.as_text()),
            Some("bn")
        );
        assert_eq!(
            message.header("Auto-Submitted").and_then(|h| h.as_text()),
            Some("auto-generated")
        );
    }

    #[test]
    fn a_message_without_fields_and_without_link_has_no_unsubscribe_header() {
        let from: Mailbox = "alerts@example.com".parse().expect("from");
        let reply_to: Mailbox = "support@example.com".parse().expect("reply to");
        let mut plain = content("Outage", "All text, no marks.", "<p>html</p>");
        plain.unsubscribe_url = None;
        let prepared = PreparedEmail::new(&plain, &from, Some(&reply_to)).expect("prepared");
        let raw = message_for(&prepared, "", None);
        let message = parse(&raw);
        assert_eq!(message.subject(), Some("Outage"));
        assert_eq!(message.body_text(0).as_deref(), Some("All text, no marks."));
        assert!(message.header("List-Unsubscribe").is_none());
        assert_eq!(
            message
                .reply_to()
                .and_then(|r| r.first())
                .and_then(|a| a.address()),
            Some("support@example.com")
        );
    }

    #[test]
    fn bare_line_feeds_become_crlf() {
        assert_eq!(to_crlf("a\nb\r\nc\rd"), "a\r\nb\r\nc\r\nd");
        assert!(matches!(to_crlf("a\r\nb"), std::borrow::Cow::Borrowed(_)));
    }
}
