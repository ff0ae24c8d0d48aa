//! Atom feeds (RFC 4287): the announcements for people and feed readers,
//! one entry per transition in one language, and the index of CAP alerts
//! for alerting systems.

use std::io;

use chrono::{DateTime, Utc};
use quick_xml::events::BytesText;

use super::xml::{XmlWriter, atom_time, document, text};
use super::{Document, PublishError, Publisher, Site};
use crate::domain::Crisis;
use crate::outbox::CrisisFilter;

const ATOM_NAMESPACE: &str = "http://www.w3.org/2005/Atom";

/// How many transitions the announcements feed lists, newest first.
pub const FEED_ENTRIES: u32 = 50;

/// What a feed says about itself.
struct FeedHead<'a> {
    id: String,
    title: &'a str,
    lang: &'a str,
    updated: DateTime<Utc>,
    author: &'a str,
    self_href: String,
    page_href: String,
}

fn link(w: &mut XmlWriter, rel: &str, kind: &str, href: &str) -> io::Result<()> {
    w.create_element("link")
        .with_attribute(("rel", rel))
        .with_attribute(("type", kind))
        .with_attribute(("href", href))
        .write_empty()?;
    Ok(())
}

fn feed(
    head: &FeedHead<'_>,
    entries: impl FnOnce(&mut XmlWriter) -> io::Result<()>,
) -> io::Result<Vec<u8>> {
    let mut writer = document()?;
    writer
        .create_element("feed")
        .with_attribute(("xmlns", ATOM_NAMESPACE))
        .with_attribute(("xml:lang", head.lang))
        .write_inner_content(|w| {
            text(w, "id", &head.id)?;
            text(w, "title", head.title)?;
            text(w, "updated", &atom_time(head.updated))?;
            w.create_element("author")
                .write_inner_content(|w| text(w, "name", head.author))?;
            link(w, "self", "application/atom+xml", &head.self_href)?;
            link(w, "alternate", "text/html", &head.page_href)?;
            entries(w)
        })?;
    Ok(writer.into_inner())
}

impl Publisher {
    /// A permanent, unique id for one transition of a crisis.
    fn entry_id(&self, crisis: &Crisis) -> String {
        format!(
            "tag:{},{}:crises/{}/versions/{}",
            self.sender(),
            crisis.declared_at.format("%Y-%m-%d"),
            crisis.id,
            crisis.version
        )
    }

    /// The announcements feed in `lang`: the newest transitions of every
    /// crisis, one entry each.
    pub async fn feed(&self, lang: &str, site: &Site) -> Result<Document, PublishError> {
        let locale = self.resolve_locale(lang);
        let versions = self.storage.crises.recent_versions(FEED_ENTRIES).await?;
        let inputs = self.inputs.load();
        let strings = &inputs.renderer.strings(&locale).publish;
        let head = FeedHead {
            // The daemon's address names the feed wherever a copy is served.
            id: self.daemon_site().feed(&locale),
            title: &strings.feed_title,
            lang: &locale,
            updated: versions
                .first()
                .map_or(DateTime::UNIX_EPOCH, |v| v.updated_at),
            author: &inputs.company.name,
            self_href: site.feed(&locale),
            page_href: site.page(&locale),
        };
        let body = feed(&head, |w| {
            for version in &versions {
                let (title, summary) = version.text_for(&locale);
                let content = match version.message_for(&locale) {
                    Some(message) => format!("{message}\n\n{summary}"),
                    None => summary.to_owned(),
                };
                w.create_element("entry").write_inner_content(|w| {
                    text(w, "id", &self.entry_id(version))?;
                    let status = strings.status(version.status);
                    text(w, "title", &format!("{status}: {title}"))?;
                    text(w, "updated", &atom_time(version.updated_at))?;
                    text(w, "published", &atom_time(version.updated_at))?;
                    let href = format!("{}#crisis-{}", site.page(&locale), version.id);
                    link(w, "alternate", "text/html", &href)?;
                    w.create_element("category")
                        .with_attribute(("term", version.kind.as_str()))
                        .write_empty()?;
                    w.create_element("content")
                        .with_attribute(("type", "text"))
                        .write_text_content(BytesText::new(&content))?;
                    Ok(())
                })?;
            }
            Ok(())
        })?;
        Ok(Document::new(body))
    }

    /// The crises the CAP feed lists: the active ones and those resolved
    /// within `cap_expires`, whose Cancel alerting systems still need.
    pub(super) async fn cap_feed_crises(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Vec<Crisis>, PublishError> {
        let since = now - self.options.cap_expires;
        Ok(self
            .storage
            .crises
            .crises(CrisisFilter::All)
            .await?
            .into_iter()
            .filter(|c| c.resolved_at.is_none_or(|at| at > since))
            .collect())
    }

    /// The Atom index of CAP alerts: one entry per listed crisis, linking
    /// to the CAP document of its latest transition.
    pub async fn cap_feed(
        &self,
        site: &Site,
        now: DateTime<Utc>,
    ) -> Result<Document, PublishError> {
        let crises = self.cap_feed_crises(now).await?;
        let inputs = self.inputs.load();
        let locale = inputs.renderer.default_locale();
        let strings = &inputs.renderer.strings(locale).publish;
        let head = FeedHead {
            id: self.daemon_site().cap_feed(),
            title: &strings.cap_feed_title,
            lang: locale,
            updated: crises
                .iter()
                .map(|c| c.updated_at)
                .max()
                .unwrap_or(DateTime::UNIX_EPOCH),
            author: &inputs.company.name,
            self_href: site.cap_feed(),
            page_href: site.page(locale),
        };
        let body = feed(&head, |w| {
            for crisis in &crises {
                let (title, summary) = crisis.text_for(locale);
                w.create_element("entry").write_inner_content(|w| {
                    text(w, "id", &self.entry_id(crisis))?;
                    text(w, "title", title)?;
                    text(w, "updated", &atom_time(crisis.updated_at))?;
                    let cap = site.cap(crisis.id, crisis.version);
                    link(w, "alternate", "application/cap+xml", &cap)?;
                    text(w, "summary", summary)?;
                    Ok(())
                })?;
            }
            Ok(())
        })?;
        Ok(Document::new(body))
    }
}
