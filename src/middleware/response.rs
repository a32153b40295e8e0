//! Rebuilding a reqwest response around a body that holds the permit.

use reqwest::{Body, Response, ResponseBuilderExt};

use crate::tower::ResponseBody;
use crate::Permit;

/// Returns `response` with its body wrapped so that `permit` drops when the
/// body has been read to the end, has failed, or has been dropped.
///
/// The status, version, headers, extensions (such as the remote address)
/// and URL carry over. `Body::wrap` needs reqwest 0.12.8, and the content
/// length carries over through the body's size hint from reqwest 0.12.10.
pub(crate) fn hold_until_body_end(response: Response, permit: Permit) -> Response {
    let url = response.url().clone();
    let response: http::Response<Body> = response.into();
    let (mut parts, body) = response.into_parts();

    // reqwest keeps the URL in a private extension that only
    // `ResponseBuilderExt::url` can set; without it the rebuilt response
    // reports a placeholder URL.
    if let Ok(carrier) = http::Response::builder().url(url).body(()) {
        parts.extensions.extend(carrier.into_parts().0.extensions);
    }

    let body = Body::wrap(ResponseBody::new(body, Some(permit)));
    Response::from(http::Response::from_parts(parts, body))
}
