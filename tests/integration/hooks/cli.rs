//! `crisisd status` shows proposals first; `confirm`, `discard` and
//! `hooks log` from the command line.

use std::process::Output;

use super::control::{PROPOSE, propose};
use super::{QUIET, start};
use crate::cli::{crisisd, stderr, stdout};
use crate::support::WAIT;

fn text(output: &Output) -> String {
    format!("{}{}", stdout(output), stderr(output))
}

#[tokio::test]
async fn status_shows_proposals_first_and_the_cli_confirms_discards_and_lists_the_log() {
    let (app, smtp) = start(PROPOSE, &[("careful.secret", "k")]).await;
    let first = propose(&app, "1", "Checkout").await;
    let second = propose(&app, "2", "Blog").await;

    let status = crisisd(&app, &["status"]).await;
    assert!(status.status.success(), "{}", text(&status));
    let shown = text(&status);
    let top = shown.lines().next().unwrap_or_default();
    assert!(
        top.contains("2 crisis proposal(s)"),
        "proposals come first: {shown}"
    );
    assert!(
        shown.contains(&first) && shown.contains("Checkout is down"),
        "{shown}"
    );
    assert!(shown.contains("crisisd confirm ID"), "{shown}");

    let discarded = crisisd(&app, &["discard", &second]).await;
    assert!(discarded.status.success(), "{}", text(&discarded));
    tokio::time::sleep(QUIET).await;
    assert_eq!(smtp.accepted().len(), 0);

    let confirmed = crisisd(&app, &["confirm", &first]).await;
    assert!(confirmed.status.success(), "{}", text(&confirmed));
    assert_eq!(stdout(&confirmed).trim(), first);
    smtp.wait_for(3, WAIT).await;
    let again = crisisd(&app, &["confirm", &first]).await;
    assert_eq!(again.status.code(), Some(2), "{}", text(&again));

    let status = text(&crisisd(&app, &["status"]).await);
    assert!(!status.contains("proposal"), "{status}");
    assert!(status.contains(&first), "{status}");

    let log = crisisd(&app, &["hooks", "log", "--hook", "careful"]).await;
    assert!(log.status.success(), "{}", text(&log));
    let log = text(&log);
    assert!(
        log.contains("uptime_kuma") && log.contains("applied"),
        "{log}"
    );
    assert!(log.contains(&format!("proposed {second}")), "{log}");
}
