//! Composing in the console: preview, confirmation, send through the
//! service as `console:NAME`, and the two-person rule with its refusals.

use reqwest::StatusCode;

use super::{Browser, PASSWORD, with_accounts};
use crate::support::{SmtpServer, TestApp, TestConfig, WAIT, spawn_app};

/// A declaration's form fields, in English and Bengali.
fn declaration<'a>(csrf: &'a str, severity: &'a str, summary: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("csrf", csrf),
        ("action", "declare"),
        ("kind", "outage"),
        ("severity", severity),
        ("title", "Payments are down"),
        ("summary", summary),
        ("title.bn", "পেমেন্ট বন্ধ"),
        ("summary.bn", "কার্ড পেমেন্ট কাজ করছে না।"),
        ("message", ""),
    ]
}

fn with<'a>(
    mut fields: Vec<(&'a str, &'a str)>,
    more: &[(&'a str, &'a str)],
) -> Vec<(&'a str, &'a str)> {
    fields.extend_from_slice(more);
    fields
}

async fn crisis_id(location: &str) -> String {
    location
        .strip_prefix("/console/crises/")
        .unwrap_or_else(|| panic!("sent to a crisis page: {location}"))
        .to_owned()
}

async fn actors(app: &TestApp, id: &str) -> Vec<String> {
    let crisis = app.get_json(&format!("/v1/crises/{id}")).await;
    crisis["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| {
            format!(
                "{}:{}",
                e["actor"]["source"].as_str().unwrap_or_default(),
                e["actor"]["name"].as_str().unwrap_or_default()
            )
        })
        .collect()
}

#[tokio::test]
async fn an_author_previews_confirms_and_sends_as_themselves() {
    let smtp = SmtpServer::start().await;
    let app = spawn_app(TestConfig::new(smtp.port())).await;
    with_accounts(&app).await;
    let mut author = Browser::signed_in(&app, "author", PASSWORD).await;
    let form = author.get("/console/compose").await;
    assert_eq!(form.status, StatusCode::OK, "{}", form.body);
    assert!(
        form.body.contains("name=\"title.bn\""),
        "every locale side by side: {}",
        form.body
    );
    let csrf = form.csrf();
    let summary = "Card payments fail; cash works.";

    let preview = author
        .post(
            "/console/compose",
            &with(declaration(&csrf, "major", summary), &[("step", "preview")]),
        )
        .await;
    assert_eq!(preview.status, StatusCode::OK, "{}", preview.body);
    assert!(
        preview.body.contains("<iframe class=\"email\""),
        "the email as read: {}",
        preview.body
    );
    assert!(preview.body.contains("পেমেন্ট বন্ধ"), "the Bengali email");
    assert_eq!(smtp.accepted().len(), 0, "a preview sends nothing");

    let confirm = author
        .post(
            "/console/compose",
            &with(declaration(&csrf, "major", summary), &[("step", "confirm")]),
        )
        .await;
    assert_eq!(confirm.status, StatusCode::OK, "{}", confirm.body);
    assert!(confirm.body.contains("LIVE"), "{}", confirm.body);
    assert!(
        confirm.body.contains("data-total=\"3\""),
        "three readers by email: {}",
        confirm.body
    );
    assert!(
        confirm.body.contains("bn: 1"),
        "counted by language: {}",
        confirm.body
    );
    assert!(
        confirm.body.contains("value=\"send\""),
        "no second person for major"
    );
    let hash = confirm.field("hash");
    let key = confirm.field("send_key");

    // What is sent must be what was confirmed.
    let edited = author
        .post(
            "/console/compose",
            &with(
                declaration(&csrf, "major", "Something else."),
                &[("step", "send"), ("hash", &hash), ("send_key", &key)],
            ),
        )
        .await;
    assert_eq!(edited.status, StatusCode::CONFLICT, "{}", edited.body);
    assert_eq!(smtp.accepted().len(), 0);

    let sent = author
        .post(
            "/console/compose",
            &with(
                declaration(&csrf, "major", summary),
                &[("step", "send"), ("hash", &hash), ("send_key", &key)],
            ),
        )
        .await;
    assert_eq!(sent.status, StatusCode::SEE_OTHER, "{}", sent.body);
    let id = crisis_id(sent.location()).await;
    smtp.wait_for(3, WAIT).await;
    assert_eq!(actors(&app, &id).await, ["console:author"]);

    // A second click on the same confirmation sends nothing more.
    let again = author
        .post(
            "/console/compose",
            &with(
                declaration(&csrf, "major", summary),
                &[("step", "send"), ("hash", &hash), ("send_key", &key)],
            ),
        )
        .await;
    assert_eq!(again.status, StatusCode::SEE_OTHER, "{}", again.body);
    assert_eq!(crisis_id(again.location()).await, id);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(smtp.accepted().len(), 3, "replayed, not sent twice");
    let page = author.get(&format!("/console/crises/{id}")).await;
    assert!(
        page.body.contains("console:author"),
        "the audit trail names the person"
    );
}

