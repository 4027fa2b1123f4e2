//! WatchInvites: events streamed from the event log as the sequencer numbers
//! them, filtered, each with the cursor that resumes right after it.
//!
//! Implementation notes: each watcher is a task that reads a page of the log
//! after its position, holding a connection only for that read, and puts
//! the events into a bounded buffer the transport drains; with the page read,
//! it waits for the sequencer, a poll, the shutdown or the client leaving.
//! A client that leaves the buffer full past the send timeout is ended with
//! the cursor of the last event buffered, which it still receives first: a
//! slow client costs at most one buffer, and resuming loses nothing.

use std::{sync::Arc, time::Duration};

use tokio::sync::{
    mpsc::{self, OwnedPermit, error::SendTimeoutError},
    watch,
};
use tracing::Instrument as _;
use uuid::Uuid;

use super::Invites;
use crate::{
    domain::{Caller, Cursor, RawWatchRequest, WatchQuery},
    error::{Error, Result},
    outbox::{
        self,
        sequencer::{self, LogGrowth},
    },
    store::{self, LogFilter, LoggedEvent, Store},
};

/// Events a watcher may have waiting for its client.
const WATCH_BUFFER: usize = 256;
/// Rows read from the log at a time.
const PAGE: u64 = 100;
/// Catches events numbered by another replica's sequencer.
const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// What every watcher shares: the sequencer's news, the shutdown, the bound
/// on a client's slowness.
#[derive(Clone)]
pub struct Watchers {
    growth: LogGrowth,
    stopping: Arc<watch::Sender<bool>>,
    send_timeout: Duration,
}

impl Default for Watchers {
    fn default() -> Self {
        Self::new(LogGrowth::default(), Duration::from_secs(5))
    }
}

impl Watchers {
    pub fn new(growth: LogGrowth, send_timeout: Duration) -> Self {
        Self {
            growth,
            stopping: Arc::new(watch::Sender::new(false)),
            send_timeout,
        }
    }

    /// Ends every stream (shutdown): each with the cursor to resume from.
    pub fn stop_all(&self) {
        self.stopping.send_replace(true);
    }
}

/// One event for the client.
#[derive(Debug)]
pub struct WatchedEvent {
    pub id: Uuid,
    /// The encoded `InviteEvent`, as stored: it never holds a token.
    pub payload: Vec<u8>,
    pub cursor: Cursor,
}

/// Why a stream ended, with the cursor of the last event buffered for it.
#[derive(Debug)]
pub enum WatchEnd {
    TooSlow { cursor: Cursor },
    ShuttingDown { cursor: Cursor },
    Failed { error: Error, cursor: Cursor },
}

pub type WatchItem = Result<WatchedEvent, WatchEnd>;

impl Invites {
    /// Checks the request and who asks, fixes where the stream starts, and
    /// starts feeding it. Errors here are the call's answer; later ones end
    /// the stream as a [`WatchEnd`].
    #[tracing::instrument(skip_all)]
    pub async fn watch(
        &self,
        caller: &Caller,
        raw: RawWatchRequest,
    ) -> Result<mpsc::Receiver<WatchItem>> {
        let query = WatchQuery::parse(raw)?;
        query.ensure_watchable_by(caller)?;
        let start = match query.cursor {
            Some(cursor) => cursor,
            None => Cursor::after(sequencer::catch_up(&self.store, &self.watchers.growth).await?),
        };
        // One place more than the buffer, kept for the stream's last word.
        let (events, received) = mpsc::channel(WATCH_BUFFER + 1);
        let last_word = events
            .clone()
            .try_reserve_owned()
            .expect("a new channel has room");
        let filter = LogFilter {
            target: query
                .target
                .map(|(t, i)| (t.as_str().to_owned(), i.as_str().to_owned())),
            kinds: query.kinds,
        };
        let feed = Feed {
            store: self.store.clone(),
            growth: self.watchers.growth.subscribe(),
            stopping: self.watchers.stopping.subscribe(),
            send_timeout: self.watchers.send_timeout,
            filter,
            events,
            read: start.log_position(),
            buffered: start,
        };
        tokio::spawn(feed.run(last_word).in_current_span());
        Ok(received)
    }
}

struct Feed {
    store: Store,
    growth: watch::Receiver<u64>,
    stopping: watch::Receiver<bool>,
    send_timeout: Duration,
    filter: LogFilter,
    events: mpsc::Sender<WatchItem>,
    /// The log position read up to (filtered-out rows included).
    read: i64,
    /// The cursor of the last event put in the buffer.
    buffered: Cursor,
}

/// How a page went.
enum Fed {
    /// A full page: read on at once.
    More,
    /// Caught up: wait for news.
    CaughtUp,
    Ended(Option<WatchEnd>),
}

impl Feed {
    async fn run(mut self, last_word: OwnedPermit<WatchItem>) {
        let end = self.feed().await;
        tracing::debug!(?end, cursor = self.buffered.encode(), "watch stream ended");
        if let Some(end) = end {
            last_word.send(Err(end));
        }
    }

    /// Feeds until the stream must end; None when the client went away.
    async fn feed(&mut self) -> Option<WatchEnd> {
        loop {
            if *self.stopping.borrow() {
                return Some(WatchEnd::ShuttingDown {
                    cursor: self.buffered,
                });
            }
            match self.feed_page().await {
                Fed::More => continue,
                Fed::Ended(end) => return end,
                Fed::CaughtUp => {}
            }
            tokio::select! {
                // Never closed while the server runs; if it were, the poll goes on.
                Ok(()) = self.growth.changed() => {}
                () = tokio::time::sleep(POLL_INTERVAL) => {}
                // Shutdown: the check at the top of the loop ends the stream;
                // a closed channel would mean the same.
                changed = self.stopping.changed() => if changed.is_err() {
                    return Some(WatchEnd::ShuttingDown { cursor: self.buffered });
                },
                () = self.events.closed() => return None,
            }
        }
    }

    async fn feed_page(&mut self) -> Fed {
        let page = match self.read_page().await {
            Ok(page) => page,
            Err(error) => {
                return Fed::Ended(Some(WatchEnd::Failed {
                    error,
                    cursor: self.buffered,
                }));
            }
        };
        let full = page.len() as u64 == PAGE;
        for row in page {
            self.read = row.log_position;
            if !self.wanted(&row) {
                continue;
            }
            let cursor = Cursor::after(row.log_position);
            let event = WatchedEvent {
                id: row.id,
                payload: row.payload,
                cursor,
            };
            match self.events.send_timeout(Ok(event), self.send_timeout).await {
                Ok(()) => self.buffered = cursor,
                Err(SendTimeoutError::Timeout(_)) => {
                    return Fed::Ended(Some(WatchEnd::TooSlow {
                        cursor: self.buffered,
                    }));
                }
                Err(SendTimeoutError::Closed(_)) => return Fed::Ended(None),
            }
        }
        if full { Fed::More } else { Fed::CaughtUp }
    }

    async fn read_page(&self) -> Result<Vec<LoggedEvent>> {
        store::read_log(self.store.conn()?, &self.filter, self.read, PAGE).await
    }

    /// The query chose by every column; a row without a target column (from
    /// a replica of an earlier version) is decided by its payload.
    fn wanted(&self, row: &LoggedEvent) -> bool {
        let Some((target_type, target_id)) = &self.filter.target else {
            return true;
        };
        match (&row.target_type, &row.target_id) {
            (Some(t), Some(i)) => t == target_type && i == target_id,
            _ => outbox::recorded_target(&row.payload)
                .is_some_and(|(t, i)| t == *target_type && i == *target_id),
        }
    }
}
