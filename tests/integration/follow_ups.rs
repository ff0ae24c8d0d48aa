//! Follow-ups through the whole daemon, on a clock the tests move: due
//! times across a DST change, the all-clear cancelling them, quiet hours,
//! restarts, and the templates in every shipped language.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use crisisd::clock::ManualClock;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::sms::{MESSAGES, sent_sms, twilio_section};
use crate::support::{SmtpServer, TestApp, TestConfig, WAIT, spawn_app, spawn_app_in};

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0)
        .single()
        .expect("time")
}

/// How long to watch for something that must not happen: many scheduler
/// and dispatcher polls (20 ms and 50 ms in these configs).
const QUIET: Duration = Duration::from_millis(400);

pub const RESOURCES: &str = r#"
[[follow_ups.resources]]
id = "gov-aid"
url = "https://www.gov.example/assistance"
category = "government_assistance"
text = { en = { title = "Emergency assistance", description = "Payments for households hit by the outage." }, bn = { title = "জরুরি সরকারি সহায়তা", description = "বিভ্রাটে ক্ষতিগ্রস্ত পরিবারের জন্য অর্থসহায়তা।" } }

[[follow_ups.resources]]
id = "breathing"
url = "https://care.example/breathing"
category = "self_care"
text = { en = { title = "Two minutes of calm", description = "A short breathing exercise." }, eo = { title = "Du minutoj da trankvilo", description = "Mallonga spirekzerco." } }
"#;

fn config(smtp: &SmtpServer, clock: &Arc<ManualClock>, follow_ups: &str) -> TestConfig {
    let mut config = TestConfig::new(smtp.port());
    config.clock = Some(clock.clone());
    config.extra = format!("{RESOURCES}\n{follow_ups}");
    config
}

/// A daemon on a clock at `declared` with these follow-ups, and a crisis
/// declared then, its announcement recorded sent (before the clock moves,
/// or its leases would expire).
async fn declared_crisis(
    declared: DateTime<Utc>,
    follow_ups: &str,
) -> (SmtpServer, Arc<ManualClock>, TestApp, String) {
    let smtp = SmtpServer::start().await;
    let clock = Arc::new(ManualClock::new(declared));
    let app = spawn_app(config(&smtp, &clock, follow_ups)).await;
    let id = app.declare("Payments are down").await;
    app.wait_until(&id, WAIT, |d| d["deliveries"]["email"]["sent"] == 3)
        .await;
    (smtp, clock, app, id)
}

async fn schedule(app: &TestApp, id: &str) -> Vec<Value> {
    app.get_json(&format!("/v1/crises/{id}/follow-ups")).await["follow_ups"]
        .as_array()
        .expect("list")
        .clone()
}

fn due_times(list: &[Value]) -> Vec<DateTime<Utc>> {
    list.iter()
        .map(|f| f["due_at"].as_str().expect("due_at").parse().expect("time"))
        .collect()
}

