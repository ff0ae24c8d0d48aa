//! How the outbox and dispatcher behave when the SMTP server does not
//! simply say yes.

use std::time::Duration;

use crate::support::{SmtpServer, TestConfig, TlsMode, WAIT, free_port, spawn_app, spawn_app_in};

const ONE_READER: &str = "id,name,email,phone,locale,timezone\nada,Ada,ada@example.com,,en,UTC\n";

fn one_reader(port: u16) -> TestConfig {
    let mut config = TestConfig::new(port);
    config.audience = ONE_READER.to_owned();
    config
}

#[tokio::test]
async fn a_451_is_retried_and_then_delivered() {
    let smtp = SmtpServer::start().await;
    smtp.script_data_replies(&["451 4.3.0 Mailbox busy, try again later"]);
    let app = spawn_app(one_reader(smtp.port())).await;
    let id = app.declare("Payments are down").await;

    let messages = smtp.wait_for(1, WAIT).await;
    assert_eq!(messages.len(), 1);
    assert_eq!(smtp.attempts(), 2, "one refused attempt, one accepted");
    app.wait_until(&id, WAIT, |d| d["deliveries"]["email"]["sent"] == 1)
        .await;
}

#[tokio::test]
async fn a_550_makes_the_delivery_dead_with_the_servers_reason() {
    let smtp = SmtpServer::start().await;
    smtp.script_data_replies(&["550 5.7.1 Message rejected by policy"]);
    let app = spawn_app(one_reader(smtp.port())).await;
    let id = app.declare("Payments are down").await;

    let detail = app
        .wait_until(&id, WAIT, |d| d["deliveries"]["email"]["dead"] == 1)
        .await;
    let reason = detail["dead"][0]["reason"]
        .as_str()
        .expect("reason")
        .to_owned();
    assert!(
        reason.contains("550") || reason.contains("rejected by policy"),
        "{reason}"
    );
    assert_eq!(detail["dead"][0]["destination"], "ada@example.com");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(smtp.attempts(), 1, "a permanent failure is not retried");
}

#[tokio::test]
async fn transactions_are_pipelined_only_when_the_server_offers_it() {
    for pipelining in [true, false] {
        let smtp = SmtpServer::start().await;
        if !pipelining {
            smtp.disable_pipelining();
        }
        smtp.reject_recipient("rahim@example.org", "550 5.1.1 No such user");
        let app = spawn_app(TestConfig::new(smtp.port())).await;
        let id = app.declare("Payments are down").await;

        let detail = app
            .wait_until(&id, WAIT, |d| {
                d["deliveries"]["email"]["dead"] == 1 && d["deliveries"]["email"]["sent"] == 2
            })
            .await;
        let reason = detail["dead"][0]["reason"].as_str().expect("reason");
        assert!(reason.contains("No such user"), "{reason}");
        let messages = smtp.wait_for(2, WAIT).await;
        for message in &messages {
            assert!(
                message.subject().contains("Payments are down"),
                "{}",
                message.subject()
            );
            assert!(
                message.text().contains("Payments are down"),
                "{}",
                message.text()
            );
            assert!(message.html().contains("</html>"), "{}", message.html());
        }
        if pipelining {
            assert!(
                smtp.pipelined() >= 2,
                "pipelined transactions: {}",
                smtp.pipelined()
            );
        } else {
            assert_eq!(smtp.pipelined(), 0, "nothing pipelined unless offered");
        }
    }
}

#[tokio::test]
async fn retries_run_out_into_a_dead_delivery_with_the_last_error() {
    let smtp = SmtpServer::start().await;
    smtp.script_data_replies(&["421 4.3.2 busy"; 10]);
    let mut config = one_reader(smtp.port());
    config.max_attempts = 3;
    let app = spawn_app(config).await;
    let id = app.declare("Payments are down").await;

    let detail = app
        .wait_until(&id, WAIT, |d| d["deliveries"]["email"]["dead"] == 1)
        .await;
    let reason = detail["dead"][0]["reason"].as_str().expect("reason");
    assert!(reason.contains("gave up after 3 attempts"), "{reason}");
    assert_eq!(smtp.attempts(), 3);
}

