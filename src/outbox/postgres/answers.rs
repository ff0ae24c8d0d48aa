//! `AnswerStore` on PostgreSQL: the shared SQL as written.

use super::PostgresStore;
use crate::outbox::answers::answer_store;

fn postgres(sql: &str) -> String {
    sql.to_owned()
}

answer_store!(PostgresStore, postgres, |_store| (), pool);