/// Polls the schedule until the follow-up at `index` is in `state`.
async fn wait_state(app: &TestApp, id: &str, index: usize, state: &str) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let list = schedule(app, id).await;
        if list[index]["state"] == state {
            return list[index].clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "follow-up {index} never became {state}: {:#}",
            list[index]
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn an_offset_step_and_a_cron_step_go_out_at_the_expected_instants_across_a_dst_change() {
    // Saturday noon; the clocks in London go forward at 01:00 UTC on Sunday
    // 29 March 2026.
    let declared = utc(2026, 3, 28, 12, 0);
    let (smtp, clock, app, id) = declared_crisis(
        declared,
        r#"
[follow_ups]
time_zone = "Europe/London"
poll_interval = "20ms"

[[follow_ups.plans]]
name = "default"

[[follow_ups.plans.steps]]
name = "help"
after = "1d"
template = "resources"
channels = ["email"]

[[follow_ups.plans.steps]]
name = "morning"
cron = "0 9 * * *"
count = 3
template = "check_in"
channels = ["email"]
"#,
    )
    .await;

    let expected = [
        // 09:00 BST, the first morning after the change: 08:00 UTC (09:00
        // UTC the day before, which was before the declaration).
        utc(2026, 3, 29, 8, 0),
        // 24 hours after the declaration, whatever the clocks did.
        utc(2026, 3, 29, 12, 0),
        utc(2026, 3, 30, 8, 0),
        utc(2026, 3, 31, 8, 0),
    ];
    let list = schedule(&app, &id).await;
    assert_eq!(due_times(&list), expected);
    assert!(list.iter().all(|f| f["state"] == "pending"));
    assert_eq!(list[0]["due_local"], "2026-03-29 09:00 BST");

    let mut sent = 3;
    for (index, due) in expected.into_iter().enumerate() {
        clock.set(due - chrono::TimeDelta::milliseconds(1));
        tokio::time::sleep(QUIET).await;
        assert_eq!(smtp.accepted().len(), sent, "nothing before {due}");
        assert_eq!(schedule(&app, &id).await[index]["state"], "pending");

        clock.set(due);
        let entry = wait_state(&app, &id, index, "sent").await;
        assert_eq!(
            entry["settled_at"]
                .as_str()
                .unwrap()
                .parse::<DateTime<Utc>>()
                .unwrap(),
            due,
            "sent at the instant it fell due"
        );
        sent += 3;
        let received = smtp.wait_for(sent, WAIT).await;
        app.wait_until(&id, WAIT, |d| d["deliveries"]["email"]["sent"] == sent)
            .await;
        let subjects: Vec<String> = received[sent - 3..].iter().map(|m| m.subject()).collect();
        let wanted = if index == 1 {
            "Help while we fix it"
        } else {
            "How are you doing?"
        };
        assert!(
            subjects.iter().any(|s| s.starts_with(wanted)),
            "{subjects:?}"
        );
    }
    tokio::time::sleep(QUIET).await;
    assert_eq!(
        smtp.accepted().len(),
        sent,
        "the cron step stops at its count"
    );
}

#[tokio::test]
async fn the_all_clear_cancels_a_follow_up_due_in_the_same_second_and_schedules_the_satisfaction_check()
 {
    let declared = utc(2026, 11, 23, 10, 0);
    // The scheduler only runs when woken (at start and by new schedules), so
    // the due follow-up is still pending when the all-clear comes.
    let follow_ups = r#"
[follow_ups]
poll_interval = "1h"

[[follow_ups.plans]]
name = "default"

[[follow_ups.plans.steps]]
name = "help"
after = "2h"
template = "resources"

[[follow_ups.plans.after_resolution]]
name = "satisfaction"
after = "1d"
template = "satisfaction"
channels = ["email"]
"#;
    let (smtp, clock, app, id) = declared_crisis(declared, follow_ups).await;

    // Let the scheduler take the declaration's wake-up (it finds nothing
    // due yet and sleeps for the hour) before the clock moves.
    tokio::time::sleep(QUIET).await;
    let due = declared + chrono::TimeDelta::hours(2);
    clock.set(due + chrono::TimeDelta::milliseconds(400));
    let response = app
        .post(
            &format!("/v1/crises/{id}/resolve"),
            &json!({ "message": "Payments work again." }),
        )
        .await;
    assert_eq!(response.status(), 200);
    let received = smtp.wait_for(6, WAIT).await;
    tokio::time::sleep(QUIET).await;
    assert_eq!(smtp.accepted().len(), 6, "the all-clear, and no follow-up");
    assert!(
        received[3..]
            .iter()
            .all(|m| !m.subject().starts_with("Help"))
    );

    let list = schedule(&app, &id).await;
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["step"], "help");
    assert_eq!(list[0]["state"], "cancelled");
    assert_eq!(list[0]["reason"], "cancelled: the crisis was resolved");
    assert_eq!(list[1]["step"], "satisfaction");
    assert_eq!(list[1]["phase"], "after_resolution");
    assert_eq!(list[1]["state"], "pending");
    let satisfaction_due = due + chrono::TimeDelta::milliseconds(400) + chrono::TimeDelta::days(1);
    assert_eq!(due_times(&list)[1], satisfaction_due);

    // A restart a day later: the satisfaction check goes out, the cancelled
    // follow-up still does not.
    let dir = app.stop().await;
    clock.set(satisfaction_due + chrono::TimeDelta::minutes(5));
    let app = spawn_app_in(config(&smtp, &clock, follow_ups), dir).await;
    let received = smtp.wait_for(9, WAIT).await;
    assert!(
        received[6..]
            .iter()
            .all(|m| m.subject().starts_with("Is all well again?")
                || m.subject().starts_with("সব কিছু কি এখন ঠিক আছে?")
                || m.subject().starts_with("Ĉu ĉio denove en ordo?")),
        "{:?}",
        received[6..]
            .iter()
            .map(|m| m.subject())
            .collect::<Vec<_>>()
    );
    let list = schedule(&app, &id).await;
    assert_eq!(list[0]["state"], "cancelled");
    assert_eq!(list[1]["state"], "sent");
    tokio::time::sleep(QUIET).await;
    assert_eq!(smtp.accepted().len(), 9);
}

