//! Storage: the durable crisis state and the outbox, the ledger of
//! deliveries. One small trait per aggregate, composed behind one
//! `Storage` handle that the app builds from one backend and passes down,
//! so each component holds only the traits it uses. Storage imports only
//! the leaves (domain, message); `sqlite/` is the embedded backend, and a
//! new backend is one folder that passes the store contract suite.

mod accounts;
mod answers;
mod consent;
pub mod copy;
mod corrections;
mod crises;
mod dead_letters;
mod directory;
mod fallbacks;
mod flow;
mod follow_ups;
mod hooks;
mod idempotency;
mod leader;
mod ledger;
mod plans;
mod postgres;
mod queue;
mod receipts;
mod retention;
mod rows;
mod source_links;
mod sqlite;
mod submissions;

use std::sync::Arc;

pub use accounts::{AccountEvent, AccountEventKind, AccountStore, NewSession, Session};
pub use answers::{
    AnswerFilter, AnswerRecord, AnswerStore, Asked, AskedDelivery, LastSent, NewAnswer, Tally,
};
pub use consent::ConsentStore;
pub use corrections::{
    CORRECTED, Correctable, CorrectionStore, CorrectionWrite, OriginalDelivery, OriginalState,
};
pub use crises::{CrisisFilter, CrisisStore, DuplicateGuard, TransitionWrite};
pub use dead_letters::{DeadCause, DeadFilter, DeadLetter, DeadLetterStore};
pub use directory::DirectoryStore;
pub use fallbacks::{FallbackOutcome, FallbackStore, HeldFallback};
pub use flow::{Bucket, FlowPauses, FlowStore, SharedFlow, Tokens};
pub use follow_ups::{FollowUpReplacement, FollowUpStart, FollowUpStore};
pub use hooks::{HOOK_LOG_KEEP, HookLogEntry, HookStore, Pending, PendingState, Verdict};
pub use idempotency::{IdempotencyRecord, IdempotencyStore};
pub use leader::{
    HeldLeases, LeaderStore, Leadership, NODE_SEEN_WITHIN, NodeSeen, Term, node_name,
};
pub use ledger::{
    ChannelStateCount, DeliveryCount, FinishedCount, Ledger, WRITE_FAULT_QUIET, WriteFaults,
};
pub use plans::{
    Announcement, COUNTS_AGAINST_CAP, NewDelivery, NewRendition, Payload, PlanLease, PlanStep,
    PlanStore, Planned, UnfinishedPlan,
};
pub use postgres::{PostgresStore, StoreEvent, StoreEvents};
pub use queue::{
    ALL_CLEAR_UNREACHED, Delivery, DeliveryQueue, DeliveryState, Outcome, Personal, WorkDue,
};
pub use receipts::{
    BadAddresses, ChannelReach, DeliveryReceipt, ReachCounts, ReceiptKey, ReceiptState,
    ReceiptStore, Recorded,
};
pub use retention::{Prune, RetentionStore};
pub use source_links::{SourceLink, SourceLinkChange, SourceLinkStore};
pub use sqlite::{InUse, SqliteStore};
pub use submissions::{Submission, SubmissionState, SubmissionStore};

use crate::domain::CrisisId;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("cannot apply database migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("cannot create the data directory {path}: {source}")]
    CreateDir {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("crisis {0} changed while this transition was being made; try again")]
    Conflict(CrisisId),
    #[error("the Idempotency-Key was used by a concurrent request")]
    IdempotencyKeyTaken,
    #[error("crisis {existing} (\"{title}\") is active with the same kind and title")]
    Duplicate { existing: CrisisId, title: String },
    #[error("a correction of this crisis was recorded at {0}")]
    CorrectedRecently(chrono::DateTime<chrono::Utc>),
    #[error("stored data is not readable: {0}")]
    Corrupt(String),
    #[error("another daemon took this announcement's plan over; it finishes the plan")]
    PlanTaken,
    #[error(
        "the database file {0} was deleted or replaced while the daemon ran; nothing is written \
         until the daemon is restarted on the right file"
    )]
    Replaced(std::path::PathBuf),
    #[error("writes fail: {0}")]
    WriteFailing(&'static str),
    #[error(
        "the SQLite store {0} is in use by a running daemon (it holds the lock file beside it); \
         stop it first"
    )]
    InUse(std::path::PathBuf),
    #[error("cannot open the lock file {path}: {source}")]
    Lock {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

impl StoreError {
    /// Why the store cannot serve at all right now (a full disk, an I/O
    /// error, a lock it cannot get, its file gone), as opposed to a fault
    /// of one request: `None` for the latter. Nothing was written by the
    /// failed request in either case.
    pub fn unavailable(&self) -> Option<&'static str> {
        match self {
            StoreError::Replaced(_) => Some("its database file was deleted or replaced"),
            StoreError::WriteFailing(why) => Some(why),
            StoreError::Database(sqlx::Error::Database(db))
                if db
                    .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
                    .is_some() =>
            {
                // SQLSTATE classes: 53 insufficient resources (53100: disk
                // full), 08 connection exception, 57P admin shutdown.
                let code = db.code()?;
                match &code[..2] {
                    "53" => Some("the database server is out of resources (disk, memory)"),
                    "08" | "57" => Some("the database server does not answer"),
                    _ => None,
                }
            }
            StoreError::Database(sqlx::Error::Database(db)) => {
                // SQLite's extended result codes carry the primary code in
                // their low byte.
                let code = db.code()?.parse::<i32>().ok()? & 0xff;
                match code {
                    5 | 6 => Some("the database is locked"),
                    8 => Some("the database is read-only"),
                    10 => Some("an I/O error on the database"),
                    13 => Some("the disk holding the database is full"),
                    14 => Some("the database file cannot be opened"),
                    _ => None,
                }
            }
            StoreError::Database(sqlx::Error::PoolTimedOut | sqlx::Error::Io(_)) => {
                Some("the database does not answer")
            }
            _ => None,
        }
    }
}

