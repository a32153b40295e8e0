//! Test helpers shared by the tower and reqwest-middleware tests: an HTTP
//! server on loopback that streams slow response bodies and counts how many
//! responses are open at once.

use std::convert::Infallible;
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::Response;
use http_body::{Body, Frame};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio::time::{Instant, Sleep};

/// Chunks that each streamed response body sends, one per [`CHUNK_EVERY`].
pub(crate) const CHUNKS: usize = 5;
pub(crate) const CHUNK_EVERY: Duration = Duration::from_millis(100);

/// Counts the server's responses whose body has not finished.
#[derive(Debug, Default)]
pub(crate) struct OpenResponses {
    open: AtomicUsize,
    peak: AtomicUsize,
    served: AtomicUsize,
}

impl OpenResponses {
    fn enter(self: &Arc<Self>) -> OpenGuard {
        let open = self.open.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(open, Ordering::SeqCst);
        self.served.fetch_add(1, Ordering::SeqCst);
        OpenGuard(Arc::clone(self))
    }

    pub(crate) fn peak(&self) -> usize {
        self.peak.load(Ordering::SeqCst)
    }

    pub(crate) fn served(&self) -> usize {
        self.served.load(Ordering::SeqCst)
    }
}

/// Keeps one response counted as open until it drops.
pub(crate) struct OpenGuard(Arc<OpenResponses>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A response body that sends [`CHUNKS`] chunks, one every [`CHUNK_EVERY`],
/// and stops counting its response as open once it has sent the last.
pub(crate) struct SlowBody {
    remaining: usize,
    sleep: Pin<Box<Sleep>>,
    open: Option<OpenGuard>,
}

impl Body for SlowBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.remaining == 0 {
            self.open = None;
            return Poll::Ready(None);
        }
        ready!(self.sleep.as_mut().poll(cx));
        self.remaining -= 1;
        self.sleep.as_mut().reset(Instant::now() + CHUNK_EVERY);
        Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"chunk\n")))))
    }
}

/// An HTTP/1.1 server on loopback whose responses send their headers at
/// once and stream their body for `CHUNKS * CHUNK_EVERY`.
pub(crate) struct StreamServer {
    pub addr: SocketAddr,
    pub responses: Arc<OpenResponses>,
    pub task: JoinHandle<()>,
}

impl StreamServer {
    pub(crate) async fn start() -> Self {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("the stream server binds");
        let addr = listener.local_addr().expect("the listener has an address");
        let responses = Arc::new(OpenResponses::default());
        let task = tokio::spawn(accept_loop(listener, Arc::clone(&responses)));
        Self {
            addr,
            responses,
            task,
        }
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}/stream", self.addr)
    }
}

impl Drop for StreamServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept_loop(listener: TcpListener, responses: Arc<OpenResponses>) {
    while let Ok((stream, _)) = listener.accept().await {
        let responses = Arc::clone(&responses);
        let service = hyper::service::service_fn(move |_request| {
            let body = SlowBody {
                remaining: CHUNKS,
                sleep: Box::pin(tokio::time::sleep(CHUNK_EVERY)),
                open: Some(responses.enter()),
            };
            async move { Ok::<_, Infallible>(Response::new(body)) }
        });
        tokio::spawn(async move {
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            // A client that closes its connection early is not a test failure.
            let _ = connection.await;
        });
    }
}
