//! Email over SMTP (pooled, STARTTLS/TLS) or into a spool directory of
//! .eml files, with lettre.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use lettre::address::Envelope;
use lettre::message::Mailbox;
use lettre::transport::smtp::PoolConfig;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use serde::Deserialize;

use super::mime::{PreparedEmail, Reader};
use super::settings::{secret, section};
use super::smtp_pool::SmtpPool;
use super::{Build, ChannelError, DeliveryError, Kind, Receipt};
use crate::domain::RenditionId;
use crate::message::{DeliveryContent, TextLimit};
use crate::outbox::Delivery;
use crate::secret::SecretSource;
use crate::sync::lock;

section! {
    /// An email channel: SMTP, or a spool directory.
    pub struct EmailSettings: email {
        /// `"Support <support@example.com>"`.
        pub from: String,
        pub reply_to: Option<String>,
        pub transport: EmailTransportKind,
        /// For `transport = "spool"`: where .eml files are written.
        pub spool_dir: Option<PathBuf>,
        pub smtp: Option<SmtpSettings>,
        /// A per-delivery return path (VERP) for bounces, e.g.
        /// `bounces+{token}@bounces.example.com`: `{token}` becomes the
        /// delivery id with a tag signed by `return_path_secret`, so a
        /// bounce names its delivery and cannot be forged.
        pub return_path: Option<String>,
        pub return_path_secret_env: Option<String>,
        pub return_path_secret_file: Option<PathBuf>,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EmailTransportKind {
    Smtp,
    Spool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpSettings {
    pub host: String,
    pub port: Option<u16>,
    #[serde(default)]
    pub tls: SmtpTls,
    pub username: Option<String>,
    /// The password comes from `password_env` or `password_file`.
    pub password_env: Option<String>,
    pub password_file: Option<PathBuf>,
    /// PEM file of extra root certificates to trust, for a relay whose
    /// certificate comes from a private CA. The public web roots are always
    /// trusted.
    pub ca_file: Option<PathBuf>,
    #[serde(default = "default_smtp_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    #[serde(default = "default_smtp_pool")]
    pub pool_size: u32,
}

impl SmtpSettings {
    pub fn password(&self) -> SecretSource {
        secret(&self.password_env, &self.password_file)
    }
}

fn default_smtp_timeout() -> Duration {
    Duration::from_secs(15)
}

fn default_smtp_pool() -> u32 {
    4
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS (port 587).
    #[default]
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No encryption: only for a relay on loopback.
    None,
}

impl Kind for EmailChannel {
    type Settings = EmailSettings;
    const FAMILY: Option<crate::message::TextFamily> = None;
    const STANDARD_LIMIT: TextLimit = TextLimit::Unlimited;

    fn receipt_secret(settings: &EmailSettings) -> Option<SecretSource> {
        let source = secret(
            &settings.return_path_secret_env,
            &settings.return_path_secret_file,
        );
        (settings.return_path.is_some() && source.is_set()).then_some(source)
    }
}

/// The token of a VERP return path: the delivery id, `-`, and 16 hex
/// digits of HMAC-SHA256 over it keyed with the return path secret.
pub fn verp_token(secret: &str, delivery: &str) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(format!("crisisd-verp:{delivery}").as_bytes());
    let tag = hex::encode(mac.finalize().into_bytes());
    format!("{delivery}-{}", &tag[..16])
}

/// The delivery id a VERP token names, if `secret` signed it.
pub fn verp_delivery(secret: &str, token: &str) -> Option<String> {
    use subtle::ConstantTimeEq;
    let (delivery, _) = token.rsplit_once('-')?;
    let expected = verp_token(secret, delivery);
    bool::from(
        expected
            .as_bytes()
            .ct_eq(token.to_ascii_lowercase().as_bytes()),
    )
    .then(|| delivery.to_owned())
}

impl Build for EmailChannel {
    fn build(
        settings: &EmailSettings,
        _http: &reqwest::Client,
    ) -> Result<Arc<dyn super::Channel>, ChannelError> {
        Ok(Arc::new(Self::from_settings(settings)?))
    }
}

enum Transport {
    /// Implicit TLS (port 465), through lettre's pooled transport.
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    /// Plain and STARTTLS, on connections opened with no-delay.
    Pooled(SmtpPool),
    /// `<delivery id>.eml` files in `dir`.
    Spool { dir: PathBuf },
}

impl Transport {
    fn from_settings(settings: &EmailSettings) -> Result<Self, String> {
        match settings.transport {
            EmailTransportKind::Spool => {
                let dir = settings
                    .spool_dir
                    .clone()
                    .ok_or("transport `spool` needs `spool_dir`")?;
                Ok(Transport::Spool { dir })
            }
            EmailTransportKind::Smtp => {
                let smtp = settings
                    .smtp
                    .as_ref()
                    .ok_or("transport `smtp` needs an [channels.email.smtp] section")?;
                Self::smtp(smtp)
            }
        }
    }

    fn smtp(smtp: &SmtpSettings) -> Result<Self, String> {
        let tls = tls_mode(smtp)?;
        let port = smtp.port.unwrap_or(match smtp.tls {
            SmtpTls::Tls => SUBMISSIONS_PORT,
            SmtpTls::Starttls => SUBMISSION_PORT,
            SmtpTls::None => SMTP_PORT,
        });
        let credentials = match &smtp.username {
            Some(username) => {
                let password = smtp
                    .password()
                    .read()
                    .map_err(|e| format!("smtp password: {e}"))?;
                Some(Credentials::new(
                    username.clone(),
                    password.expose().to_owned(),
                ))
            }
            None => None,
        };
        let params = match tls {
            // TLS from the first byte: lettre's own transport.
            Tls::Wrapper(_) => {
                let mut builder =
                    AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&smtp.host)
                        .port(port)
                        .tls(tls)
                        .timeout(Some(smtp.timeout))
                        .pool_config(PoolConfig::new().max_size(smtp.pool_size));
                if let Some(credentials) = credentials {
                    builder = builder.credentials(credentials);
                }
                return Ok(Transport::Smtp(builder.build()));
            }
            Tls::Required(params) => Some(params),
            _ => None,
        };
        Ok(Transport::Pooled(SmtpPool::new(
            smtp.host.clone(),
            port,
            smtp.timeout,
            params,
            credentials,
            smtp.pool_size as usize,
        )))
    }
}

pub struct EmailChannel {
    name: String,
    from: Mailbox,
    /// The per-delivery envelope sender, when bounces are read.
    verp: Option<ReturnPath>,
    reply_to: Option<Mailbox>,
    /// Right-hand side of Message-IDs: the sender's domain.
    message_id_domain: String,
    transport: Transport,
    concurrency: usize,
    /// Encoded renditions by id (see `mime`).
    prepared: Mutex<HashMap<RenditionId, Arc<PreparedEmail>>>,
}

impl std::fmt::Debug for EmailChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmailChannel")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl EmailChannel {
    pub fn from_settings(settings: &EmailSettings) -> Result<Self, ChannelError> {
        let config_err = |message: String| ChannelError::Config {
            channel: settings.name.clone(),
            message,
        };
        let from: Mailbox = settings
            .from
            .parse()
            .map_err(|e| config_err(format!("from `{}` is not a mailbox: {e}", settings.from)))?;
        let reply_to = settings
            .reply_to
            .as_deref()
            .map(|r| {
                r.parse::<Mailbox>()
                    .map_err(|e| config_err(format!("reply_to `{r}`: {e}")))
            })
            .transpose()?;
        let transport = Transport::from_settings(settings).map_err(config_err)?;
        let verp = ReturnPath::of(settings).map_err(config_err)?;
        Ok(Self {
            name: settings.name.clone(),
            verp,
            message_id_domain: from.email.domain().to_owned(),
            from,
            reply_to,
            transport,
            concurrency: settings.concurrency.max(1),
            prepared: Mutex::default(),
        })
    }

    /// The encoded message for this delivery's reader, from the encoded
    /// rendition when another reader's message already prepared it.
    fn message(&self, delivery: &Delivery) -> Result<(Envelope, String), DeliveryError> {
        let DeliveryContent::Email(content) = delivery.content.as_ref() else {
            return Err(DeliveryError::permanent(format!(
                "delivery {} carries a text message, not an email",
                delivery.id
            )));
        };
        let to: Mailbox = delivery.destination.parse().map_err(|e| {
            DeliveryError::permanent(format!("bad recipient `{}`: {e}", delivery.destination))
        })?;
        let sender = match &self.verp {
            Some(verp) => verp
                .address(&delivery.id.to_string())
                .parse()
                .map_err(|e| {
                    DeliveryError::permanent(format!("the return path is not an address: {e}"))
                })?,
            None => self.from.email.clone(),
        };
        let envelope = Envelope::new(Some(sender), vec![to.email.clone()])
            .map_err(|e| DeliveryError::permanent(format!("cannot address the message: {e}")))?;
        let prepare = || {
            PreparedEmail::new(content, &self.from, self.reply_to.as_ref())
                .map(Arc::new)
                .map_err(|e| DeliveryError::permanent(format!("cannot build the message: {e}")))
        };
        let (prepared, name, unsubscribe_url, answer_url) = match &delivery.personal {
            Some(personal) => {
                let cached = lock(&self.prepared).get(&personal.rendition).cloned();
                let prepared = match cached {
                    Some(prepared) => prepared,
                    None => {
                        let prepared = prepare()?;
                        let mut cache = lock(&self.prepared);
                        if cache.len() >= PREPARED_CACHE {
                            cache.clear();
                        }
                        cache.insert(personal.rendition, prepared.clone());
                        prepared
                    }
                };
                (
                    prepared,
                    personal.recipient_name.as_deref().unwrap_or_default(),
                    personal.unsubscribe_url.as_deref(),
                    personal.answer_url.as_deref(),
                )
            }
            None => (prepare()?, "", content.unsubscribe_url.as_deref(), None),
        };
        // Stable per delivery: a resend after a crash carries the same id,
        // so receivers that deduplicate do.
        let message_id = format!("<{}@{}>", delivery.id, self.message_id_domain);
        let message = prepared.message(&Reader {
            to: &to,
            message_id: &message_id,
            locale: &delivery.locale,
            name,
            unsubscribe_url,
            answer_url,
        });
        Ok((envelope, message))
    }
}