#[tokio::test]
async fn quiet_hours_hold_a_bengali_readers_sms_until_morning_in_dhaka_but_not_a_critical_one() {
    let smtp = SmtpServer::start().await;
    let twilio = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(MESSAGES))
        .respond_with(
            ResponseTemplate::new(201).set_body_json(json!({"sid": "SM1", "status": "queued"})),
        )
        .mount(&twilio)
        .await;
    // 15:30 UTC: 21:30 in Dhaka, 10:30 in New York.
    let declared = utc(2026, 11, 23, 15, 30);
    let clock = Arc::new(ManualClock::new(declared));
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = config(
        &smtp,
        &clock,
        r#"
[follow_ups]
poll_interval = "20ms"

[follow_ups.quiet_hours]
start = "21:00"
end = "08:00"

[[follow_ups.plans]]
name = "default"

[[follow_ups.plans.steps]]
name = "check-in"
after = "1h"
template = "check_in"
channels = ["sms"]
"#,
    );
    config.extra = format!(
        "{}\n{}",
        twilio_section(&twilio, dir.path(), 3),
        config.extra
    );
    let app = spawn_app_in(config, dir).await;
    let to_dhaka =
        |sent: &[(String, String)]| sent.iter().filter(|(to, _)| to == "+8801712345678").count();

    // The declaration itself is never held: both readers get it at night.
    let id = app.declare("Payments are down").await;
    app.wait_until(&id, WAIT, |d| {
        d["deliveries"]["sms"]["sent"] == 2 && d["deliveries"]["email"]["sent"] == 3
    })
    .await;

    // 16:30 UTC, 22:30 in Dhaka: the New York reader gets the check-in.
    clock.set(utc(2026, 11, 23, 16, 30));
    wait_state(&app, &id, 0, "sent").await;
    app.wait_until(&id, WAIT, |d| d["deliveries"]["sms"]["sent"] == 3)
        .await;
    let sent = sent_sms(&twilio).await;
    assert_eq!(to_dhaka(&sent), 1, "the Dhaka reader's check-in waits");

    // 07:59:59 in Dhaka: still waiting.
    clock.set(utc(2026, 11, 24, 2, 0) - chrono::TimeDelta::seconds(1));
    tokio::time::sleep(QUIET).await;
    assert_eq!(to_dhaka(&sent_sms(&twilio).await), 1);
    let detail = app.get_json(&format!("/v1/crises/{id}")).await;
    assert_eq!(detail["deliveries"]["sms"]["pending"], 1);

    // 08:00 in Dhaka: it goes, in Bengali.
    clock.set(utc(2026, 11, 24, 2, 0));
    app.wait_until(&id, WAIT, |d| d["deliveries"]["sms"]["sent"] == 4)
        .await;
    let sent = sent_sms(&twilio).await;
    let (_, body) = sent
        .iter()
        .filter(|(to, _)| to == "+8801712345678")
        .nth(1)
        .expect("the held check-in");
    assert!(body.contains("আপনি কেমন আছেন?"), "{body}");

    // A critical crisis's follow-up at 22:30 in Dhaka is not held.
    clock.set(utc(2026, 11, 24, 15, 30));
    let response = app
        .post(
            "/v1/crises",
            &json!({
                "kind": "natural_disaster",
                "severity": "critical",
                "title": "Flooding",
                "summary": "Shops in the delta are closed.",
            }),
        )
        .await;
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    let critical = body["crisis"]["id"].as_str().unwrap().to_owned();
    app.wait_until(&critical, WAIT, |d| {
        d["deliveries"]["sms"]["sent"] == 2 && d["deliveries"]["email"]["sent"] == 3
    })
    .await;
    clock.set(utc(2026, 11, 24, 16, 30));
    app.wait_until(&critical, WAIT, |d| d["deliveries"]["sms"]["sent"] == 4)
        .await;
    assert_eq!(to_dhaka(&sent_sms(&twilio).await), 4);
}

