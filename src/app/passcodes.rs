//! Slow passcode work, bounded: argon2 takes ~19 MiB and a core per run, so
//! runs take turns (one per core), a short queue waits for a turn, and a call
//! past the queue is refused at once instead of piling up.

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::{
    domain::{Passcode, PasscodeHash},
    error::{Error, Result},
};

/// Calls that may wait for a turn, per core, before more are refused.
pub const WAITING_PER_CORE: usize = 8;

#[derive(Clone)]
pub(super) struct PasscodeWork {
    running: Arc<Semaphore>,
    admitted: Arc<Semaphore>,
    verifications: Arc<AtomicU64>,
}

/// A turn at passcode work; held, no other run takes its core.
pub(super) struct Turn {
    _admitted: OwnedSemaphorePermit,
    _running: OwnedSemaphorePermit,
}

impl PasscodeWork {
    pub fn new(cores: usize) -> Self {
        Self {
            running: Arc::new(Semaphore::new(cores)),
            admitted: Arc::new(Semaphore::new(cores * (WAITING_PER_CORE + 1))),
            verifications: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Waits for a turn, or refuses at once when the queue is full.
    pub async fn turn(&self) -> Result<Turn> {
        let admitted =
            self.admitted
                .clone()
                .try_acquire_owned()
                .map_err(|_| Error::Overloaded {
                    message: "too many passcode checks are waiting; retry shortly",
                    reason: "PASSCODE_BUSY",
                })?;
        let running = self
            .running
            .clone()
            .acquire_owned()
            .await
            .map_err(|err| anyhow::Error::new(err).context("passcode work"))?;
        Ok(Turn {
            _admitted: admitted,
            _running: running,
        })
    }

    pub async fn hash(&self, passcode: Passcode) -> Result<PasscodeHash> {
        let turn = self.turn().await?;
        run(&turn, move || passcode.hash()).await
    }

    pub async fn verify(&self, turn: &Turn, hash: PasscodeHash, given: String) -> Result<bool> {
        self.verifications.fetch_add(1, Ordering::Relaxed);
        run(turn, move || hash.verify(&given)).await
    }

    pub fn verifications(&self) -> u64 {
        self.verifications.load(Ordering::Relaxed)
    }
}

/// Runs the job off the async workers, on the turn's core.
async fn run<T: Send + 'static>(
    _turn: &Turn,
    job: impl FnOnce() -> T + Send + 'static,
) -> Result<T> {
    Ok(tokio::task::spawn_blocking(job)
        .await
        .map_err(|err| anyhow::Error::new(err).context("passcode work"))?)
}