/// Encoded renditions kept per channel; a crisis has a few dozen.
const PREPARED_CACHE: usize = 256;

/// SMTP replies that refuse our credentials, not the message: every
/// delivery would fail alike until the config is fixed, so they are retried
/// rather than killed.
const AUTH_REPLIES: [&str; 4] = ["530", "534", "535", "538"];

const SMTP_PORT: u16 = 25;
const SUBMISSION_PORT: u16 = 587;
const SUBMISSIONS_PORT: u16 = 465;

/// TLS as configured: required STARTTLS or TLS from the first byte,
/// verifying the relay's certificate against the web roots plus `ca_file`.
fn tls_mode(smtp: &SmtpSettings) -> Result<Tls, String> {
    if smtp.tls == SmtpTls::None {
        return Ok(Tls::None);
    }
    let mut params = TlsParameters::builder(smtp.host.clone());
    if let Some(path) = &smtp.ca_file {
        let pem = std::fs::read(path).map_err(|e| format!("ca_file {}: {e}", path.display()))?;
        let certificate = Certificate::from_pem(&pem)
            .map_err(|e| format!("ca_file {} is not a PEM certificate: {e}", path.display()))?;
        params = params.add_root_certificate(certificate);
    }
    let params = params
        .build()
        .map_err(|e| format!("TLS settings for `{}`: {e}", smtp.host))?;
    Ok(match smtp.tls {
        SmtpTls::Tls => Tls::Wrapper(params),
        _ => Tls::Required(params),
    })
}

