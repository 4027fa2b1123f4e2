//! Every InviteService call passes here first: it is given a request id,
//! bounded (concurrent calls, a deadline), and, once answered, counted,
//! timed and logged as one line with its method, code, reason, latency,
//! caller, invite id and request id. Health and reflection stay outside, so
//! an overloaded server still answers its probes.
//!
//! Streams (WatchInvites) last as long as their client wants: they take no
//! place among the concurrent calls but one among the watchers, a bound of
//! their own, and the deadline bounds only the start of their answer.

mod record;

use std::{
    convert::Infallible,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use hyper::http::{self, HeaderValue};
use prost::Message as _;
use tokio::{sync::Semaphore, time::Instant};
use tonic::{Status, server::NamedService};
use tower_service::Service;
use tracing::{Instrument as _, field::Empty};

pub use self::record::DryRunMark;
use self::record::{CallRecord, ObservedBody, Slot, status_in};
use crate::{error::Error, metrics::Metrics, pb, telemetry::RequestId};

const REQUEST_ID_HEADER: &str = "x-request-id";
/// The label of a path that names no method of the service.
const UNKNOWN_METHOD: &str = "unknown";

/// The bounds every call is held to.
#[derive(Clone)]
pub struct CallBounds {
    permits: Arc<Semaphore>,
    watchers: Arc<Semaphore>,
    deadline: Duration,
}

impl CallBounds {
    /// As many streams as calls, until [`Self::with_max_watchers`] says.
    pub fn new(max_concurrent: usize, deadline: Duration) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(max_concurrent)),
            watchers: Arc::new(Semaphore::new(max_concurrent)),
            deadline,
        }
    }

    pub fn with_max_watchers(self, max_watchers: usize) -> Self {
        Self {
            watchers: Arc::new(Semaphore::new(max_watchers)),
            ..self
        }
    }

    /// A place for the call under its cap, if one is free.
    fn take(&self, streams: bool, metrics: &Metrics) -> Option<Slot> {
        if streams {
            let permit = self.watchers.clone().try_acquire_owned().ok()?;
            Some(Slot::stream(permit, metrics.open_watchers.clone()))
        } else {
            let permit = self.permits.clone().try_acquire_owned().ok()?;
            Some(Slot::call(permit))
        }
    }
}

/// `inner`, behind the bounds, the metrics and the log line.
#[derive(Clone)]
pub struct Calls<S> {
    inner: S,
    bounds: CallBounds,
    metrics: Metrics,
    methods: Arc<[Arc<str>]>,
    streaming: Arc<[String]>,
}

impl<S> Calls<S> {
    pub fn new(inner: S, bounds: CallBounds, metrics: Metrics) -> Self {
        Self {
            inner,
            bounds,
            metrics,
            methods: method_names().into_iter().map(Arc::from).collect(),
            streaming: streaming_method_names().into(),
        }
    }

    /// The method a path names (`/invites.v1.InviteService/GetInvite`), from
    /// the service's own list: a made-up path never becomes a label.
    fn method_of(&self, path: &str) -> Arc<str> {
        let name = path.rsplit('/').next().unwrap_or_default();
        self.methods
            .iter()
            .find(|known| ***known == *name)
            .cloned()
            .unwrap_or_else(|| Arc::from(UNKNOWN_METHOD))
    }
}

/// The InviteService's RPC names, read from the compiled proto.
pub fn method_names() -> Vec<String> {
    methods(|_| true)
}

/// The RPCs that answer with a stream (WatchInvites), from the proto too.
fn streaming_method_names() -> Vec<String> {
    methods(|method| method.server_streaming())
}

fn methods(which: impl Fn(&prost_types::MethodDescriptorProto) -> bool) -> Vec<String> {
    let files = prost_types::FileDescriptorSet::decode(pb::FILE_DESCRIPTOR_SET)
        .expect("the compiled descriptor set decodes");
    let service = pb::invite_service_server::SERVICE_NAME;
    files
        .file
        .iter()
        .flat_map(|file| {
            file.service
                .iter()
                .filter(move |s| format!("{}.{}", file.package(), s.name()) == service)
        })
        .flat_map(|s| {
            s.method
                .iter()
                .filter(|m| which(m))
                .map(|m| m.name().to_owned())
        })
        .collect()
}

type Body = tonic::body::Body;

