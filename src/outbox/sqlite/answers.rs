//! `AnswerStore` on SQLite: the shared SQL, `$n` read as `?n`, writes
//! behind the one writer lock.

use super::SqliteStore;
use crate::outbox::answers::answer_store;

fn sqlite(sql: &str) -> String {
    sql.replace('$', "?")
}

answer_store!(SqliteStore, sqlite, |store| store.writer.lock().await, pool);
