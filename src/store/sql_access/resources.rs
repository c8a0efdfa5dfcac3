//! Resources that resource-scoped roles refer to.

use super::*;

fn resource_from(r: &AnyRow) -> StoreResult<Resource> {
    let labels: String = r.try_get("labels")?;
    Ok(Resource {
        id: r.try_get("id")?,
        kind: r.try_get("kind")?,
        name: r.try_get("name")?,
        labels: json_list(&labels),
    })
}

pub(super) async fn put_resource(
    s: &SqlStore,
    workspace_id: &str,
    r: &Resource,
    now: i64,
) -> StoreResult<()> {
    s.exec_write(sqlx::query(
        "INSERT INTO resources (workspace_id, id, kind, name, labels, created_at) VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (workspace_id, id) DO UPDATE SET kind = excluded.kind, name = excluded.name, labels = excluded.labels",
    )
    .bind(workspace_id)
    .bind(&r.id)
    .bind(&r.kind)
    .bind(&r.name)
    .bind(to_json(&r.labels)?)
    .bind(now)
    , None)
    .await?;
    Ok(())
}

pub(super) async fn get_resource(
    s: &SqlStore,
    workspace_id: &str,
    id: &str,
) -> StoreResult<Option<Resource>> {
    let row = sqlx::query(
        "SELECT id, kind, name, labels FROM resources WHERE workspace_id = $1 AND id = $2",
    )
    .bind(workspace_id)
    .bind(id)
    .fetch_optional(s.read())
    .await?;
    row.as_ref().map(resource_from).transpose()
}

pub(super) async fn list_resources(s: &SqlStore, workspace_id: &str) -> StoreResult<Vec<Resource>> {
    let rows = sqlx::query(
        "SELECT id, kind, name, labels FROM resources WHERE workspace_id = $1 ORDER BY id",
    )
    .bind(workspace_id)
    .fetch_all(s.read())
    .await?;
    rows.iter().map(resource_from).collect()
}

pub(super) async fn delete_resource(s: &SqlStore, workspace_id: &str, id: &str) -> StoreResult<()> {
    s.write_one(
        sqlx::query("DELETE FROM resources WHERE workspace_id = $1 AND id = $2")
            .bind(workspace_id)
            .bind(id),
    )
    .await
}
