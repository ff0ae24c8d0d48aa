//! Previews render every channel's message without sending anything.

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::{Value, json};

use crate::support::{SmtpServer, TOKEN, TestConfig, free_port, spawn_app};

#[tokio::test]
async fn previewing_sms_works_before_a_gateway_is_configured_and_shows_encoding_and_segments() {
    let smtp = SmtpServer::start().await;
    let app = spawn_app(TestConfig::new(smtp.port())).await;
    let response = app
        .post(
            "/v1/preview",
            &json!({"kind": "outage", "severity": "critical", "title": "Payments are down",
                    "summary": "Card payments fail.", "channel": "sms"}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("JSON");
    let previews = body["previews"].as_array().expect("previews");
    let locales: Vec<&str> = previews
        .iter()
        .filter_map(|p| p["locale"].as_str())
        .collect();
    assert_eq!(locales, ["bn", "en", "eo"]);
    for preview in previews {
        let sms = &preview["measurement"]["sms"];
        let text = preview["text"].as_str().expect("text");
        let info = crisisd::message::sms::analyze(text);
        assert_eq!(sms["segments"], info.segments, "{preview}");
        assert_eq!(preview["measurement"]["unit"], "segments");
        assert!(preview["measurement"]["fits"].as_bool().expect("fits"));
    }
    let bengali = &previews[0];
    assert_eq!(bengali["measurement"]["sms"]["encoding"], "ucs2");
    assert_eq!(previews[1]["measurement"]["sms"]["encoding"], "gsm7");

    assert!(smtp.accepted().is_empty(), "nothing was sent");
    assert_eq!(
        app.get_json("/v1/crises").await["crises"],
        json!([]),
        "nothing was declared"
    );
}

#[tokio::test]
async fn previewing_every_configured_channel_includes_email_with_its_subject() {
    let smtp = SmtpServer::start().await;
    let app = spawn_app(TestConfig::new(smtp.port())).await;
    let body: Value = app
        .post(
            "/v1/preview",
            &json!({"kind": "outage", "severity": "major", "title": "Payments are down",
                    "summary": "Card payments fail.", "lang": "eo", "announcement": "resolved",
                    "message": "Ĉio funkcias denove."}),
        )
        .await
        .json()
        .await
        .expect("JSON");
    let previews = body["previews"].as_array().expect("previews");
    assert_eq!(previews.len(), 1);
    assert_eq!(previews[0]["channel"], "email");
    assert_eq!(previews[0]["locale"], "eo");
    assert!(
        previews[0]["subject"]
            .as_str()
            .is_some_and(|s| !s.is_empty())
    );
    assert!(
        previews[0]["text"]
            .as_str()
            .unwrap_or_default()
            .contains("Ĉio funkcias denove.")
    );
}

#[tokio::test]
async fn previewing_an_unknown_channel_says_what_is_known() {
    let app = spawn_app(TestConfig::new(1)).await;
    let response = app
        .post(
            "/v1/preview",
            &json!({"kind": "outage", "severity": "major", "title": "t", "summary": "s", "channel": "pager"}),
        )
        .await;
    assert_eq!(response.status(), 400);
    let message = response.json::<Value>().await.expect("JSON")["error"]["message"].clone();
    assert!(
        message.as_str().unwrap_or_default().contains("mastodon"),
        "{message}"
    );
}

#[tokio::test]
async fn the_cli_prints_each_channels_text_with_its_length() {
    let smtp = SmtpServer::start().await;
    let app = spawn_app(TestConfig::new(smtp.port())).await;
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_crisisd"))
        .args([
            "preview",
            "--kind",
            "outage",
            "--severity",
            "major",
            "--title",
            "Payments are down",
            "--summary",
            "Card payments fail.",
            "--channel",
            "social",
            "--url",
            &app.base,
        ])
        .env("CRISISD_TOKEN", TOKEN)
        .output()
        .await
        .expect("run");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("social (social) · en"), "{text}");
    assert!(text.contains("of 300 graphemes"), "{text}");
    assert!(text.contains("Payments are down"), "{text}");
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(
        said.starts_with(&format!("Rendered by the daemon at {}.", app.base)),
        "{said}"
    );
}

/// A config in a directory of its own, with no daemon started on it.
fn config_without_daemon(extra: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = TestConfig::new(free_port());
    config.extra = extra.to_owned();
    let path = dir.path().join("crisisd.toml");
    std::fs::write(&path, config.write(dir.path())).expect("write config");
    (dir, path)
}

/// `crisisd preview` with this config and nothing listening at its URL.
async fn preview_without_daemon(config: &Path, args: &[&str]) -> Output {
    let nobody = format!("http://127.0.0.1:{}", free_port());
    tokio::process::Command::new(env!("CARGO_BIN_EXE_crisisd"))
        .args(["--config", config.to_str().expect("utf-8"), "preview"])
        .args(["--kind", "outage", "--severity", "major"])
        .args(args)
        .args(["--url", &nobody])
        .env_remove("CRISISD_TOKEN")
        .output()
        .await
        .expect("run")
}

fn out(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

const TEXTS: &str = r#"
title = "Payments are down"
summary = "Card payments fail since 09:10."
message = "Cash on delivery still works."

[bn]
title = "কার্ডে পেমেন্ট বন্ধ"
summary = "০৯:১০ থেকে কার্ডে পেমেন্ট হচ্ছে না।"
message = "ক্যাশ অন ডেলিভারি চালু আছে।"

[eo]
title = "Kartaj pagoj ne funkcias"
summary = "Kartaj pagoj malsukcesas ekde 09:10."
message = "Pago ĉe livero ankoraŭ funkcias."
"#;

#[tokio::test]
async fn with_no_daemon_running_the_cli_renders_every_locale_from_the_config() {
    let (dir, config) = config_without_daemon("");
    let texts = dir.path().join("texts.toml");
    std::fs::write(&texts, TEXTS).expect("write texts");
    let output = preview_without_daemon(
        &config,
        &[
            "--texts",
            texts.to_str().expect("utf-8"),
            "--localized",
            "eo.message=Pago ĉe livero ankoraŭ funkcias!",
            "--all-locales",
        ],
    )
    .await;
    let (text, said) = out(&output);
    assert!(output.status.success(), "{said}");
    assert!(
        said.starts_with(&format!("Rendered locally from {}", config.display()))
            && said.contains("no daemon answered"),
        "{said}"
    );
    let texts: toml::Table = toml::from_str(TEXTS).expect("texts");
    for locale in ["en", "bn", "eo"] {
        let header = format!("── email (email) · {locale} · long form");
        let at = text
            .find(&header)
            .unwrap_or_else(|| panic!("{header}: {text}"));
        let email = &text[at..];
        let email = &email[..email[3..].find("──").map_or(email.len(), |end| end + 3)];
        let own = texts
            .get(locale)
            .and_then(|t| t.as_table())
            .unwrap_or(&texts);
        for field in ["title", "summary"] {
            let wanted = own[field].as_str().expect("text");
            assert!(email.contains(wanted), "{locale} {field}: {email}");
        }
        let message = match locale {
            // The flag wins over the file.
            "eo" => "Pago ĉe livero ankoraŭ funkcias!",
            _ => own["message"].as_str().expect("text"),
        };
        assert!(email.contains(message), "{locale} message: {email}");
        let banner = format!("── banner · {locale}");
        let at = text
            .find(&banner)
            .unwrap_or_else(|| panic!("{banner}: {text}"));
        assert!(text[at..].contains(own["title"].as_str().expect("title")));
    }
    assert!(
        !dir.path().join("crisisd.db").exists(),
        "a local preview opens no store"
    );
}

#[tokio::test]
async fn html_writes_the_email_as_the_reader_sees_it() {
    let (dir, config) = config_without_daemon("");
    let file = dir.path().join("email.html");
    let output = preview_without_daemon(
        &config,
        &[
            "--title",
            "Payments are down",
            "--summary",
            "Card payments fail.",
            "--message",
            "Cash & carry still works.",
            "--lang",
            "en",
            "--html",
            file.to_str().expect("utf-8"),
        ],
    )
    .await;
    let (_, said) = out(&output);
    assert!(output.status.success(), "{said}");
    assert!(
        said.contains(&format!("Wrote {}", file.display())),
        "{said}"
    );
    let html = std::fs::read_to_string(&file).expect("the HTML was written");
    assert!(html.contains("<html"), "{html}");
    assert!(html.contains("Payments are down"), "{html}");
    assert!(html.contains("Cash &amp; carry still works."), "{html}");

    let printed = preview_without_daemon(
        &config,
        &[
            "--title",
            "t",
            "--summary",
            "s",
            "--lang",
            "bn",
            "--html",
            "-",
        ],
    )
    .await;
    let (text, said) = out(&printed);
    assert!(printed.status.success(), "{said}");
    assert!(text.trim_start().starts_with("<!DOCTYPE html>") || text.contains("<html"));
    assert!(!text.contains("── "), "only the HTML on stdout: {text}");
}

const FOLLOW_UPS: &str = r#"
[follow_ups]

[[follow_ups.resources]]
id = "gov-aid"
url = "https://www.gov.example/assistance"
category = "government_assistance"
text = { en = { title = "Emergency assistance", description = "Payments for households." } }

[[follow_ups.plans]]
name = "default"

[[follow_ups.plans.steps]]
name = "help"
after = "2h"
template = "resources"
channels = ["email"]

[[follow_ups.plans.after_resolution]]
name = "how-did-we-do"
after = "1d"
template = "satisfaction"
channels = ["email"]
"#;

#[tokio::test]
async fn follow_ups_are_previewed_per_step_of_the_kinds_plan() {
    let (_dir, config) = config_without_daemon(FOLLOW_UPS);
    let output = preview_without_daemon(
        &config,
        &[
            "--title",
            "Payments are down",
            "--summary",
            "Card payments fail.",
            "--announcement",
            "follow_up",
            "--lang",
            "en",
        ],
    )
    .await;
    let (text, said) = out(&output);
    assert!(output.status.success(), "{said}");
    assert!(
        text.contains("follow-up resources (default, step help)"),
        "{text}"
    );
    assert!(
        text.contains("follow-up satisfaction (default, step how-did-we-do)"),
        "{text}"
    );
    assert!(
        text.contains("https://www.gov.example/assistance"),
        "{text}"
    );
    assert!(
        !text.contains("── banner"),
        "a follow-up takes no banner up"
    );

    let (_dir, bare) = config_without_daemon("");
    let refused = preview_without_daemon(
        &bare,
        &[
            "--title",
            "t",
            "--summary",
            "s",
            "--announcement",
            "follow_up",
        ],
    )
    .await;
    let (_, said) = out(&refused);
    assert_eq!(refused.status.code(), Some(2), "{said}");
    assert!(said.contains("has no step"), "{said}");
}

#[tokio::test]
async fn an_unknown_locale_is_refused_naming_those_there_are() {
    let (_dir, config) = config_without_daemon("");
    let output = preview_without_daemon(
        &config,
        &["--title", "t", "--summary", "s", "--lang", "de", "--local"],
    )
    .await;
    let (text, said) = out(&output);
    assert_eq!(output.status.code(), Some(2), "{said}");
    assert!(said.contains("(--local)"), "{said}");
    assert!(
        said.contains("no templates for the language `de`; there are: bn, en, eo"),
        "{said}"
    );
    assert!(text.is_empty(), "{text}");
}

#[tokio::test]
async fn a_short_form_too_long_for_its_channel_is_marked_unfit_with_its_measure() {
    let (_dir, config) = config_without_daemon("");
    let title = "পেমেন্ট বন্ধ ".repeat(14);
    let localized = format!("bn.title={}", title.trim());
    let output = preview_without_daemon(
        &config,
        &[
            "--title",
            "Payments are down",
            "--summary",
            "Card payments fail.",
            "--localized",
            &localized,
            "--localized",
            "de.title=Zahlungen gestört",
            "--channel",
            "sms",
        ],
    )
    .await;
    let (text, said) = out(&output);
    assert!(output.status.success(), "{said}");
    let bengali = text
        .lines()
        .find(|line| line.starts_with("── sms (sms) · bn"))
        .expect("a Bengali SMS");
    assert!(
        bengali
            .starts_with("── sms (sms) · bn · short form · SMS: UCS-2, 4 segments of 3 allowed, ")
            && bengali.ends_with("/201 · ✗ UNFIT"),
        "{bengali}"
    );
    assert!(text.contains("it would not be sent"), "{text}");
    assert!(
        text.contains("── sms (sms) · en · long form · SMS: GSM-7, "),
        "{text}"
    );
    assert!(
        said.contains("warning: text is given for `de`, which has no templates"),
        "{said}"
    );
}

#[tokio::test]
async fn the_daemon_previews_follow_ups_and_the_banner_it_used_to_refuse_or_leave_out() {
    let smtp = SmtpServer::start().await;
    let mut config = TestConfig::new(smtp.port());
    config.extra = FOLLOW_UPS.to_owned();
    let app = spawn_app(config).await;
    let crisis = json!({"kind": "outage", "severity": "major", "title": "Payments are down",
                        "summary": "Card payments fail.", "lang": "bn"});
    let mut follow_up = crisis.clone();
    follow_up["announcement"] = json!("follow_up");
    let response = app.post("/v1/preview", &follow_up).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("JSON");
    let steps: Vec<&str> = body["previews"]
        .as_array()
        .expect("previews")
        .iter()
        .filter_map(|p| p["follow_up"]["step"].as_str())
        .collect();
    assert_eq!(steps, ["help", "how-did-we-do"], "{body}");
    assert_eq!(body["banners"], json!([]));

    let body: Value = app
        .post("/v1/preview", &crisis)
        .await
        .json()
        .await
        .expect("JSON");
    let banner = &body["banners"][0];
    assert_eq!(banner["lang"], "bn");
    assert_eq!(banner["crises"][0]["title"], "Payments are down");
    assert_eq!(banner["contacts"][0]["id"], "emergency-line");
    assert!(smtp.accepted().is_empty(), "nothing was sent");
}
