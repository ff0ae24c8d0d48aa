//! Delivery receipts and bad addresses in PostgreSQL.

use async_trait::async_trait;

use super::{PostgresStore, decode, millis};
use crate::domain::CrisisId;
use crate::domain::consent::{ContactPoint, normalize};
use crate::outbox::receipts::{
    BY_ID, BY_REF, MARK_BAD, REACH, REACH_END, REACH_OF, RECORD, RETURNING, ReachRow, RecordedRow,
    key_only,
};
use crate::outbox::rows::parse;
use crate::outbox::{
    BadAddresses, ChannelReach, DeliveryReceipt, ReceiptKey, ReceiptStore, Recorded, StoreError,
};

#[async_trait]
impl ReceiptStore for PostgresStore {
    async fn record_receipt(&self, receipt: &DeliveryReceipt) -> Result<Recorded, StoreError> {
        let mut tx = self.pool.begin().await?;
        let key = match &receipt.key {
            ReceiptKey::Delivery(_) => BY_ID,
            ReceiptKey::ProviderRef { .. } => BY_REF,
        };
        let sql = format!("{RECORD}{key}{RETURNING}");
        let query = sqlx::query(&sql)
            .bind(receipt.state.as_str())
            .bind(receipt.hard)
            .bind(receipt.reason.as_deref())
            .bind(millis(receipt.at));
        let query = match &receipt.key {
            ReceiptKey::Delivery(id) => query.bind(id.to_string()),
            ReceiptKey::ProviderRef { channel, reference } => {
                query.bind(channel.as_str()).bind(reference.as_str())
            }
        };
        let changed = query.fetch_optional(&mut *tx).await?;
        let recorded = match changed {
            Some(row) => {
                let row: RecordedRow = sqlx::FromRow::from_row(&row)?;
                if let (Some(point), true) = (receipt.mark_bad, receipt.hard) {
                    sqlx::query(MARK_BAD)
                        .bind(point.as_str())
                        .bind(normalize(point, &row.destination))
                        .bind(receipt.reason.as_deref().unwrap_or("hard bounce"))
                        .bind(millis(receipt.at))
                        .execute(&mut *tx)
                        .await?;
                }
                row.recorded()?
            }
            None => {
                let sql = format!("SELECT id FROM deliveries WHERE {}", key_only(&receipt.key));
                let query = sqlx::query_scalar::<_, String>(&sql);
                let query = match &receipt.key {
                    ReceiptKey::Delivery(id) => query.bind(id.to_string()),
                    ReceiptKey::ProviderRef { channel, reference } => {
                        query.bind(channel.as_str()).bind(reference.as_str())
                    }
                };
                match query.fetch_optional(&mut *tx).await? {
                    Some(id) => Recorded::Unchanged {
                        delivery: parse(&id, "delivery id")?,
                    },
                    None => Recorded::Unknown,
                }
            }
        };
        tx.commit().await?;
        Ok(recorded)
    }

    async fn bad_addresses(&self) -> Result<BadAddresses, StoreError> {
        let rows: Vec<(String, String)> =
            sqlx::query_as("SELECT point, address FROM bad_addresses")
                .fetch_all(&self.pool)
                .await?;
        let mut bad = BadAddresses::default();
        for (point, address) in rows {
            let point = ContactPoint::parse(&point)
                .ok_or_else(|| StoreError::Corrupt(format!("contact point `{point}`")))?;
            bad.insert(point, &address);
        }
        Ok(bad)
    }

    async fn reach(&self, crisis: Option<CrisisId>) -> Result<Vec<ChannelReach>, StoreError> {
        let rows = match crisis {
            Some(id) => {
                sqlx::query(&format!("{REACH}{REACH_OF}{REACH_END}"))
                    .bind(id.to_string())
                    .fetch_all(&self.pool)
                    .await?
            }
            None => {
                sqlx::query(&format!("{REACH}{REACH_END}"))
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        rows.iter().map(decode::<ReachRow, _, _>).collect()
    }
}
