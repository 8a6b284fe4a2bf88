//! The OpenAPI 3 document of the node's HTTP API, served at `/openapi.json`.

use axum::Json;
use serde_json::Value;

pub async fn document() -> Json<Value> {
    Json(
        serde_json::json!({ "openapi": "3.0.3", "info": { "title": "yiwang node API", "version": env!("CARGO_PKG_VERSION") }, "paths": {} }),
    )
}
