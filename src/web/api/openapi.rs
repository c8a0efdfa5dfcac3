pub async fn document() -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({}))
}