#[tokio::test]
async fn while_the_smtp_server_is_down_deliveries_wait_and_are_sent_when_it_returns() {
    // Nothing listens on the port yet: the server is "down".
    let port = free_port();
    let app = spawn_app(TestConfig::new(port)).await;
    let id = app.declare("Payments are down").await;
    app.wait_until(&id, WAIT, |d| {
        d["deliveries"]["email"]["retrying"].as_u64() >= Some(1)
    })
    .await;

    let smtp = SmtpServer::start_on(format!("127.0.0.1:{port}").parse().expect("addr")).await;
    smtp.wait_for(3, WAIT).await;
    let detail = app
        .wait_until(&id, WAIT, |d| d["deliveries"]["email"]["sent"] == 3)
        .await;
    assert_eq!(detail["deliveries"]["email"]["dead"], 0);
}

#[tokio::test]
async fn pending_deliveries_survive_a_graceful_restart() {
    let port = free_port();
    let app = spawn_app(TestConfig::new(port)).await;
    let id = app.declare("Payments are down").await;
    let dir = app.stop().await;

    let smtp = SmtpServer::start_on(format!("127.0.0.1:{port}").parse().expect("addr")).await;
    let app = spawn_app_in(TestConfig::new(port), dir).await;
    smtp.wait_for(3, WAIT).await;
    app.wait_until(&id, WAIT, |d| d["deliveries"]["email"]["sent"] == 3)
        .await;
    assert_eq!(
        app.banner("en").await["crises"][0]["id"],
        id.as_str(),
        "the banner is rebuilt from the store"
    );
}

#[tokio::test]
async fn smtp_credentials_come_from_the_file_the_config_names() {
    let smtp = SmtpServer::start().await;
    smtp.require_auth("crisisd", "s3cret-from-file");
    let mut config = one_reader(smtp.port());
    config.smtp_auth = Some(("crisisd", "s3cret-from-file"));
    let app = spawn_app(config).await;
    let id = app.declare("Payments are down").await;

    smtp.wait_for(1, WAIT).await;
    assert!(smtp.authenticated_as().contains(&"crisisd".to_owned()));
    app.wait_until(&id, WAIT, |d| d["deliveries"]["email"]["sent"] == 1)
        .await;
}

#[tokio::test]
async fn wrong_smtp_credentials_are_retried_not_lost() {
    let smtp = SmtpServer::start().await;
    smtp.require_auth("crisisd", "the-real-one");
    let mut config = one_reader(smtp.port());
    config.smtp_auth = Some(("crisisd", "an-old-one"));
    let app = spawn_app(config).await;
    let id = app.declare("Payments are down").await;

    // Bad credentials fail every delivery alike until the config is fixed:
    // they are retried, not killed.
    let detail = app
        .wait_until(&id, WAIT, |d| d["deliveries"]["email"]["retrying"] == 1)
        .await;
    assert_eq!(detail["deliveries"]["email"]["dead"], 0);
    assert!(smtp.accepted().is_empty());
}

#[tokio::test]
async fn starttls_to_a_relay_with_a_private_ca_delivers_over_tls() {
    let (smtp, ca) = SmtpServer::start_tls(TlsMode::Starttls).await;
    smtp.require_auth("crisisd", "s3cret");
    let mut config = one_reader(smtp.port());
    config.smtp_tls = "starttls";
    config.smtp_ca = Some(ca);
    config.smtp_auth = Some(("crisisd", "s3cret"));
    let app = spawn_app(config).await;
    app.declare("Payments are down").await;

    let messages = smtp.wait_for(1, WAIT).await;
    assert!(messages[0].over_tls, "the message came after STARTTLS");
    assert_eq!(
        smtp.authenticated_as(),
        ["crisisd"],
        "credentials went over TLS"
    );
}

