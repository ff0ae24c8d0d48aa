//! The store contract against PostgreSQL: a database of its own for each
//! test on the throwaway cluster the test run starts.

use sqlx::Connection;

use crate::support::postgres;

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
