//! Signing in and out. The sign-in form carries a CSRF token kept in a
//! cookie of its own (there is no session yet); every attempt is rate
//! limited, and failures, refusals and sign-ins go to the account audit
//! trail and the log.

use std::net::IpAddr;

use axum::Form;
use axum::extract::{Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{AppendHeaders, IntoResponse, Redirect, Response};
use minijinja::context;
use serde::Deserialize;
use tracing::{info, warn};

use super::super::AppState;
use super::session::{
    LOGIN_COOKIE, SESSION_COOKIE, Staff, cookie, digest, over_https, peer, random_token,
    same_token, set_cookie, trusted_user,
};
use super::{Page, csrf_refused};
use crate::domain::account::{UserName, decoy_hash, verify_password};
use crate::outbox::{AccountEvent, AccountEventKind, NewSession};

#[derive(Debug, Deserialize)]
pub struct NextQuery {
    #[serde(default)]
    next: Option<String>,
    #[serde(default)]
    lang: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct SignInForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    next: String,
}

#[derive(Debug, Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// Where to go after signing in: a console path only, never another site.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(path) if path.starts_with("/console") && !path.starts_with("//") => path.to_owned(),
        _ => "/console".to_owned(),
    }
}

async fn audit(state: &AppState, kind: AccountEventKind, user: &str, detail: String) {
    let event = AccountEvent {
        at: state.clock.now(),
        kind,
        user: user.chars().take(64).collect(),
        detail,
    };
    if let Err(err) = state.storage.accounts.record_account_event(&event).await {
        warn!(error = %err, "Could not write the console's account audit trail.");
    }
}

fn from(address: Option<IpAddr>) -> String {
    address.map_or_else(
        || "from an unknown address".to_owned(),
        |a| format!("from {a}"),
    )
}

/// Starts a session for `name` and sends the browser on with its cookie.
async fn start_session(
    state: &AppState,
    headers: &HeaderMap,
    name: UserName,
    next: &str,
) -> Response {
    let token = random_token();
    let session = NewSession {
        token_digest: digest(&token),
        user: name,
        csrf: random_token(),
        created_at: state.clock.now(),
    };
    if let Err(err) = state.storage.accounts.start_session(&session).await {
        return super::super::ApiError::from(err).into_response();
    }
    let secure = over_https(&state.console, headers);
    (
        AppendHeaders([
            (
                header::SET_COOKIE,
                set_cookie(SESSION_COOKIE, &token, secure, None),
            ),
            (
                header::SET_COOKIE,
                set_cookie(LOGIN_COOKIE, "", secure, Some(0)),
            ),
        ]),
        Redirect::to(next),
    )
        .into_response()
}

/// The form, with a fresh CSRF token in its cookie.
fn sign_in_page(
    state: &AppState,
    headers: &HeaderMap,
    lang: &'static str,
    next: &str,
    status: StatusCode,
    error: Option<String>,
) -> Response {
    let token = random_token();
    let secure = over_https(&state.console, headers);
    let page = Page::anonymous(state, lang).render(
        status,
        "login.html.j2",
        context! { csrf => token, next => next, error => error },
    );
    (
        AppendHeaders([(
            header::SET_COOKIE,
            set_cookie(LOGIN_COOKIE, &token, secure, None),
        )]),
        page,
    )
        .into_response()
}

pub async fn page(
    State(state): State<AppState>,
    Query(query): Query<NextQuery>,
    parts: Parts,
) -> Response {
    let next = safe_next(query.next.as_deref());
    let lang = super::view::language(&parts.headers, query.lang.as_deref());
    // Behind an authenticating proxy the proxy has signed them in already.
    if let Some(user) = trusted_user(&state.console, &parts) {
        let known = match UserName::parse(user) {
            Ok(name) => state.storage.accounts.user(&name).await.ok().flatten(),
            Err(_) => None,
        };
        if let Some(account) = known {
            audit(
                &state,
                AccountEventKind::SignedIn,
                account.name.as_str(),
                "trusted header".into(),
            )
            .await;
            return start_session(&state, &parts.headers, account.name, &next).await;
        }
        warn!(
            user,
            "A trusted proxy named a console account that does not exist."
        );
    }
    sign_in_page(&state, &parts.headers, lang, &next, StatusCode::OK, None)
}

