//! Signing in to the console, and what it refuses: no session, a forged
//! or expired cookie, a form without its CSRF token, too many attempts.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use crisisd::clock::ManualClock;
use reqwest::StatusCode;

use super::{Browser, PASSWORD, with_accounts};
use crate::support::{SmtpServer, TestConfig, spawn_app};

#[tokio::test]
async fn without_a_session_every_page_sends_you_to_sign_in_and_back() {
    let smtp = SmtpServer::start().await;
    let app = spawn_app(TestConfig::new(smtp.port())).await;
    with_accounts(&app).await;
    let mut browser = Browser::new(&app);
    for path in ["/console", "/console/hooks", "/console/live"] {
        let page = browser.get(path).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{path}");
        assert!(
            page.location().starts_with("/console/login?next="),
            "{path}: {}",
            page.location()
        );
    }
    let id = app.declare("Payments are down").await;
    let page = browser.get(&format!("/console/crises/{id}")).await;
    assert_eq!(
        page.location(),
        format!("/console/login?next=%2Fconsole%2Fcrises%2F{id}")
    );

    let signed_in = browser.sign_in("author", PASSWORD).await;
    assert_eq!(
        signed_in.status,
        StatusCode::SEE_OTHER,
        "{}",
        signed_in.body
    );
    assert_eq!(signed_in.location(), "/console");
    let cookie = signed_in
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("crisisd_session="))
        .expect("a session cookie");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(
        !cookie.contains("Secure"),
        "plain http to the listener: {cookie}"
    );
    let dashboard = browser.get("/console").await;
    assert_eq!(dashboard.status, StatusCode::OK);
    assert!(
        dashboard.body.contains("Payments are down"),
        "{}",
        dashboard.body
    );
    assert!(dashboard.body.contains("author"), "the person is named");
    let policy = dashboard.headers["content-security-policy"]
        .to_str()
        .unwrap();
    assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
}

#[tokio::test]
async fn over_the_public_https_address_the_session_cookie_is_secure() {
    let smtp = SmtpServer::start().await;
    let app = spawn_app(TestConfig::new(smtp.port())).await;
    with_accounts(&app).await;
    let mut browser = Browser::new(&app);
    browser
        .headers
        .insert("host", "crisis.example.com".parse().unwrap());
    let page = browser.sign_in("viewer", PASSWORD).await;
    let cookie = page
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("crisisd_session="))
        .expect("a session cookie");
    assert!(cookie.contains("; Secure"), "{cookie}");
}

#[tokio::test]
async fn a_forged_cookie_or_a_wrong_password_signs_nobody_in() {
    let smtp = SmtpServer::start().await;
    let app = spawn_app(TestConfig::new(smtp.port())).await;
    with_accounts(&app).await;
    let mut browser = Browser::new(&app);
    browser
        .cookies
        .insert("crisisd_session".into(), "forged-0123456789abcdef".into());
    let page = browser.get("/console").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert!(page.location().starts_with("/console/login"));

    let wrong = browser.sign_in("author", "not the password").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.body.contains("not right"), "{}", wrong.body);
    let unknown = browser.sign_in("nobody", PASSWORD).await;
    assert_eq!(
        unknown.status,
        StatusCode::UNAUTHORIZED,
        "an unknown name reads the same"
    );
    assert!(!browser.cookies.contains_key("crisisd_session"));
}

#[tokio::test]
async fn a_session_ends_after_the_idle_time_and_signing_out_ends_it_at_once() {
    let smtp = SmtpServer::start().await;
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let mut config = TestConfig::new(smtp.port());
    config.clock = Some(clock.clone());
    config.extra = "[console]\nsession_idle = \"10m\"\n".into();
    let app = spawn_app(config).await;
    with_accounts(&app).await;

    let mut browser = Browser::signed_in(&app, "viewer", PASSWORD).await;
    clock.advance(chrono::Duration::minutes(9));
    assert_eq!(
        browser.get("/console").await.status,
        StatusCode::OK,
        "still active"
    );
    clock.advance(chrono::Duration::minutes(9));
    assert_eq!(
        browser.get("/console").await.status,
        StatusCode::OK,
        "inactivity counts from the last request"
    );
    clock.advance(chrono::Duration::minutes(11));
    let expired = browser.get("/console").await;
    assert_eq!(expired.status, StatusCode::SEE_OTHER, "idle too long");
    assert!(expired.location().starts_with("/console/login"));

    let mut browser = Browser::signed_in(&app, "viewer", PASSWORD).await;
    let csrf = browser.get("/console").await.csrf();
    let stolen = browser.cookies.clone();
    let out = browser.post("/console/logout", &[("csrf", &csrf)]).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    let mut thief = Browser::new(&app);
    thief.cookies = stolen;
    assert_eq!(
        thief.get("/console").await.status,
        StatusCode::SEE_OTHER,
        "the old cookie is dead"
    );
}