#[tokio::test]
async fn after_a_restart_a_follow_up_overdue_within_the_lateness_is_sent_once_and_one_beyond_it_is_skipped()
 {
    let declared = utc(2026, 11, 23, 9, 0);
    let follow_ups = r#"
[follow_ups]
poll_interval = "20ms"
max_lateness = "30m"

[[follow_ups.plans]]
name = "default"

[[follow_ups.plans.steps]]
name = "early"
after = "1h"
template = "self_care"
channels = ["email"]

[[follow_ups.plans.steps]]
name = "late"
after = "2h"
template = "status_recap"
channels = ["email"]
"#;
    let (smtp, clock, app, id) = declared_crisis(declared, follow_ups).await;
    let dir = app.stop().await;

    // Down for 2 h 10 min: "early" is 70 min overdue, "late" 10 min.
    clock.set(declared + chrono::TimeDelta::minutes(130));
    let app = spawn_app_in(config(&smtp, &clock, follow_ups), dir).await;
    wait_state(&app, &id, 1, "sent").await;
    let received = smtp.wait_for(6, WAIT).await;
    assert!(
        received[3..]
            .iter()
            .any(|m| m.subject().starts_with("Where things stand")),
        "{:?}",
        received.iter().map(|m| m.subject()).collect::<Vec<_>>()
    );
    let list = schedule(&app, &id).await;
    assert_eq!(list[0]["step"], "early");
    assert_eq!(list[0]["state"], "skipped");
    let reason = list[0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("1h 10m") && reason.contains("max_lateness 30m"),
        "{reason}"
    );

    // Another restart sends nothing again.
    let dir = app.stop().await;
    clock.set(declared + chrono::TimeDelta::minutes(140));
    let app = spawn_app_in(config(&smtp, &clock, follow_ups), dir).await;
    tokio::time::sleep(QUIET).await;
    assert_eq!(smtp.accepted().len(), 6);
    let list = schedule(&app, &id).await;
    assert_eq!(list[0]["state"], "skipped");
    assert_eq!(list[1]["state"], "sent");
    let all = app.get_json("/v1/follow-ups?tz=Asia/Dhaka").await;
    assert_eq!(all["time_zone"], "Asia/Dhaka");
    assert_eq!(all["follow_ups"][1]["due_local"], "2026-11-23 17:00 +06");
}

mod templates {
    use crisisd::domain::follow_up::ResourcesFile;
    use crisisd::domain::follow_up::{FollowUpSpec, Library, Phase, Topic};
    use crisisd::domain::{AnnouncementKind, Kind};
    use crisisd::message::{Form, TextFamily};
    use crisisd::render::{CompanyView, RenderContext, Renderer};

    use crate::support::app::templates_dir;

    fn library() -> Library {
        let text = super::RESOURCES.replace("[[follow_ups.resources]]", "[[resources]]");
        let file: ResourcesFile = toml::from_str(&text).unwrap();
        let locales = ["bn", "en", "eo"].map(str::to_owned);
        Library::build(file.resources, "en", &locales).unwrap()
    }

    fn context(
        renderer: &Renderer,
        library: &Library,
        locale: &str,
        topic: Topic,
    ) -> RenderContext {
        let crisis = crate::store::declared();
        let now = crisis.declared_at;
        let locale = renderer.resolve_locale(locale).to_owned();
        let mut ctx = RenderContext::new(
            &locale,
            CompanyView {
                name: "Test Co.".into(),
                status_url: "https://status.example.com".into(),
            },
            &crisis,
            AnnouncementKind::FollowUp,
            Some(("Reader", chrono_tz::Tz::Asia__Dhaka)),
            Vec::new(),
            now,
        );
        let spec = FollowUpSpec {
            plan: "default".into(),
            step: "help".into(),
            phase: Phase::Active,
            topic,
            categories: Vec::new(),
            channels: Vec::new(),
            locales: Vec::new(),
            regions: Vec::new(),
            local_at: None,
        };
        ctx.follow_up = Some(library.follow_up_view(&spec, Kind::Outage, &locale, None));
        ctx
    }