#[tokio::test]
async fn a_critical_declaration_needs_another_persons_approval_of_its_exact_text() {
    let smtp = SmtpServer::start().await;
    let app = spawn_app(TestConfig::new(smtp.port())).await;
    with_accounts(&app).await;
    let mut author = Browser::signed_in(&app, "author", PASSWORD).await;
    let csrf = author.get("/console/compose").await.csrf();
    let summary = "Card payments fail.";
    let confirm = author
        .post(
            "/console/compose",
            &with(
                declaration(&csrf, "critical", summary),
                &[("step", "confirm")],
            ),
        )
        .await;
    assert!(
        confirm.body.contains("value=\"submit\""),
        "{}",
        confirm.body
    );
    let hash = confirm.field("hash");
    let refused = author
        .post(
            "/console/compose",
            &with(
                declaration(&csrf, "critical", summary),
                &[("step", "send"), ("hash", &hash), ("send_key", "k")],
            ),
        )
        .await;
    assert_eq!(
        refused.status,
        StatusCode::FORBIDDEN,
        "no sending critical alone"
    );
    assert!(refused.body.contains("second person"), "{}", refused.body);

    let submitted = author
        .post(
            "/console/compose",
            &with(
                declaration(&csrf, "critical", summary),
                &[("step", "submit")],
            ),
        )
        .await;
    assert_eq!(
        submitted.status,
        StatusCode::SEE_OTHER,
        "{}",
        submitted.body
    );
    let submission = submitted.location().to_owned();
    assert!(
        submission.starts_with("/console/submissions/"),
        "{submission}"
    );

    // The author cannot approve it, not even as an approver would.
    let own = author.get(&submission).await;
    assert!(
        !own.body.contains("/approve\""),
        "no approve form for the author: {}",
        own.body
    );
    let own_approval = author
        .post(
            &format!("{submission}/approve"),
            &[("csrf", &csrf), ("hash", &hash), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(own_approval.status, StatusCode::FORBIDDEN);
    let mut admin = Browser::signed_in(&app, "admin", PASSWORD).await;
    let admin_csrf = admin.get("/console").await.csrf();
    let mut approver = Browser::signed_in(&app, "approver", PASSWORD).await;
    let approver_csrf = approver.get("/console").await.csrf();
    assert!(
        approver.get("/console").await.body.contains(&submission),
        "waiting on the dashboard"
    );

    let wrong = approver
        .post(
            &format!("{submission}/approve"),
            &[
                ("csrf", &approver_csrf),
                ("hash", &hash),
                ("password", "not my password"),
            ],
        )
        .await;
    assert_eq!(
        wrong.status,
        StatusCode::UNAUTHORIZED,
        "the password is re-entered"
    );
    let approved = approver
        .post(
            &format!("{submission}/approve"),
            &[
                ("csrf", &approver_csrf),
                ("hash", &hash),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(approved.status, StatusCode::SEE_OTHER, "{}", approved.body);
    assert!(
        author
            .get(&submission)
            .await
            .body
            .contains("data-state=\"approved\"")
    );

    // An edit after the approval voids it.
    let id = submission.trim_start_matches("/console/submissions/");
    let edited_summary = "Card payments fail; cash works.";
    let revised = author
        .post(
            "/console/compose",
            &with(
                declaration(&csrf, "critical", edited_summary),
                &[("step", "submit"), ("submission", id)],
            ),
        )
        .await;
    assert_eq!(revised.status, StatusCode::SEE_OTHER, "{}", revised.body);
    let stale = author
        .post(
            &format!("{submission}/send"),
            &[("csrf", &csrf), ("hash", &hash)],
        )
        .await;
    assert_eq!(stale.status, StatusCode::FORBIDDEN, "{}", stale.body);
    let page = author.get(&submission).await;
    assert!(
        page.body.contains("data-state=\"submitted\""),
        "{}",
        page.body
    );
    assert!(page.body.contains(edited_summary), "{}", page.body);
    let new_hash = admin.get(&submission).await.field("hash");
    assert_ne!(new_hash, hash);
    assert_eq!(
        smtp.accepted().len(),
        0,
        "nothing sent before a new approval"
    );

    let approved = admin
        .post(
            &format!("{submission}/approve"),
            &[
                ("csrf", &admin_csrf),
                ("hash", &new_hash),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(approved.status, StatusCode::SEE_OTHER, "{}", approved.body);
    let sent = author
        .post(
            &format!("{submission}/send"),
            &[("csrf", &csrf), ("hash", &new_hash)],
        )
        .await;
    assert_eq!(sent.status, StatusCode::SEE_OTHER, "{}", sent.body);
    let crisis = crisis_id(sent.location()).await;
    let mails = smtp.wait_for(3, WAIT).await;
    assert!(
        mails.iter().any(|m| m.text().contains("cash works")),
        "the approved edit went out"
    );
    assert_eq!(actors(&app, &crisis).await, ["console:author"]);
    let twice = author
        .post(
            &format!("{submission}/send"),
            &[("csrf", &csrf), ("hash", &new_hash)],
        )
        .await;
    assert_eq!(twice.status, StatusCode::FORBIDDEN, "sent once");
}

#[tokio::test]
async fn a_viewer_cannot_compose_or_send_and_a_form_needs_its_csrf_token() {
    let smtp = SmtpServer::start().await;
    let app = spawn_app(TestConfig::new(smtp.port())).await;
    with_accounts(&app).await;
    let mut viewer = Browser::signed_in(&app, "viewer", PASSWORD).await;
    assert_eq!(
        viewer.get("/console/compose").await.status,
        StatusCode::FORBIDDEN
    );
    let csrf = viewer.get("/console").await.csrf();
    let sent = viewer
        .post(
            "/console/compose",
            &with(
                declaration(&csrf, "minor", "x"),
                &[("step", "send"), ("hash", "h"), ("send_key", "k")],
            ),
        )
        .await;
    assert_eq!(sent.status, StatusCode::FORBIDDEN);
    assert!(sent.body.contains("role does not allow"), "{}", sent.body);

    let mut author = Browser::signed_in(&app, "author", PASSWORD).await;
    let forged = author
        .post(
            "/console/compose",
            &with(declaration("forged", "minor", "x"), &[("step", "submit")]),
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert!(forged.body.contains("expired"), "{}", forged.body);
    let waiting = author.get("/console").await;
    assert!(
        waiting.body.contains("Nothing is waiting"),
        "nothing was submitted"
    );
    assert_eq!(smtp.accepted().len(), 0);
}

#[tokio::test]
async fn a_prepared_text_starts_a_declaration_and_the_all_clear_starts_from_the_crisis() {
    let smtp = SmtpServer::start().await;
    let mut config = TestConfig::new(smtp.port());
    config.extra = "[[console.templates]]\nkind = \"outage\"\nlabel = \"Payments outage\"\n\
        title = \"Payments are down\"\nsummary = \"Card payments fail.\"\n\
        [console.templates.localized.bn]\ntitle = \"পেমেন্ট বন্ধ\"\nsummary = \"কার্ড পেমেন্ট কাজ করছে না।\"\n"
        .into();
    let app = spawn_app(config).await;
    with_accounts(&app).await;
    let mut author = Browser::signed_in(&app, "author", PASSWORD).await;
    let form = author.get("/console/compose").await;
    assert!(
        form.body
            .contains("href=\"/console/compose?template=0\">Payments outage"),
        "{}",
        form.body
    );
    let prefilled = author.get("/console/compose?template=0").await;
    assert!(
        prefilled.body.contains("value=\"Payments are down\""),
        "{}",
        prefilled.body
    );
    assert!(
        prefilled.body.contains("value=\"পেমেন্ট বন্ধ\""),
        "{}",
        prefilled.body
    );

    let id = app.declare("Payments are down").await;
    smtp.wait_for(3, WAIT).await;
    let resolve = author
        .get(&format!("/console/compose?crisis={id}&action=resolve"))
        .await;
    assert_eq!(resolve.status, StatusCode::OK, "{}", resolve.body);
    assert!(
        resolve.body.contains("Send the all-clear"),
        "{}",
        resolve.body
    );
    let csrf = resolve.csrf();
    let title = "Payments are down".to_owned();
    assert!(
        resolve.body.contains("value=\"Payments are down\""),
        "prefilled"
    );
    let summary = "Payments work again.";
    let fields = |step: &'static str| {
        vec![
            ("csrf", csrf.clone()),
            ("action", "resolve".to_owned()),
            ("crisis", id.clone()),
            ("kind", "outage".to_owned()),
            ("severity", "major".to_owned()),
            ("title", title.clone()),
            ("summary", summary.to_owned()),
            ("message", "Fixed at 10:42.".to_owned()),
            ("step", step.to_owned()),
        ]
    };
    let confirm_fields = fields("confirm");
    let confirm_pairs: Vec<(&str, &str)> = confirm_fields
        .iter()
        .map(|(k, v)| (*k, v.as_str()))
        .collect();
    let confirm = author.post("/console/compose", &confirm_pairs).await;
    assert_eq!(confirm.status, StatusCode::OK, "{}", confirm.body);
    let mut send_fields = fields("send");
    send_fields.push(("hash", confirm.field("hash")));
    send_fields.push(("send_key", confirm.field("send_key")));
    let send_pairs: Vec<(&str, &str)> = send_fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let sent = author.post("/console/compose", &send_pairs).await;
    assert_eq!(sent.status, StatusCode::SEE_OTHER, "{}", sent.body);
    assert_eq!(sent.location(), format!("/console/crises/{id}"));
    let mails = smtp.wait_for(6, WAIT).await;
    assert!(
        mails[3..]
            .iter()
            .all(|m| m.text().contains("Fixed at 10:42.")),
        "the all-clear went out"
    );
    let crisis = app.get_json(&format!("/v1/crises/{id}")).await;
    assert_eq!(crisis["status"], "resolved");
    assert_eq!(actors(&app, &id).await, ["api:tests", "console:author"]);
}

#[tokio::test]
async fn an_update_that_would_leave_a_translation_stale_is_refused_unless_it_falls_back() {
    let smtp = SmtpServer::start().await;
    let app = spawn_app(TestConfig::new(smtp.port())).await;
    with_accounts(&app).await;
    let mut author = Browser::signed_in(&app, "author", PASSWORD).await;
    let csrf = author.get("/console/compose").await.csrf();
    let confirm = author
        .post(
            "/console/compose",
            &with(
                declaration(&csrf, "major", "Card payments fail."),
                &[("step", "confirm")],
            ),
        )
        .await;
    let (hash, key) = (confirm.field("hash"), confirm.field("send_key"));
    let sent = author
        .post(
            "/console/compose",
            &with(
                declaration(&csrf, "major", "Card payments fail."),
                &[("step", "send"), ("hash", &hash), ("send_key", &key)],
            ),
        )
        .await;
    let id = crisis_id(sent.location()).await;
    smtp.wait_for(3, WAIT).await;

    let form = author
        .get(&format!("/console/compose?crisis={id}&action=update"))
        .await;
    assert!(
        form.body.contains("পেমেন্ট বন্ধ"),
        "the translation is prefilled: {}",
        form.body
    );
    let update = |fall_back: &'static str| {
        let mut fields = declaration(&csrf, "major", "Card payments fail; cash works.");
        fields[1] = ("action", "update");
        fields.extend([
            ("crisis", id.as_str()),
            ("step", "preview"),
            ("fall_back", fall_back),
        ]);
        fields
    };
    let stale = author.post("/console/compose", &update("")).await;
    assert_eq!(
        stale.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "said at preview: {}",
        stale.body
    );
    assert!(
        stale.body.contains("that bn has"),
        "the stale locale is named: {}",
        stale.body
    );
    let refused = author
        .post(
            "/console/compose",
            &with(
                update(""),
                &[("step", "send"), ("hash", "h"), ("send_key", "k1")],
            ),
        )
        .await;
    assert_eq!(
        refused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        refused.body
    );
    assert_eq!(smtp.accepted().len(), 3, "nothing more sent");
    let fell_back = author
        .post(
            "/console/compose",
            &with(update("on"), &[("step", "confirm")]),
        )
        .await;
    let sent = author
        .post(
            "/console/compose",
            &with(
                update("on"),
                &[
                    ("step", "send"),
                    ("hash", &fell_back.field("hash")),
                    ("send_key", "k2"),
                ],
            ),
        )
        .await;
    assert_eq!(sent.status, StatusCode::SEE_OTHER, "{}", sent.body);
    let crisis = app.get_json(&format!("/v1/crises/{id}")).await;
    assert_eq!(crisis["summary"], "Card payments fail; cash works.");
}

#[tokio::test]
async fn a_declaration_for_the_bengali_readers_by_email_is_counted_and_sent_only_to_them() {
    let smtp = SmtpServer::start().await;
    let app = spawn_app(TestConfig::new(smtp.port())).await;
    with_accounts(&app).await;
    let mut author = Browser::signed_in(&app, "author", PASSWORD).await;
    let form = author.get("/console/compose").await;
    assert!(
        form.body.contains("name=\"channel\" type=\"checkbox\" value=\"email\" checked")
            && form.body.contains("id=\"audience-everyone\" name=\"audience\" type=\"radio\" value=\"everyone\" checked"),
        "every channel and everyone at first: {}",
        form.body
    );
    let csrf = form.csrf();
    let summary = "Card payments fail; cash works.";
    let chosen = [
        ("selection", "on"),
        ("channel", "email"),
        ("audience", "chosen"),
        ("locale", "bn"),
    ];
    let confirm = author
        .post(
            "/console/compose",
            &with(
                with(declaration(&csrf, "major", summary), &chosen),
                &[("step", "confirm")],
            ),
        )
        .await;
    assert_eq!(confirm.status, StatusCode::OK, "{}", confirm.body);
    assert!(
        confirm.body.contains("data-total=\"1\"") && confirm.body.contains("bn: 1"),
        "one Bengali reader by email: {}",
        confirm.body
    );
    assert!(!confirm.body.contains("en: 1"), "{}", confirm.body);
    let hash = confirm.field("hash");
    let key = confirm.field("send_key");
    let sent = author
        .post(
            "/console/compose",
            &with(
                with(declaration(&csrf, "major", summary), &chosen),
                &[("step", "send"), ("hash", &hash), ("send_key", &key)],
            ),
        )
        .await;
    assert_eq!(sent.status, StatusCode::SEE_OTHER, "{}", sent.body);
    let id = crisis_id(sent.location()).await;
    let mails = smtp.wait_for(1, WAIT).await;
    assert_eq!(mails[0].to, ["rahim@example.org"]);
    let crisis = app.get_json(&format!("/v1/crises/{id}")).await;
    // Email is this daemon's only channel: ticked, it is every channel.
    assert_eq!(crisis["channels"], serde_json::json!([]), "{crisis}");
    assert_eq!(crisis["audience"]["locales"], serde_json::json!(["bn"]));

    // No channel ticked: refused, nothing sent.
    let none = author
        .post(
            "/console/compose",
            &with(
                declaration(&csrf, "major", "Another one."),
                &[("selection", "on"), ("step", "confirm")],
            ),
        )
        .await;
    assert_eq!(none.status, StatusCode::BAD_REQUEST);
    assert!(
        none.body.contains("Choose at least one channel."),
        "{}",
        none.body
    );
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(smtp.accepted().len(), 1);
}