impl<S, B> Service<http::Request<B>> for Calls<S>
where
    S: Service<http::Request<B>, Response = http::Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        // The clone that was made ready is the one that serves this call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let method = self.method_of(request.uri().path());
        let streams = self.streaming.iter().any(|name| **name == *method);
        let request_id = RequestId::from_caller(
            request
                .headers()
                .get(REQUEST_ID_HEADER)
                .map(HeaderValue::as_bytes),
        );
        let span = tracing::info_span!(
            "call",
            method = &*method,
            request_id = request_id.as_str(),
            caller = Empty,
            invite_id = Empty,
            // Set on dry runs, which answer like the real call but write nothing.
            validate_only = Empty,
        );
        // A client's shorter `grpc-timeout` is enforced around this, by tonic.
        let deadline = self.bounds.deadline;
        let dry_run = DryRunMark::default();
        request.extensions_mut().insert(dry_run.clone());
        let mut record = CallRecord {
            method,
            started: Instant::now(),
            span: span.clone(),
            metrics: self.metrics.clone(),
            dry_run,
            slot: None,
            finished: false,
        };
        let bounds = self.bounds.clone();
        let metrics = self.metrics.clone();
        let id_header = HeaderValue::from_str(request_id.as_str()).ok();
        let answer = async move {
            let response = match bounds.take(streams, &metrics) {
                Some(slot) => {
                    record.slot = Some(slot);
                    // For a stream: until its first headers, not its end.
                    let served = request_id.scope(inner.call(request));
                    match tokio::time::timeout(deadline, served).await {
                        Ok(Ok(response)) => response,
                        Err(_) => past_deadline(deadline),
                    }
                }
                None if streams => too_many_watchers(),
                None => overloaded(),
            };
            Ok(observe(response, record, id_header))
        };
        Box::pin(answer.instrument(span))
    }
}

/// Finishes the record now if the answer carries its status in the headers,
/// else when the body's trailers pass; returns the request id to the caller.
fn observe(
    response: http::Response<Body>,
    record: CallRecord,
    request_id: Option<HeaderValue>,
) -> http::Response<Body> {
    let (parts, body) = response.into_parts();
    let (mut parts, body) = match status_in(&parts.headers) {
        Some(status) if is_too_large(&status) => {
            let status = too_large();
            record.finish(&status);
            status.into_http::<Body>().into_parts()
        }
        Some(status) => {
            record.finish(&status);
            (parts, body)
        }
        None => (parts, Body::new(ObservedBody::new(body, record))),
    };
    if let Some(id) = request_id {
        parts.headers.insert(REQUEST_ID_HEADER, id);
    }
    http::Response::from_parts(parts, body)
}

/// tonic refuses a message past `--max-request-size` as OUT_OF_RANGE with
/// no details; this service never answers OUT_OF_RANGE itself, and every
/// status of its own carries a reason.
fn is_too_large(status: &Status) -> bool {
    status.code() == tonic::Code::OutOfRange && status.details().is_empty()
}

/// RESOURCE_EXHAUSTED, as gRPC's guide to status codes says for a message
/// over the limit, with a reason like every other refusal.
fn too_large() -> Status {
    Status::from(Error::Overloaded {
        message: "the request is larger than the server accepts (--max-request-size)",
        reason: "REQUEST_TOO_LARGE",
    })
}

fn overloaded() -> http::Response<Body> {
    Status::from(Error::Overloaded {
        message: "the server is serving as many calls as it may at once \
                  (--max-concurrent-calls); retry shortly",
        reason: "OVERLOADED",
    })
    .into_http()
}

fn too_many_watchers() -> http::Response<Body> {
    Status::from(Error::Overloaded {
        message: "the server is serving as many WatchInvites streams as it may at once \
                  (--max-watchers); retry shortly, with your last cursor",
        reason: "TOO_MANY_WATCHERS",
    })
    .into_http()
}

fn past_deadline(deadline: Duration) -> http::Response<Body> {
    Status::deadline_exceeded(format!(
        "the call did not finish within its deadline ({} ms)",
        deadline.as_millis()
    ))
    .into_http()
}

impl<S: NamedService> NamedService for Calls<S> {
    const NAME: &'static str = S::NAME;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rpc_of_the_service_is_a_known_method() {
        let names = method_names();
        for rpc in ["CreateInvite", "AcceptInvite", "ListInviteEvents"] {
            assert!(names.iter().any(|n| n == rpc), "{rpc} in {names:?}");
        }
    }

    #[test]
    fn only_watch_invites_streams() {
        assert_eq!(streaming_method_names(), ["WatchInvites"]);
    }

    #[test]
    fn a_path_naming_no_rpc_is_labelled_unknown() {
        let calls = Calls::new(
            (),
            CallBounds::new(1, Duration::from_secs(1)),
            Metrics::new(&[]),
        );

        assert_eq!(
            &*calls.method_of("/invites.v1.InviteService/GetInvite"),
            "GetInvite"
        );
        assert_eq!(
            &*calls.method_of("/invites.v1.InviteService/Mine"),
            UNKNOWN_METHOD
        );
        assert_eq!(&*calls.method_of("/"), UNKNOWN_METHOD);
    }
}