/// The storage handle the app passes down: one backend seen through each
/// of its traits. Every method is safe to call again after a failure:
/// completing a delivery whose lease was lost changes nothing.
#[derive(Clone)]
pub struct Storage {
    /// Crises, their audit trail, and the transition write.
    pub crises: Arc<dyn CrisisStore>,
    pub idempotency: Arc<dyn IdempotencyStore>,
    pub source_links: Arc<dyn SourceLinkStore>,
    /// Opt-outs.
    pub consent: Arc<dyn ConsentStore>,
    /// Streamed plans: batches of renditions and deliveries.
    pub plans: Arc<dyn PlanStore>,
    /// What the dispatcher claims, and its "work due" signal.
    pub queue: Arc<dyn DeliveryQueue>,
    pub dead_letters: Arc<dyn DeadLetterStore>,
    pub follow_ups: Arc<dyn FollowUpStore>,
    /// The intake's webhook log, seen deliveries and pending incidents.
    pub hooks: Arc<dyn HookStore>,
    /// Counts and health, for the API, metrics and the supervisor.
    pub ledger: Arc<dyn Ledger>,
    /// Console accounts, their sessions and the account audit trail.
    pub accounts: Arc<dyn AccountStore>,
    /// Which daemon leads, among those sharing the store.
    pub leader: Arc<dyn LeaderStore>,
    /// Console drafts waiting for a second person.
    pub submissions: Arc<dyn SubmissionStore>,
    /// Rate limits and pauses shared by the daemons on the store.
    pub flow: Arc<dyn FlowStore>,
    /// Which directory entries are marked unavailable.
    pub directory: Arc<dyn DirectoryStore>,
    /// Corrections of messages sent in error.
    pub corrections: Arc<dyn CorrectionStore>,
    /// Old rows pruned (by the leader).
    pub retention: Arc<dyn RetentionStore>,
    /// Delivery receipts and the addresses hard bounces marked bad.
    pub receipts: Arc<dyn ReceiptStore>,
    /// Messages held for a reader's next contact point.
    pub fallbacks: Arc<dyn FallbackStore>,
    /// Readers' answers to questions, and the callback list.
    pub answers: Arc<dyn AnswerStore>,
}

impl Storage {
    /// One backend, which implements every storage trait, seen through each.
    pub fn new<B>(backend: B) -> Self
    where
        B: CrisisStore
            + IdempotencyStore
            + SourceLinkStore
            + ConsentStore
            + PlanStore
            + DeliveryQueue
            + DeadLetterStore
            + FollowUpStore
            + HookStore
            + Ledger
            + AccountStore
            + LeaderStore
            + SubmissionStore
            + FlowStore
            + DirectoryStore
            + CorrectionStore
            + RetentionStore
            + ReceiptStore
            + FallbackStore
            + AnswerStore,
    {
        let backend = Arc::new(backend);
        Self {
            crises: backend.clone(),
            idempotency: backend.clone(),
            source_links: backend.clone(),
            consent: backend.clone(),
            plans: backend.clone(),
            queue: backend.clone(),
            dead_letters: backend.clone(),
            follow_ups: backend.clone(),
            hooks: backend.clone(),
            ledger: backend.clone(),
            accounts: backend.clone(),
            leader: backend.clone(),
            submissions: backend.clone(),
            flow: backend.clone(),
            directory: backend.clone(),
            corrections: backend.clone(),
            retention: backend.clone(),
            receipts: backend.clone(),
            fallbacks: backend.clone(),
            answers: backend,
        }
    }
}
