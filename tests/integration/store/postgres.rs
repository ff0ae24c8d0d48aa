//! The store contract against PostgreSQL: a database of its own for each
//! test on the throwaway cluster the test run starts; and what only the
//! shared store has, daemons migrating and claiming together.

use crisisd::outbox::{PostgresStore, Storage};
use sqlx::Connection;

use super::contract::{Database, at, declared, write};
use crate::support::postgres;

pub struct PostgresDatabase(String);

impl PostgresDatabase {
    async fn new() -> Self {
        Self(postgres::database().await)
    }
}

impl Database for PostgresDatabase {
    async fn open(&self) -> Storage {
        Storage::new(PostgresStore::open(&self.0).await.expect("open"))
    }
}

store_contract!(PostgresDatabase::new().await);
receipts_contract!(PostgresDatabase::new().await);
answers_contract!(PostgresDatabase::new().await);

#[tokio::test]
async fn each_test_gets_an_empty_database_of_its_own_on_the_test_cluster() {
    let (first, second) = (postgres::database().await, postgres::database().await);
    assert_ne!(first, second);
    let mut connection = sqlx::PgConnection::connect(&first).await.expect("connect");
    let (name, tables): (String, i64) = sqlx::query_as(
        "SELECT current_database(), (SELECT count(*) FROM information_schema.tables \
         WHERE table_schema = 'public')",
    )
    .fetch_one(&mut connection)
    .await
    .expect("query");
    assert!(first.ends_with(&format!("/{name}")), "{first} is {name}");
    assert_eq!(tables, 0, "empty");
}

#[tokio::test]
async fn daemons_starting_together_migrate_once_and_each_finds_the_schema_whole() {
    let database = PostgresDatabase::new().await;
    let opened = futures::future::join_all((0..4).map(|_| PostgresStore::open(&database.0))).await;
    assert!(opened.iter().all(Result::is_ok), "{opened:?}");
    assert!(
        PostgresStore::missing_migrations(&database.0)
            .await
            .expect("migrations")
            .is_empty()
    );
    let mut connection = sqlx::PgConnection::connect(&database.0)
        .await
        .expect("connect");
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations")
        .fetch_one(&mut connection)
        .await
        .expect("count");
    let files = std::fs::read_dir(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/outbox/migrations/postgres"),
    )
    .expect("migrations")
    .count();
    assert_eq!(applied, i64::try_from(files).expect("count"));
}

#[tokio::test]
async fn daemons_claiming_and_recording_together_each_get_other_deliveries() {
    let database = PostgresDatabase::new().await;
    let storage = database.open().await;
    let crisis = declared();
    storage
        .crises
        .record_transition(write(&crisis, None, 2000))
        .await
        .expect("declare");
    let nodes: Vec<Storage> = futures::future::join_all((0..4).map(|_| database.open())).await;
    let claims = futures::future::join_all(nodes.iter().enumerate().map(|(n, node)| {
        let owner = format!("node-{n}");
        async move {
            let mut taken = Vec::new();
            loop {
                let batch = node
                    .queue
                    .claim(
                        "email",
                        &owner,
                        at(1),
                        std::time::Duration::from_secs(60),
                        7,
                    )
                    .await
                    .expect("claim");
                if batch.is_empty() {
                    return taken;
                }
                let outcomes: Vec<_> = batch
                    .iter()
                    .map(|d| (d.id, crisisd::outbox::Outcome::Sent { provider_ref: None }))
                    .collect();
                node.queue
                    .record_outcomes(&owner, at(2), &outcomes)
                    .await
                    .expect("outcomes recorded while others claim");
                taken.extend(batch.into_iter().map(|d| d.id));
            }
        }
    }))
    .await;
    let mut all: Vec<_> = claims.iter().flatten().collect();
    assert_eq!(all.len(), 2000, "every delivery claimed");
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 2000, "none claimed twice");
    assert!(
        claims.iter().filter(|taken| !taken.is_empty()).count() > 1,
        "claims spread: {:?}",
        claims.iter().map(Vec::len).collect::<Vec<_>>()
    );
}