    #[test]
    fn every_follow_up_template_renders_in_en_bn_and_eo_with_that_languages_resources() {
        let renderer = Renderer::load(&templates_dir(), "en").unwrap();
        let library = library();
        for locale in ["en", "bn", "eo"] {
            for topic in Topic::ALL {
                let ctx = context(&renderer, &library, locale, *topic);
                renderer.render_email(&ctx).unwrap();
                for family in TextFamily::ALL {
                    for form in [Form::Long, Form::Short] {
                        let text = renderer.render_text(family, form, &ctx).unwrap();
                        assert!(text.contains("https://status.example.com"), "{text}");
                    }
                }
            }
        }

        let email = |locale| {
            renderer
                .render_email(&context(&renderer, &library, locale, Topic::Resources))
                .unwrap()
        };
        let en = email("en");
        assert!(
            en.subject
                .starts_with("Help while we fix it: Payments are down")
        );
        assert!(en.text.contains("GOVERNMENT ASSISTANCE"), "{}", en.text);
        assert!(
            en.text
                .contains("Emergency assistance: Payments for households")
        );
        assert!(en.text.contains("https://www.gov.example/assistance"));
        assert!(en.html.contains("Two minutes of calm</a>"), "{}", en.html);

        let bn = email("bn");
        assert!(
            bn.subject.starts_with("সমাধান না হওয়া পর্যন্ত সহায়তা"),
            "{}",
            bn.subject
        );
        assert!(bn.text.contains("জরুরি সরকারি সহায়তা: বিভ্রাটে"), "{}", bn.text);
        assert!(bn.text.contains("প্রিয় Reader,"));
        // No Bengali text for this one: the English text stands in.
        assert!(bn.text.contains("Two minutes of calm"), "{}", bn.text);

        let eo = email("eo");
        assert!(
            eo.subject.starts_with("Helpo dum ni riparas"),
            "{}",
            eo.subject
        );
        assert!(
            eo.text
                .contains("Du minutoj da trankvilo: Mallonga spirekzerco.")
        );
        assert!(eo.text.contains("Emergency assistance"), "{}", eo.text);

        // A self-care follow-up lists self-care resources only.
        let ctx = context(&renderer, &library, "eo", Topic::SelfCare);
        let sms = renderer
            .render_text(TextFamily::Sms, Form::Long, &ctx)
            .unwrap();
        assert!(sms.starts_with("Zorgu pri vi: Payments are down"), "{sms}");
        assert!(sms.contains("Du minutoj da trankvilo: https://care.example/breathing"));
        assert!(!sms.contains("gov.example"), "{sms}");
    }

    #[test]
    fn a_language_without_a_follow_up_template_falls_back_to_the_default_one() {
        let dir = tempfile::tempdir().unwrap();
        crate::support::copy_dir(&templates_dir(), dir.path());
        for name in ["follow_up.j2", "follow_up.short.j2"] {
            std::fs::remove_file(dir.path().join("eo/sms").join(name)).unwrap();
        }
        let renderer = Renderer::load(dir.path(), "en").unwrap();
        let library = library();

        let ctx = context(&renderer, &library, "eo", Topic::Resources);
        let sms = renderer
            .render_text(TextFamily::Sms, Form::Long, &ctx)
            .unwrap();
        // The English template, still with the reader's resources in
        // Esperanto where they have it.
        assert!(sms.starts_with("Help while we fix it"), "{sms}");
        assert!(sms.contains("Du minutoj da trankvilo"), "{sms}");
        // The Esperanto email is still Esperanto.
        let email = renderer.render_email(&ctx).unwrap();
        assert!(email.subject.starts_with("Helpo dum ni riparas"));

        // A language with no templates at all reads the default's.
        let ctx = context(&renderer, &library, "fr", Topic::CheckIn);
        let email = renderer.render_email(&ctx).unwrap();
        assert!(
            email.subject.starts_with("How are you doing?"),
            "{}",
            email.subject
        );
    }
}

#[test]
fn check_config_names_every_bad_resource_and_step() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = TestConfig::new(2525);
    config.extra = r#"