#[tokio::test]
async fn a_form_without_its_csrf_token_is_refused_and_changes_nothing() {
    let smtp = SmtpServer::start().await;
    let app = spawn_app(TestConfig::new(smtp.port())).await;
    with_accounts(&app).await;
    let mut browser = Browser::signed_in(&app, "author", PASSWORD).await;
    for form in [vec![], vec![("csrf", "guessed")]] {
        let page = browser.post("/console/logout", &form).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{form:?}");
        assert!(page.body.contains("expired"), "{}", page.body);
    }
    assert_eq!(
        browser.get("/console").await.status,
        StatusCode::OK,
        "still signed in"
    );

    // The sign-in form has its token in a cookie of its own.
    let mut stranger = Browser::new(&app);
    let page = stranger
        .post(
            "/console/login",
            &[
                ("username", "author"),
                ("password", PASSWORD),
                ("csrf", "x"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert!(!stranger.cookies.contains_key("crisisd_session"));
}

#[tokio::test]
async fn after_five_failed_sign_ins_the_next_attempt_waits_and_all_are_audited() {
    let smtp = SmtpServer::start().await;
    let app = spawn_app(TestConfig::new(smtp.port())).await;
    with_accounts(&app).await;
    let mut browser = Browser::new(&app);
    for _ in 0..5 {
        let page = browser.sign_in("approver", "guess guess guess").await;
        assert_eq!(page.status, StatusCode::UNAUTHORIZED);
    }
    let started = std::time::Instant::now();
    let limited = browser.sign_in("approver", PASSWORD).await;
    assert_eq!(
        limited.status,
        StatusCode::TOO_MANY_REQUESTS,
        "even the right password"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "refused before hashing"
    );
    let wait: u64 = limited.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=30).contains(&wait), "{wait}");
    assert!(limited.body.contains("Too many"), "{}", limited.body);
    assert!(!browser.cookies.contains_key("crisisd_session"));
    // Another account is not locked by it.
    assert_eq!(
        browser.sign_in("viewer", PASSWORD).await.status,
        StatusCode::SEE_OTHER
    );

    let storage = crisisd::app::open_storage(&app.dir.path().join("crisisd.toml"))
        .await
        .expect("store");
    let events = storage.accounts.account_events(20).await.expect("events");
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "sign_in_failed").count(),
        5,
        "{kinds:?}"
    );
    assert!(kinds.contains(&"sign_in_limited"), "{kinds:?}");
    let failed = events
        .iter()
        .find(|e| e.kind.as_str() == "sign_in_failed")
        .unwrap();
    assert_eq!(failed.user, "approver");
    assert!(failed.detail.contains("127.0.0.1"), "{}", failed.detail);
}

/// A daemon that trusts `X-Remote-User` from `proxy` only.
async fn behind_proxy(smtp: &SmtpServer, proxy: &str) -> crate::support::TestApp {
    let mut config = TestConfig::new(smtp.port());
    config.extra =
        format!("[console.trusted_header]\nheader = \"X-Remote-User\"\nproxies = [\"{proxy}\"]\n");
    let app = spawn_app(config).await;
    with_accounts(&app).await;
    app
}

#[tokio::test]
async fn a_trusted_header_signs_in_only_from_a_configured_proxy() {
    let smtp = SmtpServer::start().await;
    // The tests connect from 127.0.0.1: here that is the proxy.
    let app = behind_proxy(&smtp, "127.0.0.1").await;
    let mut browser = Browser::new(&app);
    browser
        .headers
        .insert("x-remote-user", "author".parse().expect("header"));
    let signed = browser.get("/console/login").await;
    assert_eq!(signed.status, StatusCode::SEE_OTHER, "{}", signed.body);
    let dashboard = browser.get("/console").await;
    assert_eq!(dashboard.status, StatusCode::OK, "signed in as author");
    assert!(dashboard.body.contains("author"), "{}", dashboard.body);
    // The proxy names someone else now: the session is not theirs.
    browser
        .headers
        .insert("x-remote-user", "admin".parse().expect("header"));
    let other = browser.get("/console").await;
    assert_eq!(other.status, StatusCode::SEE_OTHER, "{}", other.body);
    assert!(
        other.location().starts_with("/console/login"),
        "{}",
        other.location()
    );
}

#[tokio::test]
async fn a_trusted_header_from_anywhere_but_the_proxy_is_ignored() {
    let smtp = SmtpServer::start().await;
    let app = behind_proxy(&smtp, "192.0.2.10").await;
    let mut browser = Browser::new(&app);
    browser
        .headers
        .insert("x-remote-user", "admin".parse().expect("header"));
    let page = browser.get("/console/login").await;
    assert_eq!(
        page.status,
        StatusCode::OK,
        "the sign-in form, not a session"
    );
    assert!(page.body.contains("name=\"password\""), "{}", page.body);
    assert!(
        page.set_cookies()
            .iter()
            .all(|c| !c.starts_with("crisisd_session=")),
        "{:?}",
        page.set_cookies()
    );
    let dashboard = browser.get("/console").await;
    assert_eq!(dashboard.status, StatusCode::SEE_OTHER, "still signed out");
}
