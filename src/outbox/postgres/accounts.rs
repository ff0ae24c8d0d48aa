//! Console accounts, sessions and the account audit trail in PostgreSQL:
//! a session started on one daemon is known to every daemon.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{PostgresStore, decode, millis};
use crate::domain::account::{User, UserName};
use crate::outbox::rows::{AccountEventRow, SessionRow, UserRow};
use crate::outbox::{AccountEvent, AccountStore, NewSession, Session, StoreError};

#[async_trait]
impl AccountStore for PostgresStore {
    async fn add_user(&self, user: &User) -> Result<bool, StoreError> {
        let inserted = sqlx::query(
            "INSERT INTO console_users (name, role, password_hash, created_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        )
        .bind(user.name.as_str())
        .bind(user.role.as_str())
        .bind(&user.password_hash)
        .bind(millis(user.created_at))
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(inserted == 1)
    }

    async fn user(&self, name: &UserName) -> Result<Option<User>, StoreError> {
        sqlx::query("SELECT * FROM console_users WHERE name = $1")
            .bind(name.as_str())
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(decode::<UserRow, _, _>)
            .transpose()
    }

    async fn users(&self) -> Result<Vec<User>, StoreError> {
        sqlx::query("SELECT * FROM console_users ORDER BY name")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(decode::<UserRow, _, _>)
            .collect()
    }

    async fn remove_user(&self, name: &UserName) -> Result<bool, StoreError> {
        // The sessions go with it (ON DELETE CASCADE).
        let removed = sqlx::query("DELETE FROM console_users WHERE name = $1")
            .bind(name.as_str())
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(removed == 1)
    }

    async fn set_password(&self, name: &UserName, password_hash: &str) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let changed = sqlx::query("UPDATE console_users SET password_hash = $1 WHERE name = $2")
            .bind(password_hash)
            .bind(name.as_str())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        sqlx::query("DELETE FROM console_sessions WHERE user_name = $1")
            .bind(name.as_str())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(changed == 1)
    }

    async fn start_session(&self, session: &NewSession) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO console_sessions (token_digest, user_name, csrf, created_at, last_seen_at) \
             VALUES ($1, $2, $3, $4, $4)",
        )
        .bind(&session.token_digest)
        .bind(session.user.as_str())
        .bind(&session.csrf)
        .bind(millis(session.created_at))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn session(&self, token_digest: &str) -> Result<Option<Session>, StoreError> {
        sqlx::query(
            "SELECT s.token_digest, s.user_name, u.role, s.csrf, s.created_at, s.last_seen_at \
             FROM console_sessions s JOIN console_users u ON u.name = s.user_name \
             WHERE s.token_digest = $1",
        )
        .bind(token_digest)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(decode::<SessionRow, _, _>)
        .transpose()
    }

    async fn touch_session(&self, token_digest: &str, at: DateTime<Utc>) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE console_sessions SET last_seen_at = GREATEST(last_seen_at, $1) WHERE token_digest = $2",
        )
        .bind(millis(at))
        .bind(token_digest)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn end_session(&self, token_digest: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM console_sessions WHERE token_digest = $1")
            .bind(token_digest)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn end_idle_sessions(&self, idle_since: DateTime<Utc>) -> Result<u64, StoreError> {
        Ok(
            sqlx::query("DELETE FROM console_sessions WHERE last_seen_at < $1")
                .bind(millis(idle_since))
                .execute(&self.pool)
                .await?
                .rows_affected(),
        )
    }

    async fn record_account_event(&self, event: &AccountEvent) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO console_audit (at, kind, user_name, detail) VALUES ($1, $2, $3, $4)",
        )
        .bind(millis(event.at))
        .bind(event.kind.as_str())
        .bind(&event.user)
        .bind(&event.detail)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn account_events(&self, limit: u32) -> Result<Vec<AccountEvent>, StoreError> {
        sqlx::query("SELECT * FROM console_audit ORDER BY seq DESC LIMIT $1")
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(decode::<AccountEventRow, _, _>)
            .collect()
    }
}
