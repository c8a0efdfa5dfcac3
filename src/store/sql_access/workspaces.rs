//! Workspaces looked up by id, and all of them.

use super::*;

pub(super) async fn workspace_by_id(s: &SqlStore, id: &str) -> StoreResult<Option<Workspace>> {
    let row = sqlx::query(&format!("SELECT {WS_COLS} FROM workspaces WHERE id = $1"))
        .bind(id)
        .fetch_optional(s.read())
        .await?;
    row.as_ref()
        .map(workspace_from)
        .transpose()
        .map_err(StoreError::from)
}

pub(super) async fn list_workspaces(s: &SqlStore) -> StoreResult<Vec<Workspace>> {
    let rows = sqlx::query(&format!("SELECT {WS_COLS} FROM workspaces ORDER BY slug"))
        .fetch_all(s.read())
        .await?;
    rows.iter()
        .map(|r| workspace_from(r).map_err(StoreError::from))
        .collect()
}
