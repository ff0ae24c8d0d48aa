//! Who uses a SQLite store: the daemon holds an exclusive `flock` on
//! `<file>.lock` beside it for as long as it runs (the kernel lets go when
//! the process ends, however it ends), so `crisisd store copy` can tell a
//! store in use from one at rest, and a second daemon on the same file is
//! refused. SQLite's own locks are held only during a transaction, so they
//! cannot say whether a daemon is running.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use rustix::fs::{FlockOperation, flock};

use crate::outbox::StoreError;

/// The lock on a SQLite store, held while the value lives.
#[derive(Debug)]
pub struct InUse {
    _file: File,
}

/// The lock file of the store at `path`.
pub fn lock_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

impl InUse {
    /// Takes the store at `path` for this process, or says who holds it.
    pub fn take(path: &Path) -> Result<Self, StoreError> {
        let lock = lock_path(path);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock)
            .map_err(|source| StoreError::Lock {
                path: lock.clone(),
                source,
            })?;
        flock(&file, FlockOperation::NonBlockingLockExclusive)
            .map_err(|_| StoreError::InUse(path.to_path_buf()))?;
        Ok(Self { _file: file })
    }
}
