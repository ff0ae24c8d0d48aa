use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use super::tools::{assert_valid_atom, assert_valid_cap, parse_feed};
use super::{RESOURCES, bilingual, declare, resolve, update};
use crate::support::{SmtpServer, TestApp, TestConfig, WAIT, spawn_app};

async fn app_with_mirror(smtp: &SmtpServer) -> (TestApp, PathBuf) {
    let mut config = TestConfig::new(smtp.port());
    let public = tempfile::tempdir().expect("temp dir").keep();
    config.extra = format!("{RESOURCES}\n[publish]\ndir = \"{}\"\n", public.display());
    (spawn_app(config).await, public)
}

fn read(dir: &Path, name: &str) -> Option<String> {
    std::fs::read_to_string(dir.join(name)).ok()
}

/// Polls until `check` holds for the directory; panics after `WAIT`.
async fn wait_for(dir: &Path, what: &str, check: impl Fn(&Path) -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check(dir) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the mirror never showed {what}: {:?}",
            std::fs::read_dir(dir).map(|d| d.flatten().map(|e| e.file_name()).collect::<Vec<_>>())
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The banner JSON the daemon serves now.
async fn served_banner(app: &TestApp, lang: &str) -> Value {
    app.banner(lang).await
}

/// Every file the mirror promises, for the three shipped languages.
fn expected_files() -> Vec<String> {
    let mut files = vec![
        "index.html".to_owned(),
        "banner.json".into(),
        "banner.js".into(),
        "cap.atom".into(),
    ];
    for lang in ["en", "bn", "eo"] {
        files.push(format!("banner-{lang}.json"));
        files.push(format!("status-{lang}.html"));
        files.push(format!("feed-{lang}.atom"));
    }
    files
}

/// Reads the page and the banner over and over while transitions happen:
/// every read must be a whole file.
fn watch_for_torn_files(dir: PathBuf, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<usize> {
    std::thread::spawn(move || {
        let reads = AtomicUsize::new(0);
        while !stop.load(Ordering::SeqCst) {
            if let Some(html) = read(&dir, "status-en.html") {
                assert!(html.trim_end().ends_with("</html>"), "a torn page: {html}");
                reads.fetch_add(1, Ordering::SeqCst);
            }
            if let Some(banner) = read(&dir, "banner-en.json") {
                serde_json::from_str::<Value>(&banner)
                    .unwrap_or_else(|e| panic!("a torn banner ({e}): {banner}"));
                reads.fetch_add(1, Ordering::SeqCst);
            }
        }
        reads.into_inner()
    })
}

#[tokio::test]
async fn the_mirror_is_complete_after_each_transition_and_never_half_written() {
    let smtp = SmtpServer::start().await;
    let (app, dir) = app_with_mirror(&smtp).await;
    wait_for(&dir, "every file at start", |d| {
        expected_files().iter().all(|f| d.join(f).exists())
    })
    .await;
    assert!(
        read(&dir, "status-en.html")
            .unwrap()
            .contains("No active incidents")
    );
    assert_eq!(
        read(&dir, "banner.js").unwrap(),
        app.http
            .get(app.url("/banner.js"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    );
    assert_valid_atom(&read(&dir, "cap.atom").unwrap());

    let stop = Arc::new(AtomicBool::new(false));
    let watcher = watch_for_torn_files(dir.clone(), stop.clone());

    let id = declare(&app, &bilingual("Card payments are down")).await;
    wait_for(&dir, "the declaration", |d| {
        d.join(format!("cap/{id}-1.xml")).exists()
            && read(d, "status-bn.html").is_some_and(|p| p.contains("কার্ডে পেমেন্ট বন্ধ"))
    })
    .await;
    for lang in ["en", "bn", "eo"] {
        let mirrored: Value =
            serde_json::from_str(&read(&dir, &format!("banner-{lang}.json")).unwrap()).unwrap();
        assert_eq!(mirrored, served_banner(&app, lang).await, "{lang}");
    }
    let page = read(&dir, "status-en.html").unwrap();
    assert!(
        page.contains(r#"href="feed-en.atom""#) && page.contains(r#"href="cap.atom""#),
        "links between the files: {page}"
    );
    assert!(page.contains(&format!("cap&#x2f;{id}-1.xml")), "{page}");
    assert_valid_cap(&read(&dir, &format!("cap/{id}-1.xml")).unwrap());
    let cap_feed = parse_feed(&read(&dir, "cap.atom").unwrap());
    assert_eq!(
        cap_feed["entries"][0]["links"][0]["href"],
        format!("cap/{id}-1.xml")
    );

    update(
        &app,
        &id,
        &json!({"message": "A fix is rolling out.", "fall_back": true}),
    )
    .await;
    wait_for(&dir, "the update", |d| {
        d.join(format!("cap/{id}-2.xml")).exists()
            && read(d, "banner-en.json").is_some_and(|b| b.contains("A fix is rolling out."))
    })
    .await;
    assert_eq!(
        parse_feed(&read(&dir, "feed-bn.atom").unwrap())["entries"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    resolve(
        &app,
        &id,
        &json!({"message": "All fixed.", "fall_back": true}),
    )
    .await;
    wait_for(&dir, "the all-clear", |d| {
        d.join(format!("cap/{id}-3.xml")).exists()
            && read(d, "status-en.html").is_some_and(|p| p.contains("No active incidents"))
    })
    .await;
    let cancel = read(&dir, &format!("cap/{id}-3.xml")).unwrap();
    assert_valid_cap(&cancel);
    assert!(cancel.contains("<msgType>Cancel</msgType>"), "{cancel}");
    let banner: Value = serde_json::from_str(&read(&dir, "banner-en.json").unwrap()).unwrap();
    assert_eq!(banner["crises"], json!([]));
    let feed = read(&dir, "feed-en.atom").unwrap();
    assert_valid_atom(&feed);
    assert_eq!(parse_feed(&feed)["entries"].as_array().unwrap().len(), 3);

    stop.store(true, Ordering::SeqCst);
    let reads = watcher.join().expect("no torn file was read");
    assert!(reads > 0, "the watcher read nothing");
    // Only the promised files, and no temporary one left behind.
    let mut left: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name != "cap")
        .collect();
    left.sort();
    let mut expected = expected_files();
    expected.sort();
    assert_eq!(left, expected);

    // With the daemon stopped the copy stays, as it was last written.
    let last = read(&dir, "banner-en.json").unwrap();
    app.stop().await;
    assert_eq!(read(&dir, "banner-en.json").unwrap(), last);
    std::fs::remove_dir_all(&dir).ok();
}
