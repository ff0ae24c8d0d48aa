//! The console: accounts, managed with `crisisd user`.

pub mod accounts;