/// One attempt too many: refused before any password is checked, with
/// how long to wait.
async fn refused_for_now(
    state: &AppState,
    headers: &HeaderMap,
    (lang, next): (&'static str, &str),
    username: &str,
    address: Option<IpAddr>,
    wait: std::time::Duration,
) -> Response {
    let seconds = wait.as_secs().max(1);
    warn!(user = %username, address = ?address, "Console sign-in refused: too many attempts.");
    audit(
        state,
        AccountEventKind::SignInLimited,
        username,
        from(address),
    )
    .await;
    let message = state
        .console
        .view
        .strings(lang)
        .get_attr("sign_in_limited")
        .map(|m| m.to_string().replace("{seconds}", &seconds.to_string()))
        .unwrap_or_default();
    let mut response = sign_in_page(
        state,
        headers,
        lang,
        next,
        StatusCode::TOO_MANY_REQUESTS,
        Some(message),
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, axum::http::HeaderValue::from(seconds));
    response
}

pub async fn sign_in(
    State(state): State<AppState>,
    parts: Parts,
    Form(form): Form<SignInForm>,
) -> Response {
    let headers = &parts.headers;
    let lang = super::view::language(headers, None);
    let strings = state.console.view.strings(lang);
    let next = safe_next(Some(&form.next));
    let address = peer(&parts.extensions);
    let expected = cookie(headers, LOGIN_COOKIE).unwrap_or_default();
    if expected.is_empty() || !same_token(expected, &form.csrf) {
        return csrf_refused(&state, lang);
    }
    if let Some(wait) = state.console.sign_ins.attempt(&form.username, address) {
        return refused_for_now(
            &state,
            headers,
            (lang, &next),
            &form.username,
            address,
            wait,
        )
        .await;
    }
    let account = match UserName::parse(&form.username) {
        Ok(name) => match state.storage.accounts.user(&name).await {
            Ok(account) => account,
            Err(err) => return super::super::ApiError::from(err).into_response(),
        },
        Err(_) => None,
    };
    let hash = account
        .as_ref()
        .map_or_else(|| decoy_hash().to_owned(), |a| a.password_hash.clone());
    let password = form.password;
    let matches = tokio::task::spawn_blocking(move || verify_password(&password, &hash))
        .await
        .unwrap_or(false);
    match account {
        Some(account) if matches => {
            info!(user = %account.name, "Signed in to the console.");
            audit(
                &state,
                AccountEventKind::SignedIn,
                account.name.as_str(),
                from(address),
            )
            .await;
            start_session(&state, headers, account.name, &next).await
        }
        _ => {
            warn!(user = %form.username, address = ?address, "Console sign-in failed.");
            audit(
                &state,
                AccountEventKind::SignInFailed,
                &form.username,
                from(address),
            )
            .await;
            let message = strings
                .get_attr("sign_in_failed")
                .map(|m| m.to_string())
                .unwrap_or_default();
            sign_in_page(
                &state,
                headers,
                lang,
                &next,
                StatusCode::UNAUTHORIZED,
                Some(message),
            )
        }
    }
}

pub async fn sign_out(
    State(state): State<AppState>,
    staff: Staff,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    let lang = super::view::language(&headers, None);
    if !same_token(&staff.csrf, &form.csrf) {
        return csrf_refused(&state, lang);
    }
    if let Err(err) = state
        .storage
        .accounts
        .end_session(&staff.token_digest)
        .await
    {
        return super::super::ApiError::from(err).into_response();
    }
    audit(
        &state,
        AccountEventKind::SignedOut,
        staff.name.as_str(),
        String::new(),
    )
    .await;
    let secure = over_https(&state.console, &headers);
    (
        AppendHeaders([(
            header::SET_COOKIE,
            set_cookie(SESSION_COOKIE, "", secure, Some(0)),
        )]),
        Redirect::to("/console/login"),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_console_paths_are_followed_after_signing_in() {
        assert_eq!(safe_next(Some("/console/crises/1")), "/console/crises/1");
        assert_eq!(safe_next(Some("https://evil.example")), "/console");
        assert_eq!(safe_next(Some("//evil.example/console")), "/console");
        assert_eq!(safe_next(None), "/console");
    }
}
