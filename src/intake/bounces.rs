//! Bounces from a Maildir: the relay delivers the DSNs it gets back for
//! our VERP return paths into `[receipts] maildir`; every
//! `maildir_interval` each message in `new/` is read, its receipt
//! recorded on the delivery its return path names, and the file moved to
//! `cur/` (flag `S` once recorded, `F` when it was no DSN of ours, so an
//! operator can find those). A file is only moved after its receipt is
//! committed: a store failure leaves it in `new/` for the next round, so
//! no bounce is lost. Moving is a rename, so daemons sharing one Maildir
//! read each file at most once; reading one twice records nothing new.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::dsn::{self, Dsn, Verdict};
use crate::channels::ReturnPath;
use crate::clock::Clock;
use crate::config::Settings;
use crate::domain::DeliveryId;
use crate::domain::consent::ContactPoint;
use crate::outbox::{DeliveryReceipt, ReceiptKey, ReceiptState, ReceiptStore, Recorded};

/// Largest message read; a DSN is a few kilobytes, and one carrying the
/// whole returned message rarely more than a megabyte or two.
const MAX_MESSAGE_BYTES: u64 = 8 * 1024 * 1024;

/// What became of one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    /// Its receipt was recorded (or changed nothing: a repeat, a final
    /// state already there, an id no longer known).
    Recorded,
    /// Not a DSN, or not for one of our return paths.
    NotOurs,
}

pub struct BounceReader {
    maildir: PathBuf,
    every: Duration,
    return_paths: Vec<ReturnPath>,
    mark_bad: bool,
    receipts: Arc<dyn ReceiptStore>,
    clock: Arc<dyn Clock>,
}

impl BounceReader {
    /// The reader `[receipts] maildir` asks for, if any. The return paths
    /// were checked by `prepare`; one that cannot be read now is left out.
    pub fn new(
        settings: &Settings,
        receipts: Arc<dyn ReceiptStore>,
        clock: Arc<dyn Clock>,
    ) -> Option<Self> {
        let maildir = settings.receipts.maildir.clone()?;
        let return_paths = settings
            .channels
            .email
            .iter()
            .filter_map(|email| ReturnPath::of(email).ok().flatten())
            .collect();
        Some(Self {
            maildir,
            every: settings.receipts.maildir_interval,
            return_paths,
            mark_bad: settings.receipts.mark_bad_on_hard_bounce,
            receipts,
            clock,
        })
    }

