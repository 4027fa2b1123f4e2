//! A call's record: finished exactly once, when its status is known (the
//! trailers, or a status in the headers), or as CANCELLED when it is
//! dropped unanswered (the client went away, or its `grpc-timeout` passed
//! and tonic ended the call); then counted, timed and logged as one line.

use std::{
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll},
};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use hyper::http::HeaderMap;
use prometheus::IntGauge;
use tokio::{sync::OwnedSemaphorePermit, time::Instant};
use tonic::{Code, Status};
use tonic_types::StatusExt as _;
use tracing::Span;

use crate::metrics::{Metrics, code_name};

/// Put in each request's extensions; a handler marks its call a dry run
/// (`validate_only`), so that the record counts it apart.
#[derive(Clone, Default)]
pub struct DryRunMark(Arc<AtomicBool>);

impl DryRunMark {
    pub fn mark(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    fn is_marked(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

pub(super) struct CallRecord {
    pub method: Arc<str>,
    pub started: Instant,
    pub span: Span,
    pub metrics: Metrics,
    pub dry_run: DryRunMark,
    /// Held until the answer is sent: the call counts against its cap until then.
    pub slot: Option<Slot>,
    pub finished: bool,
}

impl CallRecord {
    /// Counts the call and writes its line, with the status's reason when
    /// the service gave one.
    pub fn finish(mut self, status: &Status) {
        self.write(status);
    }

    fn write(&mut self, status: &Status) {
        if std::mem::replace(&mut self.finished, true) {
            return;
        }
        let seconds = self.started.elapsed().as_secs_f64();
        let code = status.code();
        let dry_run = self.dry_run.is_marked();
        self.metrics
            .call_handled(&self.method, code, seconds, dry_run);
        let reason = status.get_details_error_info().map(|info| info.reason);
        if code == Code::ResourceExhausted {
            self.metrics
                .throttled(reason.as_deref().unwrap_or_default());
        }
        // Microsecond precision reads better than a float's every digit.
        let latency_ms = (seconds * 1e6).round() / 1e3;
        let code = code_name(code);
        macro_rules! line {
            ($level:ident) => {
                tracing::$level!(parent: &self.span, code, reason = reason.as_deref(), latency_ms, "call")
            };
        }
        match status.code() {
            Code::Ok => line!(info),
            Code::Internal | Code::Unknown | Code::DataLoss => line!(error),
            Code::Unavailable | Code::DeadlineExceeded => line!(warn),
            // The caller's doing: refusals, not failures.
            _ => line!(info),
        }
        self.slot = None;
    }
}

/// A call's place under its cap; a stream's also counts in the gauge of
/// open watchers while it lasts.
pub(super) struct Slot {
    _permit: OwnedSemaphorePermit,
    open_streams: Option<IntGauge>,
}

impl Slot {
    pub fn call(permit: OwnedSemaphorePermit) -> Self {
        Self {
            _permit: permit,
            open_streams: None,
        }
    }

    pub fn stream(permit: OwnedSemaphorePermit, open_streams: IntGauge) -> Self {
        open_streams.inc();
        Self {
            _permit: permit,
            open_streams: Some(open_streams),
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(gauge) = &self.open_streams {
            gauge.dec();
        }
    }
}

impl Drop for CallRecord {
    fn drop(&mut self) {
        self.write(&Status::cancelled(
            "ended before it was answered: the client went away or its deadline passed",
        ));
    }
}

/// The status a response carries in its headers (a trailers-only answer,
/// which is how errors are sent), if any.
pub(super) fn status_in(headers: &HeaderMap) -> Option<Status> {
    Status::from_header_map(headers)
}

/// The answer's body, passed through untouched, watching for its trailers.
pub(super) struct ObservedBody {
    inner: tonic::body::Body,
    record: Option<CallRecord>,
}

impl ObservedBody {
    pub fn new(inner: tonic::body::Body, record: CallRecord) -> Self {
        Self {
            inner,
            record: Some(record),
        }
    }

    fn finish(&mut self, status: &Status) {
        if let Some(record) = self.record.take() {
            record.finish(status);
        }
    }
}

impl http_body::Body for ObservedBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(status) = frame.trailers_ref().and_then(status_in) {
                    self.finish(&status);
                }
            }
            Poll::Ready(Some(Err(status))) => self.finish(status),
            Poll::Ready(None) => self.finish(&Status::unknown("the answer ended without a status")),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for ObservedBody {
    fn drop(&mut self) {
        self.finish(&Status::cancelled(
            "the client went away before the answer ended",
        ));
    }
}
