//! The endpoints of the mock provider and its JSON responses.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{json, Value};

/// Number of records per page when a request sets no `limit`.
pub const DEFAULT_PAGE_SIZE: usize = 10;

/// Maximum number of records per page. A larger `limit` is lowered to it.
pub const MAX_PAGE_SIZE: usize = 100;

/// Builds the response to an accepted request for a key with `record_count`
/// records.
pub(crate) fn route<B>(request: &Request<B>, record_count: usize) -> Response<Full<Bytes>> {
    if request.uri().path() != "/records" {
        return error_response(StatusCode::NOT_FOUND, "not_found", "no such endpoint");
    }
    if request.method() != Method::GET {
        let mut response = error_response(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "/records only accepts GET",
        );
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET"));
        return response;
    }

    match PageRequest::parse(request.uri().query(), record_count) {
        Ok(page) => json_response(StatusCode::OK, &page.render(record_count)),
        Err(message) => error_response(StatusCode::BAD_REQUEST, "invalid_request", &message),
    }
}

/// The query of `GET /records?cursor=C&limit=L`, checked against the key's
/// records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PageRequest {
    /// Index of the first record of the page. The cursor on the wire is this
    /// index as a decimal string.
    start: usize,
    size: usize,
}

impl PageRequest {
    /// Parses the query string, ignoring parameters other than `cursor` and
    /// `limit`, or returns an error message that names the invalid value.
    fn parse(query: Option<&str>, record_count: usize) -> Result<Self, String> {
        let mut page = Self {
            start: 0,
            size: DEFAULT_PAGE_SIZE,
        };

        let pairs = query
            .unwrap_or("")
            .split('&')
            .filter(|pair| !pair.is_empty());
        for pair in pairs {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            match name {
                "cursor" => page.start = parse_cursor(value, record_count)?,
                "limit" => page.size = parse_limit(value)?,
                _ => {}
            }
        }
        Ok(page)
    }

    /// Renders the page as `{"records": [{"id": N}, ...], "next_cursor": C}`,
    /// where record ids run from 1 to `record_count` and `next_cursor` is null
    /// on the last page.
    fn render(self, record_count: usize) -> Value {
        let end = self.start.saturating_add(self.size).min(record_count);
        let records: Vec<Value> = (self.start..end)
            .map(|index| json!({ "id": index + 1 }))
            .collect();
        let next_cursor = (end < record_count).then(|| end.to_string());
        json!({ "records": records, "next_cursor": next_cursor })
    }
}

/// Parses a cursor: a record index from 0 to `record_count`, where
/// `record_count` yields an empty last page.
fn parse_cursor(value: &str, record_count: usize) -> Result<usize, String> {
    match value.parse::<usize>() {
        Ok(start) if start <= record_count => Ok(start),
        _ => Err(format!(
            "invalid cursor {value:?}: use a next_cursor value from an earlier page"
        )),
    }
}

/// Parses a page size of at least 1, lowering it to [`MAX_PAGE_SIZE`].
fn parse_limit(value: &str) -> Result<usize, String> {
    match value.parse::<u64>() {
        Ok(0) | Err(_) => Err(format!(
            "invalid limit {value:?}: use a whole number from 1 to {MAX_PAGE_SIZE}"
        )),
        Ok(size) => Ok(usize::try_from(size)
            .unwrap_or(MAX_PAGE_SIZE)
            .min(MAX_PAGE_SIZE)),
    }
}

/// Builds an error response with the body `{"error": CODE, "message": TEXT}`.
pub(crate) fn error_response(
    status: StatusCode,
    code: &str,
    message: &str,
) -> Response<Full<Bytes>> {
    json_response(status, &json!({ "error": code, "message": message }))
}

/// Builds a response with a JSON body and its `Content-Type`.
fn json_response(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}
