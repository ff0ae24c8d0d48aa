//! CAP 1.2 (OASIS Common Alerting Protocol) documents, one per transition
//! of a crisis: an `<info>` per shipped language.
//!
//! The mapping, which partners read alerts by:
//!
//! | crisis | CAP |
//! |---|---|
//! | first version | `msgType` Alert |
//! | a later update | Update, `references` naming every earlier version |
//! | the all-clear | Cancel, `references` naming every earlier version; `responseType` AllClear, `urgency` Past |
//! | severity critical | `urgency` Immediate, `severity` Severe |
//! | severity major | `urgency` Expected, `severity` Moderate |
//! | severity minor | `urgency` Future, `severity` Minor |
//! | any | `certainty` Observed (staff declare what is happening), `status` Actual (Exercise for a drill), `scope` Public |
//! | kind | `category`: outage Infra, natural_disaster Geo, financial Other, health Health, security Security, other Other |

use std::io;

use chrono::{DateTime, TimeDelta, Utc};

use super::xml::{XmlWriter, document, text};
use super::{Document, PublishError, Publisher, Site};
use crate::domain::{Crisis, CrisisId, Kind, Severity, Status};

pub const CAP_NAMESPACE: &str = "urn:oasis:names:tc:emergency:cap:1.2";

pub fn cap_category(kind: Kind) -> &'static str {
    match kind {
        Kind::Outage => "Infra",
        Kind::NaturalDisaster => "Geo",
        Kind::Health => "Health",
        Kind::Security => "Security",
        Kind::Financial | Kind::Other => "Other",
    }
}

/// `urgency`, `severity` and `certainty` for a version of a crisis.
pub fn cap_ratings(crisis: &Crisis) -> (&'static str, &'static str, &'static str) {
    let severity = match crisis.severity {
        Severity::Critical => "Severe",
        Severity::Major => "Moderate",
        Severity::Minor => "Minor",
    };
    let urgency = match (crisis.status, crisis.severity) {
        (Status::Resolved, _) => "Past",
        (_, Severity::Critical) => "Immediate",
        (_, Severity::Major) => "Expected",
        (_, Severity::Minor) => "Future",
    };
    (urgency, severity, "Observed")
}

/// CAP's dateTime: seconds and an explicit offset, never `Z`.
fn cap_time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S+00:00").to_string()
}

fn identifier(id: CrisisId, version: u32) -> String {
    format!("crisisd-{id}-v{version}")
}

/// What every document of this daemon says about itself.
struct Sender<'a> {
    sender: String,
    name: &'a str,
    expires_after: TimeDelta,
}

impl Publisher {
    pub(super) fn sender(&self) -> String {
        reqwest::Url::parse(&self.options.public_url)
            .ok()
            .and_then(|url| url.host_str().map(str::to_owned))
            .unwrap_or_else(|| "crisisd".to_owned())
    }

    /// The CAP document of one version of a crisis (its latest when
    /// `version` is `None`).
    pub async fn cap(
        &self,
        id: CrisisId,
        version: Option<u32>,
        site: &Site,
    ) -> Result<Document, PublishError> {
        let versions = self.storage.crises.versions(id).await?;
        if versions.is_empty() {
            return Err(PublishError::NoCrisis(id));
        }
        let index = match version {
            None => versions.len() - 1,
            Some(version) => versions
                .iter()
                .position(|v| v.version == version)
                .ok_or(PublishError::NoVersion { id, version })?,
        };
        Ok(Document::new(self.cap_document(&versions[..=index], site)?))
    }

    /// The document for the last of `chain`, referencing the rest.
    fn cap_document(&self, chain: &[Crisis], site: &Site) -> io::Result<Vec<u8>> {
        let Some((crisis, earlier)) = chain.split_last() else {
            return Ok(Vec::new());
        };
        let inputs = self.inputs.load();
        let sender = Sender {
            sender: self.sender(),
            name: &inputs.company.name,
            expires_after: self.options.cap_expires,
        };
        let msg_type = match (crisis.status, earlier.is_empty()) {
            (Status::Resolved, _) => "Cancel",
            (_, true) => "Alert",
            (_, false) => "Update",
        };
        let references = earlier
            .iter()
            .map(|v| {
                format!(
                    "{},{},{}",
                    sender.sender,
                    identifier(v.id, v.version),
                    cap_time(v.updated_at)
                )
            })
            .collect::<Vec<_>>()
            .join(" ");
        let renderer = &inputs.renderer;
        let mut locales: Vec<&str> = vec![renderer.default_locale()];
        locales.extend(
            renderer
                .locales()
                .filter(|l| *l != renderer.default_locale()),
        );
        let mut writer = document()?;
        writer
            .create_element("alert")
            .with_attribute(("xmlns", CAP_NAMESPACE))
            .write_inner_content(|w| {
                text(w, "identifier", &identifier(crisis.id, crisis.version))?;
                text(w, "sender", &sender.sender)?;
                text(w, "sent", &cap_time(crisis.updated_at))?;
                text(
                    w,
                    "status",
                    if crisis.drill { "Exercise" } else { "Actual" },
                )?;
                text(w, "msgType", msg_type)?;
                text(w, "scope", "Public")?;
                if !references.is_empty() {
                    text(w, "references", &references)?;
                }
                text(w, "incidents", &crisis.id.to_string())?;
                for locale in &locales {
                    self.cap_info(w, crisis, locale, &sender, site)?;
                }
                Ok(())
            })?;
        Ok(writer.into_inner())
    }

    fn cap_info(
        &self,
        w: &mut XmlWriter,
        crisis: &Crisis,
        locale: &str,
        sender: &Sender<'_>,
        site: &Site,
    ) -> io::Result<()> {
        let inputs = self.inputs.load();
        let strings = &inputs.renderer.strings(locale).publish;
        let (title, summary) = crisis.text_for(locale);
        let (urgency, severity, certainty) = cap_ratings(crisis);
        let contacts = inputs.contacts(locale, None, crisis.updated_at);
        let contact = contacts
            .iter()
            .find(|c| c.emergency && c.available)
            .or(contacts.first())
            .map(|c| format!("{}: {}", c.label, c.address));
        w.create_element("info").write_inner_content(|w| {
            text(w, "language", locale)?;
            text(w, "category", cap_category(crisis.kind))?;
            text(w, "event", strings.kind(crisis.kind))?;
            let response = if crisis.is_active() {
                "Monitor"
            } else {
                "AllClear"
            };
            text(w, "responseType", response)?;
            text(w, "urgency", urgency)?;
            text(w, "severity", severity)?;
            text(w, "certainty", certainty)?;
            let expires = crisis.updated_at + sender.expires_after;
            text(w, "expires", &cap_time(expires))?;
            text(w, "senderName", sender.name)?;
            text(w, "headline", title)?;
            text(w, "description", summary)?;
            if let Some(message) = crisis.message_for(locale) {
                text(w, "instruction", message)?;
            }
            text(
                w,
                "web",
                &format!("{}#crisis-{}", site.page(locale), crisis.id),
            )?;
            if let Some(contact) = &contact {
                text(w, "contact", contact)?;
            }
            Ok(())
        })?;
        Ok(())
    }
}
