//! A generic HTTP SMS gateway. Method, URL, headers and body are minijinja
//! templates over the message, so one channel type drives the send APIs of
//! self-hosted gateways (query-string GETs with charset and coding
//! parameters, JSON POSTs) without code for each.

use std::time::Duration;

use async_trait::async_trait;
use minijinja::{Environment, UndefinedBehavior, Value, context};
use reqwest::StatusCode;

use crate::channels::{Channel, ChannelError, DeliveryError, Receipt, http, message_of};
use crate::config::{GatewayMethod, GatewaySuccess, SmsGatewaySettings};
use crate::message::sms::{self, SmsEncoding};
use crate::outbox::Delivery;

pub struct SmsGatewayChannel {
    name: String,
    method: GatewayMethod,
    /// Holds the url, headers and body templates, compiled once.
    templates: Environment<'static>,
    header_names: Vec<String>,
    has_body: bool,
    secret: Option<String>,
    success: GatewaySuccess,
    concurrency: usize,
    timeout: Duration,
    http: reqwest::Client,
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

impl SmsGatewayChannel {
    pub fn from_settings(
        settings: &SmsGatewaySettings,
        http: reqwest::Client,
    ) -> Result<Self, ChannelError> {
        let config_err = |message: String| ChannelError::Config {
            channel: settings.name.clone(),
            message,
        };
        let mut templates = Environment::new();
        templates.set_undefined_behavior(UndefinedBehavior::Strict);
        templates.add_filter("ucs2_hex", |text: String| ucs2_hex(&text));
        let mut add = |name: String, source: &str| {
            templates
                .add_template_owned(name.clone(), source.to_owned())
                .map_err(|e| config_err(format!("{name} template: {e}")))
        };
        add(URL.to_owned(), &settings.url)?;
        for (name, value) in &settings.headers {
            add(header_template(name), value)?;
        }
        if let Some(body) = &settings.body {
            add(BODY.to_owned(), body)?;
        }
        if settings.success.equals.is_some() && settings.success.json_pointer.is_none() {
            return Err(config_err(
                "success.equals needs success.json_pointer".into(),
            ));
        }
        if let Some(pointer) = &settings.success.json_pointer
            && !(pointer.is_empty() || pointer.starts_with('/'))
        {
            return Err(config_err(format!(
                "success.json_pointer `{pointer}` must start with `/`"
            )));
        }
        let secret = if settings.secret().is_set() {
            Some(crate::channels::read_secret(
                &settings.name,
                "gateway secret",
                &settings.secret(),
            )?)
        } else {
            None
        };
        let channel = Self {
            name: settings.name.clone(),
            method: settings.method,
            templates,
            header_names: settings.headers.keys().cloned().collect(),
            has_body: settings.body.is_some(),
            secret,
            success: settings.success.clone(),
            concurrency: settings.concurrency.max(1),
            timeout: settings.timeout,
            http,
        };
        // Render once with sample values: a template that cannot render is
        // a config error now, not a dead delivery during a crisis.
        channel
            .request_parts(
                "+4915112345678",
                "Sample message",
                "0190f1e2-0000-7000-8000-000000000000",
            )
            .map_err(|e| config_err(e.to_string()))?;
        Ok(channel)
    }

    /// The template variables for one message.
    fn variables(&self, to: &str, text: &str, id: &str) -> Value {
        let info = sms::analyze(text);
        let (encoding, coding, charset) = match info.encoding {
            SmsEncoding::Gsm7 => ("gsm7", 0, "UTF-8"),
            SmsEncoding::Ucs2 => ("ucs2", 2, "UTF-8"),
        };
        context! {
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
        }
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
impl Channel for SmsGatewayChannel {
    fn name(&self) -> &str {
        &self.name
    }

    fn concurrency(&self) -> usize {
        self.concurrency
    }

    async fn send(&self, delivery: &Delivery) -> Result<Receipt, DeliveryError> {
        let message = message_of(delivery)?;
        let RequestParts { url, headers, body } = self.request_parts(
            &delivery.destination,
            &message.text,
            &delivery.id.to_string(),
        )?;
        let method = match self.method {
            GatewayMethod::Get => reqwest::Method::GET,
            GatewayMethod::Post => reqwest::Method::POST,
            GatewayMethod::Put => reqwest::Method::PUT,
        };
        let mut request = self.http.request(method, &url).timeout(self.timeout);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        if let Some(body) = body {
            request = request.body(body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| http::request_failed(&self.name, e))?;
        let (status, response_headers) = (response.status(), response.headers().clone());
        let text = response
            .text()
            .await
            .map_err(|e| http::request_failed(&self.name, e))?;
        match self.accepted(status, &text) {
            Ok(()) => Ok(Receipt::default()),
            // Throttling and server trouble: try again.
            Err(_)
                if status == StatusCode::TOO_MANY_REQUESTS
                    || status == StatusCode::REQUEST_TIMEOUT
                    || status.is_server_error() =>
            {
                Err(http::classify(&self.name, status, &response_headers, &text))
            }
            // A 2xx whose body does not say "accepted" may or may not have
            // sent the SMS; a retry could send it twice, so it is dead with
            // the gateway's answer, for a person to look at.
            Err(why) => Err(DeliveryError::permanent(format!(
                "gateway `{}` did not accept the message ({why}): {}",
                self.name,
                http::excerpt(&text)
            ))),
        }
    }

    async fn healthcheck(&self) -> Result<(), DeliveryError> {
        // A generic gateway has no standard no-op call: check that its
        // host answers HTTP at all.
        let RequestParts { url, .. } = self.request_parts("+10000000000", "", "healthcheck")?;
        let origin = reqwest::Url::parse(&url)
            // Not the URL itself: it may carry the secret.
            .map_err(|e| DeliveryError::permanent(format!("the gateway URL is not valid: {e}")))?
            .join("/")
            .map_err(|e| DeliveryError::permanent(e.to_string()))?;
        self.http
            .head(origin)
            .timeout(self.timeout)
            .send()
            .await
            .map(drop)
            .map_err(|e| http::request_failed(&self.name, e))
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
