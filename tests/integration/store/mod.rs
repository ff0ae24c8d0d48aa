//! The store contract (`contract.rs`), written against the storage traits,
//! and the backends that run it (`sqlite.rs`, `postgres.rs`). A new backend adds its file
//! with a `Database` and one `store_contract!` line.

#[macro_use]
mod contract;
#[macro_use]
mod receipts;
#[macro_use]
mod answers;
mod postgres;
mod sqlite;

pub use contract::declared;
