//! Open311 GeoReport v2 (JSON) at `/open311/v2`.

use super::ApiState;
use axum::Router;

pub fn routes() -> Router<ApiState> {
    Router::new()
}
