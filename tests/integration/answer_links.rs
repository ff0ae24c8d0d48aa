//! Email readers answer a question by the links in their email: the daemon
//! sends each reader their own signed links, a GET only asks to confirm
//! (mail scanners follow links), the POST records the answer like an SMS
//! reply (tallies, the callback list), and a forged link changes nothing.

use serde_json::{Value, json};

use crate::inbound::QUESTION;
use crate::support::{PUBLIC_URL, Received, SmtpServer, TestApp, TestConfig, WAIT, spawn_app};

/// The links of `text` (an email's text part), by the number they answer.
fn answer_links(text: &str) -> Vec<(u8, String)> {
    text.split_whitespace()
        .filter(|word| word.starts_with(&format!("{PUBLIC_URL}/v1/answers/")))
        .map(|url| {
            let number = url
                .rsplit('/')
                .next()
                .and_then(|last| last.split('?').next())
                .and_then(|n| n.parse().ok())
                .expect("a link ends in its number");
            (number, url.to_owned())
        })
        .collect()
}

fn mail_to<'a>(mails: &'a [Received], to: &str) -> &'a Received {
    mails
        .iter()
        .find(|m| m.to == [to])
        .unwrap_or_else(|| panic!("no mail to {to}"))
}

/// The daemon's URL for a link that names its public URL.
fn local(app: &TestApp, link: &str) -> String {
    app.url(link.strip_prefix(PUBLIC_URL).expect("a link to the daemon"))
}

async fn tallies(app: &TestApp, id: &str) -> Vec<(Value, u64)> {
    let detail = app.get_json(&format!("/v1/crises/{id}")).await;
    detail["answers"]
        .as_array()
        .expect("answers")
        .iter()
        .map(|t| (t["answer"].clone(), t["count"].as_u64().unwrap()))
        .collect()
}

async fn callbacks(app: &TestApp) -> Vec<Value> {
    app.get_json("/v1/callbacks").await["callbacks"]
        .as_array()
        .expect("callbacks")
        .clone()
}

#[tokio::test]
async fn an_email_readers_link_asks_to_confirm_then_lands_on_the_callback_list_and_a_forged_one_changes_nothing()
 {
    let smtp = SmtpServer::start().await;
    let mut config = TestConfig::new(smtp.port());
    config.extra = QUESTION.to_owned();
    let app = spawn_app(config).await;
    let id = app.declare("Payments are down").await;
    let mails = smtp.wait_for(3, WAIT).await;

    // Rahim's email is in Bengali, with one link per answer in both parts.
    let rahim = mail_to(&mails, "rahim@example.org");
    let links = answer_links(&rahim.text());
    assert_eq!(
        links.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
        [1, 2],
        "{}",
        rahim.text()
    );
    assert!(rahim.text().contains("এখনই সাহায্য দরকার"), "{}", rahim.text());
    let help_now = &links[0].1;
    assert!(help_now.ends_with("/1?lang=bn"), "{help_now}");
    // As a browser reads the attribute (minijinja writes `/` as `&#x2f;`).
    let html = rahim.html().replace("&#x2f;", "/");
    assert!(
        html.contains(&format!("href=\"{}\"", help_now)),
        "the HTML part carries the same link: {html}"
    );
    // Each reader's links are their own.
    let ada = mail_to(&mails, "ada@example.com");
    let ada_links = answer_links(&ada.text());
    assert_eq!(ada_links.len(), 2, "{}", ada.text());
    assert_ne!(ada_links[0].1, *help_now);

    // Following the link (as a mail scanner does) only asks to confirm.
    let page = app.http.get(local(&app, help_now)).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let page = page.text().await.unwrap();
    assert!(page.contains("<html lang=\"bn\">"), "{page}");
    assert!(page.contains("<form method=\"post\">"), "{page}");
    assert!(page.contains("এখনই সাহায্য দরকার"), "{page}");
    assert!(page.contains("আমার উত্তর পাঠান"), "{page}");
    assert_eq!(tallies(&app, &id).await, []);

    // A link whose token was altered, or made for another delivery, is
    // refused and records nothing.
    let token = help_now
        .split("/v1/answers/")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap();
    let (delivery, signature) = token.split_once('.').unwrap();
    let flipped = if signature.starts_with('A') { "B" } else { "A" };
    let ada_token = ada_links[0].1.split("/v1/answers/").nth(1).unwrap();
    let ada_delivery = ada_token.split('.').next().unwrap();
    for forged in [
        help_now.replace(token, &format!("{delivery}.{flipped}{}", &signature[1..])),
        help_now.replace(delivery, ada_delivery),
        help_now.replace(token, delivery),
    ] {
        let refused = app.http.post(local(&app, &forged)).send().await.unwrap();
        assert_eq!(refused.status(), 403, "{forged}");
        assert!(refused.text().await.unwrap().contains("এই লিংকটি সঠিক নয়"));
    }
    // A number that is no answer is not one either.
    let three = help_now.replace("/1?lang=bn", "/3?lang=bn");
    let refused = app.http.post(local(&app, &three)).send().await.unwrap();
    assert_eq!(refused.status(), 404);
    assert_eq!(tallies(&app, &id).await, []);
    assert_eq!(callbacks(&app).await, Vec::<Value>::new());

    // The button records it; a second click changes nothing.
    for _ in 0..2 {
        let done = app.http.post(local(&app, help_now)).send().await.unwrap();
        assert_eq!(done.status(), 200);
        let done = done.text().await.unwrap();
        assert!(done.contains("ধন্যবাদ। আপনার উত্তর আমরা পেয়েছি"), "{done}");
        assert!(done.contains("আমাদের সহায়তা দল এখনই"), "{done}");
    }
    // Ada is safe, by the link in her HTML part.
    let safe = &ada_links[1].1;
    assert!(ada.html().replace("&#x2f;", "/").contains(safe.as_str()));
    let done = app.http.post(local(&app, safe)).send().await.unwrap();
    assert_eq!(done.status(), 200);
    let done = done.text().await.unwrap();
    assert!(
        done.contains("We have your answer: <strong>Safe</strong>"),
        "{done}"
    );

    assert_eq!(tallies(&app, &id).await, [(json!(1), 1), (json!(2), 1)]);
    let list = callbacks(&app).await;
    assert_eq!(list.len(), 1, "{list:#?}");
    let rahim = &list[0];
    assert_eq!(rahim["crisis_id"], id.as_str());
    assert_eq!(rahim["point"], "email");
    assert_eq!(rahim["address"], "rahim@example.org");
    assert_eq!(rahim["locale"], "bn");
    assert_eq!(rahim["channel"], "email");
    assert_eq!(rahim["answer"], 1);
    assert_eq!(rahim["label"], "Needs help now");
}
