//! `GET /v1/snapshot`: a consistent backup of the whole store.

use axum::body::Body;
use axum::extract::State;
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::IntoResponse;

use super::index_header;
use crate::backup;
use crate::error::ApiResult;
use crate::node::SharedNode;
use crate::params::Params;

/// Streams the state at one revision (linearizable by default) in the backup envelope.
pub async fn snapshot(
    State(node): State<SharedNode>,
    params: Params,
) -> ApiResult<impl IntoResponse> {
    let meta = node.read(&params).await?;
    let (revision, bytes) = {
        let state = node.state();
        (state.revision(), state.snapshot())
    };
    let file = backup::encode(revision, &bytes);
    Ok((
        meta,
        index_header(revision),
        [
            (CONTENT_TYPE, "application/octet-stream".to_owned()),
            (
                CONTENT_DISPOSITION,
                format!("attachment; filename=\"concord-{revision}.backup\""),
            ),
        ],
        Body::from(file),
    ))
}
