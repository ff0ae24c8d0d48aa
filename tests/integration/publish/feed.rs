use serde_json::json;

use super::tools::{assert_valid_atom, parse_feed};
use super::{app_with, bilingual, declare, get, resolve, update};
use crate::support::{PUBLIC_URL, SmtpServer};

#[tokio::test]
async fn the_feed_has_one_entry_per_transition_in_the_language_asked_for() {
    let smtp = SmtpServer::start().await;
    let app = app_with(&smtp, "").await;
    let (status, kind, empty) = get(&app, "/v1/feed.atom?lang=bn").await;
    assert_eq!(status, 200);
    assert_eq!(kind, "application/atom+xml; charset=utf-8");
    assert_valid_atom(&empty);
    assert_eq!(parse_feed(&empty)["entries"], json!([]));

    let id = declare(&app, &bilingual("Card payments are down")).await;
    update(
        &app,
        &id,
        &json!({"message": "A fix is rolling out.", "localized": {"bn": {"message": "সমাধান চালু হচ্ছে।"}}}),
    )
    .await;
    resolve(
        &app,
        &id,
        &json!({"message": "All fixed.", "localized": {"bn": {"message": "সব ঠিক হয়েছে।"}}}),
    )
    .await;

    let (_, _, xml) = get(&app, "/v1/feed.atom?lang=bn").await;
    assert_valid_atom(&xml);
    let feed = parse_feed(&xml);
    assert_eq!(feed["bozo"], false, "{feed:#}");
    assert_eq!(feed["version"], "atom10");
    assert_eq!(feed["feed"]["title"], "পরিষেবা ঘোষণা");
    assert_eq!(
        feed["feed"]["id"],
        format!("{PUBLIC_URL}/v1/feed.atom?lang=bn")
    );
    assert_eq!(feed["feed"]["language"], "bn");
    assert_eq!(feed["feed"]["author"], "Test Co.");
    let entries = feed["entries"].as_array().expect("entries");
    let titles: Vec<&str> = entries
        .iter()
        .map(|e| e["title"].as_str().unwrap())
        .collect();
    assert_eq!(
        titles,
        [
            "সমাধান হয়েছে: কার্ডে পেমেন্ট বন্ধ",
            "হালনাগাদ: কার্ডে পেমেন্ট বন্ধ",
            "ঘোষিত: কার্ডে পেমেন্ট বন্ধ"
        ],
        "newest first: {feed:#}"
    );
    assert!(
        entries[0]["content"][0]
            .as_str()
            .unwrap()
            .starts_with("সব ঠিক হয়েছে।"),
        "{feed:#}"
    );
    assert!(
        entries[1]["content"][0]
            .as_str()
            .unwrap()
            .starts_with("সমাধান চালু হচ্ছে।"),
        "{feed:#}"
    );
    let ids: std::collections::HashSet<&str> =
        entries.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 3, "every entry has its own id: {feed:#}");
    for entry in entries {
        assert!(entry["updated"].is_string(), "{entry:#}");
        assert_eq!(
            entry["links"][0]["href"],
            format!("{PUBLIC_URL}/status/bn#crisis-{id}")
        );
        assert_eq!(entry["tags"], json!(["outage"]));
    }

    let (_, _, english) = get(&app, "/v1/feed.atom?lang=en").await;
    let english = parse_feed(&english);
    assert_eq!(
        english["entries"][2]["title"],
        "Declared: Card payments are down"
    );
    assert_eq!(
        english["entries"][0]["content"][0],
        "All fixed.\n\nCard payments fail; cash works."
    );
}
