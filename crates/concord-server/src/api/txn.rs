//! `POST /v1/txn`: compares, then one branch, atomically.

use axum::Json;
use axum::extract::State;
use axum::response::IntoResponse;
use base64::Engine;
use concord_api::txn::{
    Compare as ApiCompare, CompareTarget, TxnOp as ApiOp, TxnOpResult, TxnRequest, TxnResponse,
};
use concord_api::validate;
use concord_state::{Command, Compare, CompareValue, Outcome, TxnOp, TxnOpOutcome};

use super::index_header;
use super::kv::{check_value_size, item};
use super::registry::unexpected;
use crate::error::{ApiError, ApiResult};
use crate::node::{Node, SharedNode};
use crate::params::JsonBody;

/// Most compares, and most operations per branch, in one transaction.
pub const MAX_TXN_OPS: usize = 128;

/// `POST /v1/txn`
pub async fn txn(
    State(node): State<SharedNode>,
    JsonBody(req): JsonBody<TxnRequest>,
) -> ApiResult<impl IntoResponse> {
    let cmd = to_command(&node, req)?;
    match node.write(cmd).await? {
        Outcome::Txn {
            revision,
            succeeded,
            results,
        } => {
            let results = results.into_iter().map(to_result).collect();
            Ok((
                index_header(revision),
                Json(TxnResponse {
                    revision,
                    succeeded,
                    results,
                }),
            ))
        }
        other => Err(unexpected(other)),
    }
}

fn to_command(node: &Node, req: TxnRequest) -> ApiResult<Command> {
    for (name, len) in [
        ("compare", req.compare.len()),
        ("success", req.success.len()),
        ("failure", req.failure.len()),
    ] {
        if len > MAX_TXN_OPS {
            return Err(ApiError::invalid(
                name,
                format!("{name} has {len} entries; at most {MAX_TXN_OPS} are allowed"),
            ));
        }
    }
    let compare = req
        .compare
        .into_iter()
        .enumerate()
        .map(|(i, c)| to_compare(i, c))
        .collect::<ApiResult<_>>()?;
    let success = to_ops(node, "success", req.success)?;
    let failure = to_ops(node, "failure", req.failure)?;
    Ok(Command::Txn {
        compare,
        success,
        failure,
    })
}

fn to_compare(i: usize, c: ApiCompare) -> ApiResult<Compare> {
    let field = format!("compare[{i}]");
    validate::key(&c.key).map_err(|e| ApiError::invalid(&format!("{field}.key"), e.message))?;
    let value = match c.target {
        CompareTarget::Value => match c.value {
            serde_json::Value::String(s) => CompareValue::Bytes(s.into_bytes()),
            _ => {
                return Err(ApiError::invalid(
                    &format!("{field}.value"),
                    "for target \"value\" the compare value must be a string",
                ));
            }
        },
        _ => match c.value.as_u64() {
            Some(n) => CompareValue::Number(n),
            None => {
                return Err(ApiError::invalid(
                    &format!("{field}.value"),
                    "for targets version, create_revision and mod_revision the compare value must be a non-negative integer",
                ));
            }
        },
    };
    Ok(Compare {
        key: c.key,
        target: c.target,
        op: c.op,
        value,
    })
}

fn to_ops(node: &Node, branch: &str, ops: Vec<ApiOp>) -> ApiResult<Vec<TxnOp>> {
    ops.into_iter()
        .enumerate()
        .map(|(i, op)| {
            let field = format!("{branch}[{i}]");
            let key_err =
                |e: validate::Invalid| ApiError::invalid(&format!("{field}.key"), e.message);
            Ok(match op {
                ApiOp::Put(p) => {
                    validate::key(&p.key).map_err(key_err)?;
                    let value = match (p.value, p.value_base64) {
                        (Some(v), None) => v.into_bytes(),
                        (None, Some(b)) => base64::engine::general_purpose::STANDARD
                            .decode(b)
                            .map_err(|e| {
                                ApiError::invalid(
                                    &format!("{field}.value_base64"),
                                    format!("value_base64 is not valid base64: {e}"),
                                )
                            })?,
                        (None, None) => Vec::new(),
                        (Some(_), Some(_)) => {
                            return Err(ApiError::invalid(
                                &format!("{field}.value"),
                                "give value or value_base64, not both",
                            ));
                        }
                    };
                    check_value_size(node, value.len())?;
                    let lease = p
                        .lease
                        .map(|l| Node::parse_lease(&format!("{field}.lease"), &l))
                        .transpose()?;
                    TxnOp::Put {
                        key: p.key,
                        value,
                        lease,
                    }
                }
                ApiOp::Get(g) => {
                    validate::key(&g.key).map_err(key_err)?;
                    TxnOp::Get { key: g.key }
                }
                ApiOp::Delete(d) => {
                    validate::key(&d.key).map_err(key_err)?;
                    TxnOp::Delete {
                        key: d.key,
                        prefix: d.prefix,
                    }
                }
            })
        })
        .collect()
}

fn to_result(r: TxnOpOutcome) -> TxnOpResult {
    match r {
        TxnOpOutcome::Put { key } => TxnOpResult::Put { key },
        TxnOpOutcome::Get { key, entry } => {
            let item = entry.as_ref().map(|e| item(&key, e));
            TxnOpResult::Get { key, item }
        }
        TxnOpOutcome::Delete { key, deleted } => TxnOpResult::Delete { key, deleted },
    }
}
