//! A generic HTTP SMS gateway. Method, URL, headers and body are minijinja
//! templates over the message, so one channel type drives the send APIs of
//! self-hosted gateways (query-string GETs with charset and coding
//! parameters, JSON POSTs) without code for each.

use std::collections::BTreeMap;
use std::path::PathBuf;

use async_trait::async_trait;
use minijinja::{Environment, UndefinedBehavior, Value, context};
use reqwest::StatusCode;
use serde::Deserialize;

use crate::channels::http::{Answer, Exchange, Provider, classify, excerpt, is_temporary};
use crate::channels::settings::{read_secret, secret, section};
use crate::channels::{DeliveryError, Kind, Receipt, message_of};
use crate::message::sms::{self, SmsEncoding};
use crate::message::{TextFamily, TextLimit};
use crate::outbox::Delivery;
use crate::secret::SecretSource;

section! {
    /// A generic HTTP SMS gateway: method, URL, headers and body are
    /// templates over the message.
    pub struct SmsGatewaySettings: phone {
        #[serde(default)]
        pub method: GatewayMethod,
        /// Template; e.g. `https://gw.example.com/send?to={{ to|urlencode }}`.
        pub url: String,
        /// Header name -> template.
        #[serde(default)]
        pub headers: BTreeMap<String, String>,
        /// Body template; none sends no body.
        pub body: Option<String>,
        /// Offered to the templates as `secret`.
        pub secret_env: Option<String>,
        pub secret_file: Option<PathBuf>,
        #[serde(default)]
        pub success: GatewaySuccess,
        /// Where the gateway reports deliveries (Kannel's `dlr-url`), e.g.
        /// `https://crisis.example.com/v1/receipts/gateway/sms-gw`: the
        /// templates get `dlr_url`, this plus the delivery's id and a
        /// token signed with `dlr_secret`, since gateways cannot sign.
        pub dlr_base_url: Option<String>,
        pub dlr_secret_env: Option<String>,
        pub dlr_secret_file: Option<PathBuf>,
        /// The token the gateway presents on inbound messages
        /// (`/v1/inbound/gateway/{name}`, in `X-Crisisd-Token` or
        /// `?token=`), since gateways cannot sign; without one, inbound
        /// messages from this gateway are refused.
        pub inbound_token_env: Option<String>,
        pub inbound_token_file: Option<PathBuf>,
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum GatewayMethod {
    Get,
    #[default]
    Post,
    Put,
}

/// When a gateway's answer means "accepted".
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewaySuccess {
    /// Accepted status codes. Default: any 2xx.
    #[serde(default)]
    pub status: Vec<u16>,
    /// JSON pointer into the response body (RFC 6901), e.g. `/status`.
    pub json_pointer: Option<String>,
    /// The value at `json_pointer` must equal this (compared as text).
    pub equals: Option<String>,
    /// The body must contain this text.
    pub contains: Option<String>,
    /// JSON pointer to the gateway's id for the message, kept so its
    /// receipts can name it.
    pub id_pointer: Option<String>,
}

pub struct SmsGateway {
    /// Names the gateway in reasons: a generic gateway has no name of its
    /// own but the channel's.
    name: String,
    method: reqwest::Method,
    /// Holds the url, headers and body templates, compiled once.
    templates: Environment<'static>,
    header_names: Vec<String>,
    has_body: bool,
    secret: Option<String>,
    success: GatewaySuccess,
    /// `dlr_base_url` and the key its tokens are signed with.
    dlr: Option<(String, String)>,
}

/// One rendered request.
struct RequestParts {
    url: String,
    headers: Vec<(String, String)>,
    body: Option<String>,
}

const URL: &str = "url";
const BODY: &str = "body";

fn header_template(name: &str) -> String {
    format!("header:{name}")
}

/// UTF-16BE as hex, the form gateways that take raw UCS-2 want.
fn ucs2_hex(text: &str) -> String {
    text.encode_utf16()
        .map(|unit| format!("{unit:04X}"))
        .collect()
}

/// The url, header and body templates, compiled.
fn templates(settings: &SmsGatewaySettings) -> Result<Environment<'static>, String> {
    let mut templates = Environment::new();
    templates.set_undefined_behavior(UndefinedBehavior::Strict);
    templates.add_filter("ucs2_hex", |text: String| ucs2_hex(&text));
    let mut add = |name: String, source: &str| {
        templates
            .add_template_owned(name.clone(), source.to_owned())
            .map_err(|e| format!("{name} template: {e}"))
    };
    add(URL.to_owned(), &settings.url)?;
    for (name, value) in &settings.headers {
        add(header_template(name), value)?;
    }
    if let Some(body) = &settings.body {
        add(BODY.to_owned(), body)?;
    }
    Ok(templates)
}

/// A success rule that can be applied.
fn check_success(success: &GatewaySuccess) -> Result<(), String> {
    if success.equals.is_some() && success.json_pointer.is_none() {
        return Err("success.equals needs success.json_pointer".into());
    }
    if let Some(pointer) = &success.json_pointer
        && !(pointer.is_empty() || pointer.starts_with('/'))
    {
        return Err(format!(
            "success.json_pointer `{pointer}` must start with `/`"
        ));
    }
    Ok(())
}

impl Kind for SmsGateway {
    type Settings = SmsGatewaySettings;
    const FAMILY: Option<TextFamily> = super::FAMILY;
    const STANDARD_LIMIT: TextLimit = super::STANDARD_LIMIT;

    fn receipt_secret(settings: &SmsGatewaySettings) -> Option<SecretSource> {
        let source = secret(&settings.dlr_secret_env, &settings.dlr_secret_file);
        (settings.dlr_base_url.is_some() && source.is_set()).then_some(source)
    }

    fn inbound_secret(settings: &SmsGatewaySettings) -> Option<SecretSource> {
        let source = secret(&settings.inbound_token_env, &settings.inbound_token_file);
        source.is_set().then_some(source)
    }
}

/// The token a gateway's dlr URL carries for one delivery: HMAC-SHA256 of
/// the channel and delivery id, keyed with `dlr_secret`, base64url.
pub fn dlr_token(secret: &str, channel: &str, delivery: &str) -> String {
    use base64::Engine;
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(format!("crisisd-dlr:{channel}:{delivery}").as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
}

impl SmsGateway {
    /// The template variables for one message.
    fn variables(&self, to: &str, text: &str, id: &str) -> Value {
        let info = sms::analyze(text);
        let (encoding, coding, charset) = match info.encoding {
            SmsEncoding::Gsm7 => ("gsm7", 0, "UTF-8"),
            SmsEncoding::Ucs2 => ("ucs2", 2, "UTF-8"),
        };
        let dlr_url = self
            .dlr
            .as_ref()
            .map(|(base, key)| format!("{base}/{id}/{}", dlr_token(key, &self.name, id)));
        let base = context! {
            to => to,
            to_digits => to.trim_start_matches('+'),
            text => text,
            encoding => encoding,
            // Kannel's `coding`: 0 for 7-bit, 2 for UCS-2.
            coding => coding,
            charset => charset,
            segments => info.segments,
            id => id,
            secret => self.secret.clone().unwrap_or_default(),
        };
        // Offered only when configured, so a template that uses it
        // without `dlr_base_url` fails at start, not silently.
        match dlr_url {
            Some(dlr_url) => context! { dlr_url => dlr_url, ..base },
            None => base,
        }
    }

    /// A misspelt variable renders as undefined where a filter takes it
    /// (`{{ txt|tojson }}` is `null`) and would be sent so: every variable
    /// each template uses must be one the gateway gives.
    fn check_variables(&self, variables: &Value) -> Result<(), String> {
        let known = serde_json::to_value(variables).map_err(|e| e.to_string())?;
        let names = [URL.to_owned(), BODY.to_owned()]
            .into_iter()
            .chain(self.header_names.iter().map(|name| header_template(name)));
        for name in names {
            let unknown = crate::render::strict::undeclared(&self.templates, &name, &known);
            if !unknown.is_empty() {
                let given: Vec<&String> = known
                    .as_object()
                    .into_iter()
                    .flat_map(|m| m.keys())
                    .collect();
                return Err(format!(
                    "gateway {name} template uses {}, which the gateway does not give (it gives {})",
                    unknown
                        .iter()
                        .map(|v| format!("`{v}`"))
                        .collect::<Vec<_>>()
                        .join(", "),
                    given
                        .iter()
                        .map(|v| v.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                ));
            }
        }
        Ok(())
    }

    fn request_parts(&self, to: &str, text: &str, id: &str) -> Result<RequestParts, DeliveryError> {
        let vars = self.variables(to, text, id);
        let render = |name: &str| {
            self.templates
                .get_template(name)
                .and_then(|t| t.render(&vars))
                // Plain `{e}`: the detailed form lists the variables, and
                // `secret` is one of them.
                .map_err(|e| {
                    DeliveryError::permanent(format!("gateway {name} template failed: {e}"))
                })
        };
        let url = render(URL)?.trim().to_owned();
        let headers = self
            .header_names
            .iter()
            .map(|name| {
                Ok((
                    name.clone(),
                    render(&header_template(name))?.trim().to_owned(),
                ))
            })
            .collect::<Result<Vec<_>, DeliveryError>>()?;
        let body = if self.has_body {
            Some(render(BODY)?)
        } else {
            None
        };
        Ok(RequestParts { url, headers, body })
    }

    /// The gateway's id for the message, where `success.id_pointer` says.
    fn provider_ref(&self, body: &str) -> Option<String> {
        let pointer = self.success.id_pointer.as_ref()?;
        let json: serde_json::Value = serde_json::from_str(body).ok()?;
        match json.pointer(pointer)? {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Null => None,
            other => Some(other.to_string()),
        }
    }

    fn accepted(&self, status: StatusCode, body: &str) -> Result<(), String> {
        let status_ok = if self.success.status.is_empty() {
            status.is_success()
        } else {
            self.success.status.contains(&status.as_u16())
        };
        if !status_ok {
            return Err(format!("status {status}"));
        }
        if let Some(pointer) = &self.success.json_pointer {
            let json: serde_json::Value =
                serde_json::from_str(body).map_err(|e| format!("the body is not JSON ({e})"))?;
            let value = json
                .pointer(pointer)
                .ok_or_else(|| format!("no `{pointer}` in the body"))?;
            if let Some(expected) = &self.success.equals {
                let actual = match value {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                if &actual != expected {
                    return Err(format!("`{pointer}` is `{actual}`, not `{expected}`"));
                }
            }
        }
        if let Some(needle) = &self.success.contains
            && !body.contains(needle.as_str())
        {
            return Err(format!("the body does not contain `{needle}`"));
        }
        Ok(())
    }
}

#[async_trait]
impl Provider for SmsGateway {
    /// Only a fallback: a gateway is named by its channel (`label`).
    const LABEL: &'static str = "SMS gateway";

    fn new(settings: &SmsGatewaySettings) -> Result<Self, String> {
        let templates = templates(settings)?;
        check_success(&settings.success)?;
        let source = secret(&settings.secret_env, &settings.secret_file);
        let secret = if source.is_set() {
            Some(read_secret("gateway secret", &source)?)
        } else {
            None
        };
        let dlr_source =
            crate::channels::settings::secret(&settings.dlr_secret_env, &settings.dlr_secret_file);
        let dlr = match &settings.dlr_base_url {
            Some(base) if dlr_source.is_set() => Some((
                base.trim_end_matches('/').to_owned(),
                read_secret("dlr secret", &dlr_source)?,
            )),
            Some(_) => return Err("dlr_base_url needs dlr_secret_env or dlr_secret_file".into()),
            None => None,
        };
        let gateway = Self {
            name: settings.name.clone(),
            method: match settings.method {
                GatewayMethod::Get => reqwest::Method::GET,
                GatewayMethod::Post => reqwest::Method::POST,
                GatewayMethod::Put => reqwest::Method::PUT,
            },
            templates,
            header_names: settings.headers.keys().cloned().collect(),
            has_body: settings.body.is_some(),
            secret,
            success: settings.success.clone(),
            dlr,
        };
        // Render once with sample values: a template that cannot render is
        // a config error now, not a dead delivery during a crisis.
        let (to, text, id) = (
            "+4915112345678",
            "Sample message",
            "0190f1e2-0000-7000-8000-000000000000",
        );
        gateway
            .request_parts(to, text, id)
            .map_err(|e| e.to_string())?;
        gateway.check_variables(&gateway.variables(to, text, id))?;
        Ok(gateway)
    }

    async fn send(
        &self,
        exchange: &Exchange<'_, Self>,
        delivery: &Delivery,
    ) -> Result<Receipt, DeliveryError> {
        let message = message_of(delivery)?;
        let RequestParts { url, headers, body } = self.request_parts(
            &delivery.destination,
            &message.text,
            &delivery.id.to_string(),
        )?;
        let mut request = exchange.client().request(self.method.clone(), &url);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        if let Some(body) = body {
            request = request.body(body);
        }
        exchange.deliver(request).await
    }

    async fn healthcheck(&self, exchange: &Exchange<'_, Self>) -> Result<(), DeliveryError> {
        // A generic gateway has no standard no-op call: check that its
        // host answers HTTP at all.
        let RequestParts { url, .. } = self.request_parts("+10000000000", "", "healthcheck")?;
        let origin = reqwest::Url::parse(&url)
            // Not the URL itself: it may carry the secret.
            .map_err(|e| DeliveryError::permanent(format!("the gateway URL is not valid: {e}")))?
            .join("/")
            .map_err(|e| DeliveryError::permanent(e.to_string()))?;
        exchange.reach(origin).await
    }

    /// The configured success rule decides, whatever the status.
    fn read(&self, answer: &Answer) -> Result<Receipt, DeliveryError> {
        let Answer {
            status,
            headers,
            body,
        } = answer;
        match self.accepted(*status, body) {
            Ok(()) => Ok(Receipt {
                provider_ref: self.provider_ref(body),
            }),
            // Throttling and server trouble: try again.
            Err(_) if is_temporary(*status) => Err(classify(&self.name, *status, headers, body)),
            // A 2xx whose body does not say "accepted" may or may not have
            // sent the SMS; a retry could send it twice, so it is dead with
            // the gateway's answer, for a person to look at.
            Err(why) => Err(DeliveryError::permanent(format!(
                "gateway `{}` did not accept the message ({why}): {}",
                self.name,
                excerpt(body)
            ))),
        }
    }

    fn label(&self) -> &str {
        &self.name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ucs2_hex_is_utf16_big_endian() {
        assert_eq!(ucs2_hex("Aক"), "00410995");
        assert_eq!(ucs2_hex("😀"), "D83DDE00");
    }
}