    pub async fn run(self, stop: CancellationToken) {
        for sub in ["new", "cur", "tmp"] {
            if let Err(err) = tokio::fs::create_dir_all(self.maildir.join(sub)).await {
                warn!(maildir = %self.maildir.display(), error = %err, "Cannot create the bounce Maildir; bounces are not read.");
                return;
            }
        }
        let mut ticks = tokio::time::interval(self.every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = ticks.tick() => {}
            }
            if let Err(err) = self.read_new(&stop).await {
                warn!(maildir = %self.maildir.display(), error = %err, "Could not read the bounce Maildir; trying again at the next round.");
            }
        }
    }

    /// Reads every message now in `new/`, oldest name first; stops at the
    /// first store failure (the rest wait for the next round).
    pub async fn read_new(&self, stop: &CancellationToken) -> Result<usize, BounceError> {
        let new = self.maildir.join("new");
        let mut names = Vec::new();
        let mut entries = tokio::fs::read_dir(&new).await?;
        while let Some(entry) = entries.next_entry().await? {
            let name = entry.file_name().to_string_lossy().into_owned();
            // Maildir readers skip dot files; `tmp/` holds the unfinished.
            if !name.starts_with('.') && entry.file_type().await?.is_file() {
                names.push(name);
            }
        }
        names.sort();
        let mut read = 0;
        for name in names {
            if stop.is_cancelled() {
                break;
            }
            let path = new.join(&name);
            let outcome = match self.read_file(&path).await {
                Ok(outcome) => outcome,
                // Taken by another reader meanwhile.
                Err(BounceError::Io(err)) if err.kind() == std::io::ErrorKind::NotFound => continue,
                Err(err) => return Err(err),
            };
            let flag = match outcome {
                Read::Recorded => "S",
                Read::NotOurs => "F",
            };
            let done = self.maildir.join("cur").join(format!("{name}:2,{flag}"));
            match tokio::fs::rename(&path, &done).await {
                Ok(()) => read += 1,
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                Err(err) => return Err(err.into()),
            }
        }
        Ok(read)
    }

    async fn read_file(&self, path: &Path) -> Result<Read, BounceError> {
        let size = tokio::fs::metadata(path).await?.len();
        if size > MAX_MESSAGE_BYTES {
            warn!(file = %path.display(), size, "A message in the bounce Maildir is too large to be a bounce; moved aside unread.");
            return Ok(Read::NotOurs);
        }
        let raw = tokio::fs::read(path).await?;
        let dsn = match dsn::parse(&raw) {
            Ok(dsn) => dsn,
            Err(err) => {
                warn!(file = %path.display(), error = %err, "A message in the bounce Maildir is no bounce we can read; moved to cur/ flagged.");
                return Ok(Read::NotOurs);
            }
        };
        let Some((channel, delivery)) = self.delivery_of(&dsn) else {
            warn!(file = %path.display(), to = ?dsn.addressed_to, "A bounce names no return path of ours (or its token is not ours); moved to cur/ flagged.");
            return Ok(Read::NotOurs);
        };
        let Some(receipt) = self.receipt(&dsn, delivery) else {
            return Ok(Read::Recorded);
        };
        match self.receipts.record_receipt(&receipt).await? {
            Recorded::Changed { delivery, .. } => {
                info!(channel = %channel, delivery = %delivery, state = %receipt.state, hard = receipt.hard,
                    reason = receipt.reason.as_deref().unwrap_or_default(), "Recorded a bounce.");
            }
            Recorded::Unchanged { delivery } => {
                info!(channel = %channel, delivery = %delivery, "A late or repeated bounce changed nothing: the delivery already has a final receipt.");
            }
            Recorded::Unknown => {
                warn!(channel = %channel, delivery = %delivery, "Ignored a bounce for no known delivery.");
            }
        }
        Ok(Read::Recorded)
    }

    /// The delivery the DSN's return path (or envelope id) names, with
    /// its channel, if a token of ours signed it.
    fn delivery_of(&self, dsn: &Dsn) -> Option<(String, DeliveryId)> {
        self.return_paths.iter().find_map(|path| {
            let by_address = dsn
                .addressed_to
                .iter()
                .find_map(|address| path.delivery_in(address));
            let by_envid = || {
                dsn.envelope_id
                    .as_deref()
                    .and_then(|id| path.delivery_of_token(id))
            };
            let id = by_address.or_else(by_envid)?.parse().ok()?;
            Some((path.channel.clone(), id))
        })
    }

    /// The receipt the DSN's first recipient with an outcome gives (our
    /// messages have one recipient each); none when it only relayed.
    fn receipt(&self, dsn: &Dsn, delivery: DeliveryId) -> Option<DeliveryReceipt> {
        let (recipient, verdict) = dsn
            .recipients
            .iter()
            .map(|r| (r, r.verdict()))
            .find(|(_, v)| *v != Verdict::NoOutcome)?;
        let (state, hard) = match verdict {
            Verdict::Delivered => (ReceiptState::Delivered, false),
            Verdict::HardBounce => (ReceiptState::Bounced, true),
            Verdict::SoftBounce => (ReceiptState::Bounced, false),
            Verdict::NoOutcome => return None,
        };
        Some(DeliveryReceipt {
            key: ReceiptKey::Delivery(delivery),
            state,
            hard,
            reason: (verdict != Verdict::Delivered).then(|| recipient.reason()),
            at: self.clock.now(),
            mark_bad: (self.mark_bad && hard).then_some(ContactPoint::Email),
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BounceError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Store(#[from] crate::outbox::StoreError),
}