[[follow_ups.resources]]
id = "gov"
url = "ftp://files.example/aid"
category = "government_assistance"
text = { bn = { title = "সরকারি সাহায্য", description = "সহায়তা" } }
"#
    .into();
    let text = config.write(dir.path());
    let path = dir.path().join("crisisd.toml");
    let settings = crisisd::config::Settings::parse(&path, &text).unwrap();
    let Err(crisisd::app::StartupError::Invalid(problems)) = crisisd::app::prepare(settings) else {
        panic!("the config must be refused");
    };
    let all = problems.join("\n");
    for expected in [
        "follow_ups.resources `gov`: `ftp://files.example/aid` must be an http(s) URL",
        "follow_ups.resources `gov`: no text in the default locale `en`, the fallback for readers in en, eo",
    ] {
        assert!(all.contains(expected), "missing `{expected}` in:\n{all}");
    }
    // The resource problems stop there; the plans are checked with a
    // valid library.
    let mut config = TestConfig::new(2525);
    std::fs::write(dir.path().join("twilio-token"), "token").unwrap();
    // One UCS-2 segment (70 characters) cannot hold a Bengali follow-up.
    config.extra = format!(
        "[[channels.twilio]]\nname = \"sms\"\naccount_sid = \"AC0123456789abcdef0123456789abcdef\"\n\
         auth_token_file = \"{}\"\nfrom = \"+15005550006\"\nbase_url = \"http://127.0.0.1:9\"\n\
         max_segments = 1\n\n",
        dir.path().join("twilio-token").display()
    ) + "[[follow_ups.plans]]\nname = \"default\"\n"
        + r#"
[[follow_ups.plans.steps]]
name = "daily"
cron = "0 0 9 * * *"
template = "check_in"

[[follow_ups.plans.steps]]
name = "pager"
after = "1h"
template = "resources"
channels = ["pager"]

[[follow_ups.plans.steps]]
name = "every-minute"
cron = "* * * * *"
template = "self_care"

[[follow_ups.plans]]
name = "second-default"
"#;
    let text = config.write(dir.path());
    let settings = crisisd::config::Settings::parse(&path, &text).unwrap();
    let Err(crisisd::app::StartupError::Invalid(problems)) = crisisd::app::prepare(settings) else {
        panic!("the config must be refused");
    };
    let all = problems.join("\n");
    for expected in [
        "follow_ups.plans `default` step `daily`: `0 0 9 * * *` must have five fields",
        "follow_ups.plans `default` step `pager`: no channel is named `pager`",
        "follow_ups.plans `default` step `every-minute`: the schedule would send more than 500 messages",
        "follow_ups.plans: more than one plan without `kinds`",
    ] {
        assert!(all.contains(expected), "missing `{expected}` in:\n{all}");
    }
    // With the steps fixed, the messages are measured.
    let mut config = TestConfig::new(2525);
    config.extra = format!(
        "[[channels.twilio]]\nname = \"sms\"\naccount_sid = \"AC0123456789abcdef0123456789abcdef\"\n\
         auth_token_file = \"{}\"\nfrom = \"+15005550006\"\nbase_url = \"http://127.0.0.1:9\"\n\
         max_segments = 1\n\n[[follow_ups.plans]]\nname = \"default\"\n\n\
         [[follow_ups.plans.steps]]\nname = \"check\"\nafter = \"1h\"\ntemplate = \"check_in\"\n",
        dir.path().join("twilio-token").display()
    );
    let text = config.write(dir.path());
    let settings = crisisd::config::Settings::parse(&path, &text).unwrap();
    let Err(crisisd::app::StartupError::Invalid(problems)) = crisisd::app::prepare(settings) else {
        panic!("the config must be refused");
    };
    let all = problems.join("\n");
    for expected in [
        "channel `sms`: the bn check_in follow-up does not fit even in its short form",
        "templates/bn/sms/follow_up.short.j2",
    ] {
        assert!(all.contains(expected), "missing `{expected}` in:\n{all}");
    }
}

