//! Small helpers over quick-xml's writer, which escapes every text and
//! attribute it is given.

use std::io;

use chrono::{DateTime, SecondsFormat, Utc};
use quick_xml::Writer;
use quick_xml::events::{BytesDecl, BytesText, Event};

pub type XmlWriter = Writer<Vec<u8>>;

pub fn document() -> io::Result<XmlWriter> {
    let mut writer = Writer::new_with_indent(Vec::new(), b' ', 2);
    writer.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
    Ok(writer)
}

pub fn text(writer: &mut XmlWriter, name: &str, value: &str) -> io::Result<()> {
    writer
        .create_element(name)
        .write_text_content(BytesText::new(value))?;
    Ok(())
}

/// RFC 3339 in UTC with `Z`, as Atom's dates are written.
pub fn atom_time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}