/// A channel's per-delivery return path (VERP): `before{token}after`,
/// the token signed with the channel's return path secret, so a bounce
/// names the delivery it is about and cannot be made up for another.
#[derive(Clone)]
pub struct ReturnPath {
    /// The channel whose messages carry it.
    pub channel: String,
    before: String,
    after: String,
    secret: String,
}

impl std::fmt::Debug for ReturnPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReturnPath")
            .field("channel", &self.channel)
            .field("before", &self.before)
            .field("after", &self.after)
            .finish_non_exhaustive()
    }
}

impl ReturnPath {
    /// The channel's return path, if it has one; an error says what is
    /// wrong with its settings.
    pub fn of(settings: &EmailSettings) -> Result<Option<Self>, String> {
        let Some(path) = &settings.return_path else {
            return Ok(None);
        };
        let Some((before, after)) = path.split_once("{token}") else {
            return Err(format!(
                "return_path `{path}` needs `{{token}}` in its local part"
            ));
        };
        if !after.starts_with('@') || before.contains('@') {
            return Err(format!(
                "return_path `{path}`: put `{{token}}` just before the `@`"
            ));
        }
        let source = secret(
            &settings.return_path_secret_env,
            &settings.return_path_secret_file,
        );
        if !source.is_set() {
            return Err(
                "return_path needs return_path_secret_env or return_path_secret_file".into(),
            );
        }
        let secret = source
            .read()
            .map_err(|e| format!("return path secret: {e}"))?;
        Ok(Some(Self {
            channel: settings.name.clone(),
            before: before.to_owned(),
            after: after.to_owned(),
            secret: secret.expose().to_owned(),
        }))
    }

