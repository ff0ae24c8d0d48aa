//! Retention on daemons sharing one PostgreSQL: the leader alone prunes,
//! in batches, an ended crisis's deliveries and details once they are old
//! enough, and keeps an active crisis's rows and the crisis itself.

use std::time::{Duration, Instant};

use crate::support::{Daemon, SmtpServer, TestConfig, WAIT, postgres};

const RETENTION: &str = r#"
[retention]
deliveries = "1s"
crises = "2s"
audit = "2s"
hook_log = "2s"
every = "1s"
batch = 2
"#;

async fn count(pool: &sqlx::PgPool, sql: &str, id: &str) -> i64 {
    sqlx::query_scalar(sql)
        .bind(id)
        .fetch_one(pool)
        .await
        .expect(sql)
}

#[tokio::test]
async fn only_the_leader_prunes_an_ended_crisis_and_an_active_ones_rows_stay() {
    let smtp = SmtpServer::start().await;
    let url = postgres::database().await;
    let nodes: Vec<Daemon> = (0..2)
        .map(|_| {
            let mut config = TestConfig::new(smtp.port());
            config.store_url = Some(url.clone());
            config.extra = RETENTION.into();
            Daemon::new(config)
        })
        .collect();
    let mut processes = Vec::new();
    for node in &nodes {
        processes.push(node.start().await);
    }
    let ended = nodes[0].declare().await;
    nodes[0].settled(&ended, 3, WAIT).await;
    nodes[0].post(&ended, "resolve", "Fixed.").await;
    nodes[0].settled(&ended, 6, WAIT).await;
    let active = nodes[1].declare().await;
    nodes[1].settled(&active, 3, WAIT).await;

    let pool = sqlx::PgPool::connect(&url).await.expect("connect");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = count(
            &pool,
            "SELECT count(*) FROM announcements WHERE crisis_id = $1",
            &ended,
        )
        .await
            + count(
                &pool,
                "SELECT count(*) FROM deliveries WHERE crisis_id = $1",
                &ended,
            )
            .await
            + count(
                &pool,
                "SELECT count(*) FROM crisis_events WHERE crisis_id = $1",
                &ended,
            )
            .await;
        if left == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{left} rows of the ended crisis left"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM deliveries WHERE crisis_id = $1",
            &active
        )
        .await,
        3,
        "the active crisis's deliveries stay"
    );
    assert_eq!(
        count(&pool, "SELECT count(*) FROM crises WHERE id = $1", &ended).await,
        1,
        "the ended crisis itself stays"
    );
    assert_eq!(nodes[0].crisis(&ended).await["status"], "resolved");

    let leader: String = sqlx::query_scalar("SELECT node FROM leader")
        .fetch_one(&pool)
        .await
        .expect("leader");
    let leading = processes
        .iter()
        .position(|p| {
            p.id()
                .is_some_and(|pid| leader.ends_with(&format!(":{pid}")))
        })
        .expect("one of the two leads");
    let pruned = |n: usize| {
        let daemon = &nodes[n];
        async move {
            let metrics = daemon
                .http
                .get(format!("{}/metrics", daemon.base))
                .send()
                .await
                .expect("GET /metrics")
                .text()
                .await
                .expect("text");
            metrics
                .lines()
                .filter(|line| line.starts_with("crisisd_retention_pruned_total{"))
                .map(|line| {
                    line.rsplit(' ')
                        .next()
                        .unwrap_or("0")
                        .parse::<f64>()
                        .unwrap_or(0.0)
                })
                .sum::<f64>()
        }
    };
    // Three sent and three all-clear emails, two announcements, two events.
    assert!(pruned(leading).await >= 10.0, "the leader pruned them");
    assert!(
        pruned(1 - leading).await == 0.0,
        "the other daemon pruned nothing"
    );
    pool.close().await;
}
