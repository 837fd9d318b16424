//! A double-submitted action is answered once.

use super::auth::bearer;
use super::*;

/// Answers identical actions (a double-submitted POST) within
/// [`DEDUP_WINDOW`] once. Reads always go through: a GET right after a
/// change sees it.
pub(super) async fn answer_once(AxState(app): AxState<App>, req: Request, next: Next) -> Response {
    if matches!(
        *req.method(),
        axum::http::Method::GET | axum::http::Method::HEAD
    ) {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let Ok(body) = axum::body::to_bytes(body, MAX_BODY).await else {
        return ApiError(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request body too large".into(),
        )
        .into_response();
    };
    let mut h = blake3::Hasher::new();
    h.update(bearer(&parts.headers).unwrap_or("").as_bytes());
    h.update(b"\0");
    h.update(parts.method.as_str().as_bytes());
    h.update(b"\0");
    h.update(parts.uri.to_string().as_bytes());
    h.update(b"\0");
    h.update(&body);
    let key = h.finalize();
    {
        let mut recent = app
            .recent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        recent.retain(|_, (at, _, _)| at.elapsed() < DEDUP_WINDOW);
        if let Some((_, status, bytes)) = recent.get(&key) {
            let mut r = Response::new(Body::from(bytes.clone()));
            *r.status_mut() = *status;
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            r.headers_mut()
                .insert("x-custos-repeated", HeaderValue::from_static("1"));
            return r;
        }
    }
    let resp = next.run(Request::from_parts(parts, Body::from(body))).await;
    let (parts, body) = resp.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return ApiError(
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannot buffer the response".into(),
        )
        .into_response();
    };
    app.recent
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .insert(key, (Instant::now(), parts.status, bytes.clone()));
    Response::from_parts(parts, Body::from(bytes))
}
