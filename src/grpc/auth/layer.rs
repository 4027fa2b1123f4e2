//! Authenticates each call before the service sees it, and puts the
//! [`Caller`](crate::domain::Caller) into the request's extensions.
//!
//! Implementation notes: a tonic interceptor would be simpler, but it cannot
//! wait; this can, so a token signed with a key just added to the JWKS is
//! accepted on its first call (after a refetch) instead of being refused.

use std::{
    convert::Infallible,
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use hyper::http;
use tonic::{Status, server::NamedService};
use tower_service::Service;

use super::{AuthError, Authenticator};

/// `inner`, behind bearer-token authentication.
#[derive(Clone)]
pub struct Authenticated<S> {
    inner: S,
    authenticator: Authenticator,
}

impl<S> Authenticated<S> {
    pub fn new(inner: S, authenticator: Authenticator) -> Self {
        Self {
            inner,
            authenticator,
        }
    }
}

type Body = tonic::body::Body;

impl<S, B> Service<http::Request<B>> for Authenticated<S>
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
        let authenticator = self.authenticator.clone();
        let header = bearer_header(&request);
        Box::pin(async move {
            let caller = match header {
                Ok(header) => authenticator.authenticate_fresh(header.as_deref()).await,
                Err(refused) => Err(refused),
            };
            match caller {
                Ok(caller) => {
                    // The call's log line names who made it (an id, never an email).
                    tracing::Span::current().record("caller", caller.user_id.as_str());
                    request.extensions_mut().insert(caller);
                    inner.call(request).await
                }
                Err(refused) => Ok(Status::from(refused).into_http()),
            }
        })
    }
}

/// The `authorization` header, copied out so that the request's body need
/// not be shared across the wait.
fn bearer_header<B>(request: &http::Request<B>) -> Result<Option<String>, AuthError> {
    request
        .headers()
        .get(http::header::AUTHORIZATION)
        .map(|value| {
            value
                .to_str()
                .map(str::to_owned)
                .map_err(|_| AuthError::Malformed)
        })
        .transpose()
}

impl<S: NamedService> NamedService for Authenticated<S> {
    const NAME: &'static str = S::NAME;
}
