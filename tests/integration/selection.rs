//! Choosing the audience and channels of a crisis through the whole
//! daemon: a declaration for some readers on some channels reaches only
//! them, on only those channels, and its updates (also after a restart)
//! and its all-clear keep the choice; a choice naming what does not exist
//! is refused and changes nothing.

use std::time::Duration;

use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::sms::{sent_sms, twilio_section};
use crate::support::{SmtpServer, TestApp, TestConfig, WAIT, spawn_app_in};

/// Two Bengali readers in different regions, one English and one
/// Esperanto reader; every reader but Ludoviko has a phone.
const AUDIENCE: &str = "id,name,email,phone,locale,timezone,region\n\
    ada,Ada Lovelace,ada@example.com,+14155550101,en,America/New_York,north\n\
    rahim,রহিম আহমেদ,rahim@example.org,+8801712345678,bn,Asia/Dhaka,sylhet\n\
    karim,করিম খান,karim@example.org,+8801712345679,bn-BD,Asia/Dhaka,dhaka\n\
    ludoviko,Ludoviko Zamenhof,ludoviko@example.net,,eo,Europe/Warsaw,\n";

struct Scene {
    smtp: SmtpServer,
    twilio: MockServer,
    discord: MockServer,
    config: TestConfig,
}

/// Email on loopback SMTP, SMS through Twilio's API and a Discord
/// webhook, both on loopback HTTP.
async fn scene() -> (Scene, tempfile::TempDir) {
    let smtp = SmtpServer::start().await;
    let twilio = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(201).set_body_json(json!({"sid": "SM1", "status": "queued"})),
        )
        .mount(&twilio)
        .await;
    let discord = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/webhooks/1/abc"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "99"})))
        .mount(&discord)
        .await;
    let dir = tempfile::tempdir().expect("temp dir");
    let discord_url = dir.path().join("discord-url");
    std::fs::write(
        &discord_url,
        format!("{}/api/webhooks/1/abc", discord.uri()),
    )
    .expect("write");
    let mut config = TestConfig::new(smtp.port());
    config.audience = AUDIENCE.to_owned();
    config.extra = format!(
        "{}\n[[channels.discord]]\nname = \"discord\"\nwebhook_url_file = \"{}\"\n",
        twilio_section(&twilio, dir.path(), 3),
        discord_url.display()
    );
    (
        Scene {
            smtp,
            twilio,
            discord,
            config,
        },
        dir,
    )
}

/// Who got mail, sorted, from the `n` first messages.
async fn mailed(smtp: &SmtpServer, n: usize) -> Vec<String> {
    let mut to: Vec<String> = smtp
        .wait_for(n, WAIT)
        .await
        .iter()
        .flat_map(|m| m.to.clone())
        .collect();
    to.sort();
    to
}

/// The crisis once its email deliveries are all sent, `sent` of them.
async fn email_sent(app: &TestApp, id: &str, sent: u64) -> Value {
    app.wait_until(id, WAIT, |d| {
        d["deliveries"]["email"]["sent"] == sent && d["deliveries"]["email"]["pending"] == 0
    })
    .await
}

fn only_email(detail: &Value) {
    let channels: Vec<&String> = detail["deliveries"]
        .as_object()
        .expect("deliveries")
        .keys()
        .collect();
    assert_eq!(channels, ["email"], "nothing planned elsewhere: {detail:#}");
}