#[tokio::test]
async fn a_new_kind_replaces_the_plan_and_crisisd_schedule_lists_it_in_the_operators_zone() {
    let declared = utc(2026, 11, 23, 9, 0);
    let (_smtp, clock, app, id) = declared_crisis(
        declared,
        r#"
[follow_ups]
time_zone = "Europe/London"
poll_interval = "20ms"

[[follow_ups.plans]]
name = "default"

[[follow_ups.plans.steps]]
name = "help"
after = "2h"
template = "resources"

[[follow_ups.plans]]
name = "disaster"
kinds = ["natural_disaster"]

[[follow_ups.plans.steps]]
name = "early"
after = "10m"
template = "self_care"

[[follow_ups.plans.steps]]
name = "shelter"
after = "3h"
template = "resources"
categories = ["community_groups"]

[[follow_ups.plans.steps]]
name = "evening"
cron = "0 18 * * *"
count = 2
template = "check_in"
"#,
    )
    .await;
    assert_eq!(
        due_times(&schedule(&app, &id).await),
        [utc(2026, 11, 23, 11, 0)]
    );

    clock.set(declared + chrono::TimeDelta::minutes(30));
    let response = app
        .post(
            &format!("/v1/crises/{id}/updates"),
            &json!({ "kind": "natural_disaster", "message": "The storm cut the lines." }),
        )
        .await;
    assert_eq!(response.status(), 200);
    let list = schedule(&app, &id).await;
    let steps: Vec<(&str, &str)> = list
        .iter()
        .map(|f| (f["step"].as_str().unwrap(), f["state"].as_str().unwrap()))
        .collect();
    // "early" fell due before the change: the new plan does not send it late.
    assert_eq!(
        steps,
        [
            ("help", "cancelled"),
            ("shelter", "pending"),
            ("evening", "pending"),
            ("evening", "pending"),
        ]
    );
    assert!(
        list[0]["reason"]
            .as_str()
            .unwrap()
            .contains("kind changed from outage to natural_disaster"),
        "{}",
        list[0]["reason"]
    );
    assert_eq!(
        due_times(&list)[1..],
        [
            utc(2026, 11, 23, 12, 0),
            utc(2026, 11, 23, 18, 0),
            utc(2026, 11, 24, 18, 0)
        ]
    );

    let output = crate::cli::crisisd(&app, &["schedule", &id, "--tz", "Asia/Dhaka"]).await;
    assert!(output.status.success(), "{}", crate::cli::stderr(&output));
    let table = crate::cli::stdout(&output);
    assert!(table.starts_with("DUE (Asia/Dhaka)"), "{table}");
    assert!(
        table.contains("2026-11-23 17:00 +06  cancelled  help"),
        "{table}"
    );
    assert!(
        table.contains("2026-11-24 00:00 +06  pending    evening"),
        "{table}"
    );
    assert!(
        table.contains("2026-11-25 00:00 +06  pending    evening #2"),
        "{table}"
    );
    let detail = app.get_json(&format!("/v1/crises/{id}")).await;
    assert_eq!(
        detail["follow_ups"],
        json!({"pending": 3, "sent": 0, "cancelled": 1, "skipped": 0,
               "next_due": "2026-11-23T12:00:00Z"})
    );
    let status = crate::cli::crisisd(&app, &["status", &id]).await;
    assert!(
        crate::cli::stdout(&status).contains(
            "Follow-ups: 3 pending (next 2026-11-23 12:00 UTC), 0 sent, 1 cancelled, 0 skipped"
        ),
        "{}",
        crate::cli::stdout(&status)
    );
    let bad = crate::cli::crisisd(&app, &["schedule", &id, "--tz", "Mars/Olympus"]).await;
    assert_eq!(bad.status.code(), Some(2));
}