#[tokio::test]
async fn implicit_tls_delivers_over_tls() {
    let (smtp, ca) = SmtpServer::start_tls(TlsMode::Implicit).await;
    let mut config = one_reader(smtp.port());
    config.smtp_tls = "tls";
    config.smtp_ca = Some(ca);
    let app = spawn_app(config).await;
    app.declare("Payments are down").await;

    let messages = smtp.wait_for(1, WAIT).await;
    assert!(messages[0].over_tls);
}

#[tokio::test]
async fn a_relay_whose_certificate_is_not_trusted_gets_nothing() {
    let (smtp, _ca) = SmtpServer::start_tls(TlsMode::Starttls).await;
    let mut config = one_reader(smtp.port());
    config.smtp_tls = "starttls";
    let app = spawn_app(config).await;
    let id = app.declare("Payments are down").await;

    let detail = app
        .wait_until(&id, WAIT, |d| d["deliveries"]["email"]["retrying"] == 1)
        .await;
    assert_eq!(detail["deliveries"]["email"]["sent"], 0);
    assert!(
        smtp.accepted().is_empty(),
        "nothing is sent to an unverified relay"
    );
}

#[tokio::test]
async fn a_timeout_after_the_message_was_written_on_a_reused_connection_is_not_resent_in_the_same_attempt()
 {
    let smtp = SmtpServer::start().await;
    // The first message goes at once and leaves its connection in the
    // pool; every later one is answered only after the client gave up.
    let hang = Duration::from_secs(2);
    smtp.script_data_delays(&[Duration::ZERO, hang, hang, hang, hang, hang, hang]);
    let mut config = TestConfig::new(smtp.port());
    config.concurrency = 1;
    config.smtp_timeout = "1s";
    config.max_attempts = 2;
    let app = spawn_app(config).await;
    let id = app.declare("Payments are down").await;

    let detail = app
        .wait_until(&id, Duration::from_secs(30), |d| {
            d["deliveries"]["email"]["dead"] == 2
        })
        .await;
    assert_eq!(detail["deliveries"]["email"]["sent"], 1, "{detail:#}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    // One reader sent at once; two readers with two attempts each, the
    // first of them on the reused connection. Each attempt is one copy.
    assert_eq!(
        smtp.attempts(),
        1 + 2 * 2,
        "one transmission per attempt, none resent on a new connection"
    );
}

#[tokio::test]
async fn a_spooled_email_is_named_by_its_delivery_id() {
    let smtp = crate::support::SmtpServer::start().await;
    let spool = tempfile::tempdir().expect("spool dir");
    let mut config = crate::support::TestConfig::new(smtp.port());
    config.extra = format!(
        "[[channels.email]]\nname = \"spool\"\nfrom = \"Test Co. <support@example.com>\"\n\
         transport = \"spool\"\nspool_dir = \"{}\"\n",
        spool.path().display()
    );
    let app = crate::support::spawn_app(config).await;
    app.declare("Payments are down").await;
    let deadline = tokio::time::Instant::now() + crate::support::WAIT;
    let files = loop {
        let files: Vec<std::path::PathBuf> = std::fs::read_dir(spool.path())
            .expect("read spool")
            .map(|e| e.expect("entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "eml"))
            .collect();
        if files.len() == 3 || tokio::time::Instant::now() > deadline {
            break files;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(files.len(), 3, "one file per reader: {files:?}");
    for file in files {
        let stem = file.file_stem().unwrap().to_string_lossy().into_owned();
        stem.parse::<crisisd::domain::DeliveryId>()
            .unwrap_or_else(|e| panic!("{stem} is not a delivery id: {e}"));
        let text = std::fs::read_to_string(&file).expect("read eml");
        assert!(
            text.contains(&format!("Message-ID: <{stem}@example.com>")),
            "the file is named by the delivery its Message-ID names: {text}"
        );
    }
}
