//! Console sessions: a random secret in an HttpOnly, SameSite=Strict
//! cookie (Secure when the console is reached over https), stored only as
//! its SHA-256; each session carries the CSRF token its forms must send
//! back, and ends after `[console] session_idle` without a request.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, TimeDelta, Utc};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tracing::warn;

use super::super::AppState;
use super::Console;
use crate::domain::account::{Role, UserName};
use crate::outbox::{Session, StoreError};

pub const SESSION_COOKIE: &str = "crisisd_session";
/// The sign-in form's CSRF token, before there is a session to hold it.
pub const LOGIN_COOKIE: &str = "crisisd_signin";
pub const LANG_COOKIE: &str = "crisisd_lang";

/// A session's last-seen time is written at most this often.
const TOUCH_EVERY: TimeDelta = TimeDelta::seconds(30);

/// 32 random bytes, URL-safe base64.
pub fn random_token() -> String {
    let bytes: [u8; 32] = rand::random();
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Constant-time comparison of two tokens.
pub fn same_token(a: &str, b: &str) -> bool {
    let a = Sha256::digest(a.as_bytes());
    let b = Sha256::digest(b.as_bytes());
    bool::from(a.ct_eq(&b))
}

/// A cookie's value from the request's `Cookie` headers.
pub fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// Whether this request reached the console over https: through the
/// public URL when that is https (a proxy terminates TLS in front of the
/// daemon). A request to the listener's own address is plain http.
pub fn over_https(console: &Console, headers: &HeaderMap) -> bool {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    matches!((&console.https_host, host), (Some(https), Some(host)) if https.eq_ignore_ascii_case(host))
}

/// A `Set-Cookie` value for the console's path.
pub fn set_cookie(name: &str, value: &str, secure: bool, max_age: Option<i64>) -> HeaderValue {
    let mut text = format!("{name}={value}; Path=/console; HttpOnly; SameSite=Strict");
    if secure {
        text.push_str("; Secure");
    }
    if let Some(seconds) = max_age {
        text.push_str(&format!("; Max-Age={seconds}"));
    }
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("invalid=1"))
}

/// The client's address as the listener saw it.
pub fn peer(parts_extensions: &axum::http::Extensions) -> Option<IpAddr> {
    parts_extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip())
}

/// A signed-in person, for every console page but the sign-in.
#[derive(Debug, Clone)]
pub struct Staff {
    pub name: UserName,
    pub role: Role,
    /// The token this session's forms carry.
    pub csrf: String,
    pub token_digest: String,
}

impl Staff {
    /// The actor's name in the audit trail: `console:alice`.
    pub fn actor(&self) -> crate::domain::Actor {
        crate::domain::Actor::new(crate::domain::ActorSource::Console, self.name.to_string())
    }
}

/// Why a request has no usable session.
pub enum NoSession {
    /// Sign in first (a page): redirected there, to come back to this
    /// path; a cookie that named no usable session is cleared.
    SignIn {
        next: String,
        clear: bool,
    },
    Store(StoreError),
}

impl IntoResponse for NoSession {
    fn into_response(self) -> Response {
        match self {
            NoSession::SignIn { next, clear } => {
                let next: String = url_escape(&next);
                let mut response =
                    Redirect::to(&format!("/console/login?next={next}")).into_response();
                if clear {
                    response.headers_mut().insert(
                        header::SET_COOKIE,
                        set_cookie(SESSION_COOKIE, "", false, Some(0)),
                    );
                }
                response
            }
            NoSession::Store(err) => super::super::ApiError::from(err).into_response(),
        }
    }
}

fn url_escape(text: &str) -> String {
    serde_urlencoded::to_string([("", text)])
        .map(|s| s.trim_start_matches('=').to_owned())
        .unwrap_or_default()
}

/// The session is usable: it exists, it was not idle too long, and under
/// a trusted header the proxy still names its account.
fn still_valid(
    session: &Session,
    console: &Console,
    trusted_user: Option<&str>,
    now: DateTime<Utc>,
) -> bool {
    let idle = TimeDelta::from_std(console.settings.session_idle).unwrap_or(TimeDelta::MAX);
    let fresh = now - session.last_seen_at <= idle;
    let same_person =
        trusted_user.is_none_or(|user| user.eq_ignore_ascii_case(session.user.as_str()));
    fresh && same_person
}

/// The account a trusted proxy names in this request, if the console
/// trusts a header and the request comes from one of the proxies.
pub fn trusted_user<'p>(console: &Console, parts: &'p Parts) -> Option<&'p str> {
    let trusted = console.settings.trusted_header.as_ref()?;
    let from = peer(&parts.extensions)?;
    if !trusted.proxies.contains(&from) {
        return None;
    }
    parts
        .headers
        .get(trusted.header.as_str())
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

impl FromRequestParts<AppState> for Staff {
    type Rejection = NoSession;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, NoSession> {
        let next = parts
            .uri
            .path_and_query()
            .map_or("/console", |p| p.as_str())
            .to_owned();
        let Some(token) = cookie(&parts.headers, SESSION_COOKIE) else {
            return Err(NoSession::SignIn { next, clear: false });
        };
        let token_digest = digest(token);
        let accounts = &state.storage.accounts;
        let Some(session) = accounts
            .session(&token_digest)
            .await
            .map_err(NoSession::Store)?
        else {
            return Err(NoSession::SignIn { next, clear: true });
        };
        let now = state.clock.now();
        if !still_valid(
            &session,
            &state.console,
            trusted_user(&state.console, parts),
            now,
        ) {
            if let Err(err) = accounts.end_session(&token_digest).await {
                warn!(error = %err, "Could not end an idle console session.");
            }
            return Err(NoSession::SignIn { next, clear: true });
        }
        if now - session.last_seen_at > TOUCH_EVERY {
            accounts
                .touch_session(&token_digest, now)
                .await
                .map_err(NoSession::Store)?;
        }
        Ok(Staff {
            name: session.user,
            role: session.role,
            csrf: session.csrf,
            token_digest,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_by_name_among_several() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            "a=1; crisisd_session=xyz; b=2".parse().expect("v"),
        );
        assert_eq!(cookie(&headers, SESSION_COOKIE), Some("xyz"));
        assert_eq!(cookie(&headers, "c"), None);
    }

    #[test]
    fn a_session_cookie_is_http_only_strict_and_secure_over_https() {
        let value = set_cookie(SESSION_COOKIE, "t", true, None);
        let text = value.to_str().expect("ascii");
        assert!(
            text.contains("HttpOnly")
                && text.contains("SameSite=Strict")
                && text.contains("Secure")
        );
        let plain = set_cookie(SESSION_COOKIE, "t", false, Some(0));
        assert!(!plain.to_str().expect("ascii").contains("Secure"));
    }

    #[test]
    fn tokens_compare_equal_only_when_equal() {
        let token = random_token();
        assert!(same_token(&token, &token.clone()));
        assert!(!same_token(&token, &random_token()));
        assert_eq!(digest("a").len(), 64);
    }
}