#[tokio::test]
async fn a_plan_changed_in_the_config_replaces_the_follow_ups_still_to_come_at_the_next_start() {
    let declared = utc(2026, 11, 23, 9, 0);
    let plan = |after: &str, extra: &str| {
        format!(
            "[follow_ups]\npoll_interval = \"20ms\"\n\n[[follow_ups.plans]]\nname = \"default\"\n\n\
             [[follow_ups.plans.steps]]\nname = \"help\"\nafter = \"{after}\"\ntemplate = \"resources\"\n{extra}"
        )
    };
    let first = plan("2h", "");
    let (smtp, clock, app, id) = declared_crisis(declared, &first).await;
    let dir = app.stop().await;

    clock.set(declared + chrono::TimeDelta::hours(1));
    let second = plan(
        "3h",
        "\n[[follow_ups.plans.steps]]\nname = \"recap\"\nafter = \"5h\"\ntemplate = \"status_recap\"\n",
    );
    let app = spawn_app_in(config(&smtp, &clock, &second), dir).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    let list = loop {
        let list = schedule(&app, &id).await;
        if list.len() == 3 {
            break list;
        }
        assert!(tokio::time::Instant::now() < deadline, "{list:#?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let rows: Vec<(&str, &str, DateTime<Utc>)> = list
        .iter()
        .map(|f| {
            (
                f["step"].as_str().unwrap(),
                f["state"].as_str().unwrap(),
                f["due_at"].as_str().unwrap().parse().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("help", "cancelled", utc(2026, 11, 23, 11, 0)),
            ("help", "pending", utc(2026, 11, 23, 12, 0)),
            ("recap", "pending", utc(2026, 11, 23, 14, 0)),
        ]
    );
    assert_eq!(list[0]["reason"], "cancelled: the follow-up plan changed");

    // The same plan at the next start changes nothing.
    let dir = app.stop().await;
    let app = spawn_app_in(config(&smtp, &clock, &second), dir).await;
    tokio::time::sleep(QUIET).await;
    assert_eq!(schedule(&app, &id).await, list);
}

#[tokio::test]
async fn a_step_for_one_language_reaches_only_its_readers() {
    let declared = utc(2026, 11, 23, 9, 0);
    let (smtp, clock, app, id) = declared_crisis(
        declared,
        r#"
[follow_ups]
poll_interval = "20ms"

[[follow_ups.plans]]
name = "default"

[[follow_ups.plans.steps]]
name = "bengali-help"
after = "1h"
template = "resources"
locales = ["bn"]
"#,
    )
    .await;
    clock.set(declared + chrono::TimeDelta::hours(1));
    wait_state(&app, &id, 0, "sent").await;
    let received = smtp.wait_for(4, WAIT).await;
    let follow_up = &received[3];
    assert_eq!(follow_up.to, ["rahim@example.org"]);
    assert!(
        follow_up.subject().starts_with("সমাধান না হওয়া পর্যন্ত সহায়তা"),
        "{}",
        follow_up.subject()
    );
    assert!(
        follow_up.text().contains("জরুরি সরকারি সহায়তা"),
        "{}",
        follow_up.text()
    );
    tokio::time::sleep(QUIET).await;
    assert_eq!(smtp.accepted().len(), 4);
}

/// Finding 7: a reader-local step (`at = "09:00"`) reaches each reader at
/// 09:00 in the reader's own zone: Dhaka first, then Warsaw, then New York,
/// each held (like quiet hours) until then.
#[tokio::test]
async fn a_reader_local_morning_recap_reaches_each_reader_at_nine_in_their_own_zone() {
    // Monday 00:00 UTC; the step is due an hour later, at 01:00 UTC:
    // 07:00 in Dhaka, 02:00 in Warsaw, 20:00 (Sunday) in New York.
    let declared = utc(2026, 11, 23, 0, 0);
    let (smtp, clock, app, id) = declared_crisis(
        declared,
        r#"
[follow_ups]
poll_interval = "20ms"

[[follow_ups.plans]]
name = "default"

[[follow_ups.plans.steps]]
name = "morning-recap"
after = "1h"
at = "09:00"
template = "status_recap"
channels = ["email"]
"#,
    )
    .await;
    let recaps = |smtp: &SmtpServer| -> Vec<String> {
        let mut to: Vec<String> = smtp
            .accepted()
            .iter()
            .skip(3)
            .flat_map(|m| m.to.clone())
            .collect();
        to.sort();
        to
    };
    clock.set(utc(2026, 11, 23, 1, 0));
    wait_state(&app, &id, 0, "sent").await;
    tokio::time::sleep(QUIET).await;
    assert_eq!(
        recaps(&smtp),
        Vec::<String>::new(),
        "07:00 in Dhaka is too early for anyone"
    );
    let detail = app.get_json(&format!("/v1/crises/{id}")).await;
    assert_eq!(detail["deliveries"]["email"]["pending"], 3, "{detail:#}");

    // 08:59:59 in Dhaka: still held; 09:00 there (03:00 UTC): the Dhaka reader.
    clock.set(utc(2026, 11, 23, 3, 0) - chrono::TimeDelta::seconds(1));
    tokio::time::sleep(QUIET).await;
    assert!(recaps(&smtp).is_empty());
    for (at, readers) in [
        (utc(2026, 11, 23, 3, 0), vec!["rahim@example.org"]),
        // 09:00 in Warsaw (UTC+1).
        (
            utc(2026, 11, 23, 8, 0),
            vec!["ludoviko@example.net", "rahim@example.org"],
        ),
        // 09:00 in New York (UTC-5).
        (
            utc(2026, 11, 23, 14, 0),
            vec![
                "ada@example.com",
                "ludoviko@example.net",
                "rahim@example.org",
            ],
        ),
    ] {
        clock.set(at);
        smtp.wait_for(3 + readers.len(), WAIT).await;
        tokio::time::sleep(QUIET).await;
        assert_eq!(recaps(&smtp), readers, "at {at}");
        clock.set(at + chrono::TimeDelta::hours(4) - chrono::TimeDelta::seconds(1));
        tokio::time::sleep(QUIET).await;
        assert_eq!(recaps(&smtp), readers, "nobody else before their 09:00");
    }
}
