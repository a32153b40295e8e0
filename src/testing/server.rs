//! The running mock provider: its accept loop, its connections and their
//! shutdown.

use std::future::{poll_fn, Future};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;
use std::{fmt, io};

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};
use tracing::{debug, warn};

use super::builder::MockProviderBuilder;
use super::handler::{self, ProviderState};
use super::report::MockReport;

/// Pause after a failed `accept`, so that a persistent error such as running
/// out of file descriptors does not spin the accept loop.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(10);

/// A strict mock API provider serving HTTP/1.1 on `127.0.0.1`, which judges
/// whether its clients stay within each credential's [`RateLimit`].
///
/// Start one with [`MockProvider::builder`]. The [module documentation]
/// describes the endpoint and how requests are counted.
///
/// Dropping the provider aborts the server task, which closes the listener
/// and every open connection without waiting for requests in flight. Use
/// [`MockProvider::shutdown`] to let them finish.
///
/// [`RateLimit`]: crate::RateLimit
/// [module documentation]: super
pub struct MockProvider {
    addr: SocketAddr,
    state: Arc<ProviderState>,
    /// Sends the graceful shutdown signal, and closes when the provider drops.
    stop: Option<oneshot::Sender<()>>,
    /// The accept loop, which owns the listener and every connection task.
    task: Option<JoinHandle<()>>,
}

impl MockProvider {
    /// Returns a builder with no credentials, the default record count and
    /// the default latency.
    pub fn builder() -> MockProviderBuilder {
        MockProviderBuilder::default()
    }

    /// Spawns the accept loop on the current tokio runtime.
    pub(crate) fn spawn(listener: TcpListener, state: Arc<ProviderState>) -> io::Result<Self> {
        let addr = listener.local_addr()?;
        let (stop, stop_signal) = oneshot::channel();
        let task = tokio::spawn(serve(listener, addr, Arc::clone(&state), stop_signal));
        debug!(%addr, "mock provider started");
        Ok(Self {
            addr,
            state,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// Returns the socket address the provider listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Returns the base URL of the provider, `http://127.0.0.1:PORT`, without
    /// a trailing slash.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Takes a snapshot of the bookkeeping of every credential.
    pub fn report(&self) -> MockReport {
        self.state.report()
    }

    /// Stops accepting connections, then waits until every request in flight
    /// has got its response and every connection has closed.
    ///
    /// Idle keep-alive connections close at once. A connection in the middle
    /// of a request closes after that request's response.
    ///
    /// # Cancel safety
    ///
    /// Dropping the returned future before its first poll aborts the server
    /// like dropping the provider. Dropping it later leaves the graceful
    /// shutdown running in the background until it finishes.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            // A send error means the accept loop has already ended.
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            if let Err(error) = task.await {
                warn!(addr = %self.addr, %error, "mock provider task failed during shutdown");
            }
        }
    }
}

impl Drop for MockProvider {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            debug!(addr = %self.addr, "mock provider dropped, server task aborted");
        }
    }
}

impl fmt::Debug for MockProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MockProvider")
            .field("addr", &self.addr)
            .field("running", &self.task.is_some())
            .field("state", &self.state)
            .finish()
    }
}

/// Accepts connections until the stop signal arrives or its sender drops,
/// then shuts the open connections down gracefully.
async fn serve(
    listener: TcpListener,
    addr: SocketAddr,
    state: Arc<ProviderState>,
    mut stop_signal: oneshot::Receiver<()>,
) {
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();

    loop {
        // Finished connection tasks are reaped here, so that a long test does
        // not accumulate their results.
        while connections.try_join_next().is_some() {}

        let event = poll_fn(|cx| {
            // The signal resolves with an error when the sender drops, which
            // is also a reason to stop. The loop exits as soon as the signal is
            // ready, so it is never polled again after completion.
            if Pin::new(&mut stop_signal).poll(cx).is_ready() {
                return Poll::Ready(None);
            }
            listener.poll_accept(cx).map(Some)
        })
        .await;

        match event {
            None => break,
            Some(Ok((stream, peer))) => {
                let connection = serve_connection(stream, Arc::clone(&state), &graceful);
                connections.spawn(async move {
                    if let Err(error) = connection.await {
                        debug!(%peer, %error, "mock provider connection ended with an error");
                    }
                });
            }
            Some(Err(error)) => {
                warn!(%addr, %error, "mock provider failed to accept a connection");
                tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
            }
        }
    }

    drop(listener);
    debug!(
        %addr,
        open = graceful.count(),
        "mock provider stopped accepting connections"
    );
    graceful.shutdown().await;
    while connections.join_next().await.is_some() {}
    debug!(%addr, "mock provider stopped");
}

/// Wraps one accepted TCP stream into an HTTP/1.1 connection that
/// `graceful` can shut down.
fn serve_connection(
    stream: TcpStream,
    state: Arc<ProviderState>,
    graceful: &GracefulShutdown,
) -> impl Future<Output = hyper::Result<()>> + Send + 'static {
    let service = service_fn(move |request| handler::handle(Arc::clone(&state), request));
    let connection = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    graceful.watch(connection)
}