    /// The envelope sender of one delivery's message.
    pub fn address(&self, delivery: &str) -> String {
        format!(
            "{}{}{}",
            self.before,
            verp_token(&self.secret, delivery),
            self.after
        )
    }

    /// The delivery a bare token names (an `ENVID`), if this channel
    /// signed it.
    pub fn delivery_of_token(&self, token: &str) -> Option<String> {
        verp_delivery(&self.secret, token.trim())
    }

    /// The delivery an address names, if it is this channel's return path
    /// with a token this channel signed (any case: relays may fold it).
    pub fn delivery_in(&self, address: &str) -> Option<String> {
        let address = address
            .trim()
            .trim_start_matches('<')
            .trim_end_matches('>')
            .to_ascii_lowercase();
        let token = address
            .strip_prefix(&self.before.to_ascii_lowercase())?
            .strip_suffix(&self.after.to_ascii_lowercase())?;
        verp_delivery(&self.secret, token)
    }
}

/// Writes one message as `<delivery id>.eml`, whole or not at all (a
/// temporary file renamed over it): whoever picks up the spool finds each
/// delivery by its id, and a delivery sent again after a crash replaces
/// its file rather than adding a second one.
async fn spool_file(dir: &std::path::Path, id: &str, message: &[u8]) -> std::io::Result<String> {
    let name = format!("{id}.eml");
    let partial = dir.join(format!(".{id}.eml.partial"));
    tokio::fs::write(&partial, message).await?;
    tokio::fs::rename(&partial, dir.join(&name)).await?;
    Ok(name)
}

fn classify_smtp(err: lettre::transport::smtp::Error) -> DeliveryError {
    let code = err.status().map(|code| code.to_string());
    if code.as_deref().is_some_and(|c| AUTH_REPLIES.contains(&c)) {
        DeliveryError::transient(format!(
            "SMTP authentication failed; check the channel's credentials: {err}"
        ))
    } else if err.is_permanent() {
        DeliveryError::permanent(format!("SMTP server refused the message: {err}"))
    } else {
        // 4xx replies, timeouts, refused connections, TLS trouble: the next
        // attempt may well succeed.
        DeliveryError::transient(format!("SMTP: {err}"))
    }
}

#[async_trait]
impl super::Channel for EmailChannel {
    fn name(&self) -> &str {
        &self.name
    }

    fn concurrency(&self) -> usize {
        self.concurrency
    }

    async fn send(&self, delivery: &Delivery) -> Result<Receipt, DeliveryError> {
        let (envelope, message) = self.message(delivery)?;
        match &self.transport {
            Transport::Pooled(pool) => {
                let response = pool
                    .send(&envelope, message)
                    .await
                    .map_err(|e| e.into_delivery_error(classify_smtp))?;
                Ok(Receipt {
                    provider_ref: response.message().next().map(str::to_owned),
                })
            }
            Transport::Smtp(smtp) => {
                let response = smtp
                    .send_raw(&envelope, message.as_bytes())
                    .await
                    .map_err(classify_smtp)?;
                Ok(Receipt {
                    provider_ref: response.message().next().map(str::to_owned),
                })
            }
            Transport::Spool { dir } => {
                let name = spool_file(dir, &delivery.id.to_string(), message.as_bytes())
                    .await
                    .map_err(|e| {
                        DeliveryError::transient(format!("cannot write to the spool: {e}"))
                    })?;
                Ok(Receipt {
                    provider_ref: Some(name),
                })
            }
        }
    }

    async fn healthcheck(&self) -> Result<(), DeliveryError> {
        match &self.transport {
            Transport::Pooled(pool) => pool
                .check()
                .await
                .map_err(|e| e.into_delivery_error(classify_smtp)),
            Transport::Smtp(smtp) => match smtp.test_connection().await {
                Ok(true) => Ok(()),
                Ok(false) => Err(DeliveryError::transient("SMTP server did not answer NOOP")),
                Err(err) => Err(classify_smtp(err)),
            },
            Transport::Spool { dir, .. } => {
                // Mode bits do not say whether this process may write: try.
                let probe = dir.join(".crisisd-healthcheck");
                let unwritable = |e: std::io::Error| {
                    DeliveryError::transient(format!(
                        "spool {} is not writable: {e}",
                        dir.display()
                    ))
                };
                tokio::fs::write(&probe, b"ok").await.map_err(unwritable)?;
                tokio::fs::remove_file(&probe).await.map_err(unwritable)
            }
        }
    }
}