#[tokio::test]
async fn a_declaration_for_bengali_readers_by_email_reaches_only_them_and_its_updates_and_all_clear_keep_it()
 {
    let (scene, dir) = scene().await;
    let app = spawn_app_in(scene.config.clone(), dir).await;
    let mut declaration = crate::support::declaration("Payments are down");
    declaration["audience"] = json!({"locales": ["bn"]});
    declaration["channels"] = json!(["email"]);
    let response = app.post("/v1/crises", &declaration).await;
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.expect("JSON");
    let id = body["crisis"]["id"].as_str().expect("id").to_owned();

    let detail = email_sent(&app, &id, 2).await;
    only_email(&detail);
    assert_eq!(
        (&detail["audience"], &detail["channels"]),
        (
            &json!({"locales": ["bn"], "regions": []}),
            &json!(["email"])
        ),
        "the crisis shows its selection: {detail:#}"
    );
    assert_eq!(
        mailed(&scene.smtp, 2).await,
        ["karim@example.org", "rahim@example.org"],
        "`bn` takes in `bn-BD`"
    );

    // A restart reads the selection back from the store.
    let dir = app.stop().await;
    let app = spawn_app_in(scene.config.clone(), dir).await;
    let response = app
        .post(
            &format!("/v1/crises/{id}/updates"),
            &json!({"message": "A fix is rolling out."}),
        )
        .await;
    assert_eq!(response.status(), 200);
    only_email(&email_sent(&app, &id, 4).await);
    let to = mailed(&scene.smtp, 4).await;
    assert_eq!(
        to,
        [
            "karim@example.org",
            "karim@example.org",
            "rahim@example.org",
            "rahim@example.org"
        ],
        "the update keeps the selection"
    );

    // An update may narrow it: Bengali readers in Sylhet only.
    let response = app
        .post(
            &format!("/v1/crises/{id}/updates"),
            &json!({"message": "Sylhet branches accept cash.",
                    "audience": {"locales": ["bn"], "regions": ["Sylhet"]}}),
        )
        .await;
    assert_eq!(response.status(), 200);
    email_sent(&app, &id, 5).await;
    let response = app
        .post(
            &format!("/v1/crises/{id}/resolve"),
            &json!({"message": "Payments work again."}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let detail = email_sent(&app, &id, 6).await;
    only_email(&detail);
    let mails = scene.smtp.wait_for(6, WAIT).await;
    let last_two: Vec<&String> = mails[4..].iter().flat_map(|m| &m.to).collect();
    assert_eq!(
        last_two,
        ["rahim@example.org", "rahim@example.org"],
        "the narrowed update and the all-clear went to Rahim alone"
    );
    // Nothing is on its way elsewhere either.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(scene.smtp.wait_for(6, WAIT).await.len(), 6);
    assert!(sent_sms(&scene.twilio).await.is_empty(), "no SMS");
    // The health check asks the webhook too; a post is a POST.
    let posts: Vec<String> = scene
        .discord
        .received_requests()
        .await
        .expect("recorded")
        .iter()
        .filter(|r| r.method.as_str() == "POST")
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .collect();
    assert!(posts.is_empty(), "no chat post: {posts:?}");
}

#[tokio::test]
async fn a_channel_locale_or_region_that_does_not_exist_is_refused_with_422_and_changes_nothing() {
    let (scene, dir) = scene().await;
    let app = spawn_app_in(scene.config.clone(), dir).await;
    let refusals = [
        (
            json!({"channels": ["email", "pager"]}),
            "unknown channel `pager`",
        ),
        (
            json!({"audience": {"locales": ["xx"]}}),
            "unknown locale `xx`",
        ),
        (
            json!({"audience": {"regions": ["atlantis"]}}),
            "unknown region `atlantis`",
        ),
    ];
    for (selection, expected) in &refusals {
        let mut declaration = crate::support::declaration("Payments are down");
        for (key, value) in selection.as_object().expect("object") {
            declaration[key] = value.clone();
        }
        let response = app.post("/v1/crises", &declaration).await;
        assert_eq!(response.status(), 422, "{selection}");
        let body: Value = response.json().await.expect("JSON");
        let message = body["error"]["message"].as_str().expect("message");
        assert!(message.contains(expected), "{message}");
        if expected.contains("channel") {
            assert!(
                message.contains("email, sms, discord"),
                "names the channels there are: {message}"
            );
        }
    }
    let list = app.get_json("/v1/crises").await;
    assert_eq!(list["crises"], json!([]), "nothing declared");

    let id = app.declare("Payments are down").await;
    let before = email_sent(&app, &id, 4).await;
    let response = app
        .post(
            &format!("/v1/crises/{id}/updates"),
            &json!({"message": "More news.", "channels": ["telegram"]}),
        )
        .await;
    assert_eq!(response.status(), 422);
    let after = app.get_json(&format!("/v1/crises/{id}")).await;
    assert_eq!(
        after["version"], before["version"],
        "the update changed nothing"
    );
    assert_eq!(after["channels"], json!([]));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(scene.smtp.attempts(), 4, "only the declaration's mail");
}
