//! The SCIM half of the store (SPEC section 9): what a workspace's SCIM
//! client asserted about users and groups, on top of the accounts,
//! memberships and user groups the rest of the gateway uses.
//!
//! A workspace's SCIM users are its members plus the users its SCIM client
//! knows but deactivated; a SCIM user is active exactly while the membership
//! exists. Its SCIM groups are its user groups. Every SCIM write bumps a
//! version (the resource's ETag) and takes an expected version, so writes are
//! compare-and-swap: [`Written::Stale`] when someone else wrote first.

use super::sql::{exec_one, insert_user, map_err, policies_text, SqlStore};
use super::sql_access::{bind_all, ensure_owner_left, like_escape, lock_workspace, Bind};
use super::{NewUser, StoreError, StoreResult};
use crate::domain::model::{normalize_email, Group};
use crate::domain::roles::Policy;
use async_trait::async_trait;
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

/// A text column a user filter can test in SQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextCol {
    Id,
    /// The normalised (lower-case) email: compare with normalised values.
    UserName,
    ExternalId,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextOp {
    Eq,
    /// Contains, starts with, ends with: SQL `LIKE`, which SQLite folds ASCII
    /// case for; exact only on columns holding normalised values.
    Co,
    Sw,
    Ew,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeCol {
    Created,
    LastModified,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeOp {
    Eq,
    Gt,
    Ge,
    Lt,
    Le,
}

/// A condition on a workspace's SCIM users, rendered as SQL. Every leaf is
/// two-valued (never NULL), so `Not` means what it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserCond {
    All,
    Nothing,
    And(Vec<UserCond>),
    Or(Vec<UserCond>),
    Not(Box<UserCond>),
    Text {
        col: TextCol,
        op: TextOp,
        value: String,
    },
    Present(TextCol),
    Time {
        col: TimeCol,
        op: TimeOp,
        secs: i64,
    },
    /// Whether the user is a member of the workspace.
    Member(bool),
}

/// What the SCIM client asserted about one user in one workspace.
#[derive(Debug, Clone)]
pub struct ScimUserState {
    pub external_id: Option<String>,
    /// As last sent: `None` when the client never said.
    pub active: Option<bool>,
    /// The other attributes, a JSON object as text.
    pub attributes: String,
    /// This provisioning created the account.
    pub created_user: bool,
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// One SCIM user of a workspace.
#[derive(Debug, Clone)]
pub struct ScimUserRecord {
    pub user_id: String,
    pub email: String,
    pub name: String,
    pub user_created_at: i64,
    /// When the membership began; `None`: not a member (inactive).
    pub member_since: Option<i64>,
    /// `None` for members the SCIM client never wrote to.
    pub state: Option<ScimUserState>,
}

impl ScimUserRecord {
    pub fn version(&self) -> i64 {
        self.state.as_ref().map(|s| s.version).unwrap_or(0)
    }
}

#[derive(Debug, Clone)]
pub struct NewScimUser {
    pub email: String,
    /// The account's name, used only when the account is created.
    pub name: String,
    pub external_id: Option<String>,
    pub active: Option<bool>,
    pub attributes: String,
    /// The workspace's default role, for the new membership.
    pub default_policies: Vec<Policy>,
}

#[derive(Debug, Clone)]
pub struct ScimCreated {
    pub user_id: String,
    /// A new account was made (else an existing one became a member).
    pub created_account: bool,
}

#[derive(Debug, Clone)]
pub struct ScimUserUpdate {
    pub external_id: Option<String>,
    pub active: Option<bool>,
    pub attributes: String,
    /// A new account name; applied only to accounts this provisioning created.
    pub name: Option<String>,
    /// Membership wanted after the write (`active` is not `Some(false)`).
    pub member: bool,
    pub default_policies: Vec<Policy>,
}

/// How a compare-and-swap write ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    Done {
        /// The membership was created by this write.
        activated: bool,
        /// The membership was removed by this write.
        deactivated: bool,
    },
    /// The version was not the expected one: nothing was written.
    Stale,
}

#[derive(Debug, Clone)]
pub struct ScimGroupState {
    pub external_id: Option<String>,
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone)]
pub struct ScimGroupRecord {
    pub group: Group,
    pub state: Option<ScimGroupState>,
}

impl ScimGroupRecord {
    pub fn version(&self) -> i64 {
        self.state.as_ref().map(|s| s.version).unwrap_or(0)
    }
}

#[derive(Debug, Clone)]
pub struct NewScimGroup {
    pub name: String,
    pub external_id: Option<String>,
    pub policies: Vec<Policy>,
    pub members: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct ScimGroupUpdate {
    /// A new name, if it changes.
    pub name: Option<String>,
    pub external_id: Option<String>,
    pub add: Vec<String>,
    pub remove: Vec<String>,
}

#[async_trait]
pub trait ScimStore: Send + Sync + 'static {
    /// A SCIM user of the workspace (a member, or one its client deactivated).
    async fn scim_get_user(
        &self,
        workspace_id: &str,
        user_id: &str,
    ) -> StoreResult<Option<ScimUserRecord>>;
    /// The workspace's SCIM users matching `cond`, ordered by email, the
    /// `(offset, limit)` window of them (all without one), and how many match.
    async fn scim_find_users(
        &self,
        workspace_id: &str,
        cond: &UserCond,
        window: Option<(i64, i64)>,
    ) -> StoreResult<(Vec<ScimUserRecord>, i64)>;
    /// `(user id, group id, group name)` of the workspace's group
    /// memberships, of these users (all users when `None`).
    async fn scim_group_memberships(
        &self,
        workspace_id: &str,
        user_ids: Option<&[String]>,
    ) -> StoreResult<Vec<(String, String, String)>>;
    /// Creates the account (or takes the existing one with that email,
    /// credentials untouched) and, unless `active` is false, the membership
    /// with the default role. Conflict when the email is already a SCIM user
    /// of the workspace.
    async fn scim_create_user(
        &self,
        workspace_id: &str,
        new: &NewScimUser,
        now: i64,
    ) -> StoreResult<ScimCreated>;
    /// Writes a user if its version is `expected` (0: never written by SCIM).
    /// NotFound when not a SCIM user of the workspace; Conflict when removing
    /// the membership would leave the workspace without an owner.
    async fn scim_update_user(
        &self,
        workspace_id: &str,
        user_id: &str,
        expected: Option<i64>,
        update: &ScimUserUpdate,
        now: i64,
    ) -> StoreResult<Written>;
    /// Ends the membership (and group memberships) and forgets the SCIM
    /// state; the account stays.
    async fn scim_delete_user(
        &self,
        workspace_id: &str,
        user_id: &str,
        expected: Option<i64>,
    ) -> StoreResult<Written>;

    async fn scim_list_groups(&self, workspace_id: &str) -> StoreResult<Vec<ScimGroupRecord>>;
    async fn scim_get_group(
        &self,
        workspace_id: &str,
        group_id: &str,
    ) -> StoreResult<Option<ScimGroupRecord>>;
    /// Creates a user group with its members (each must be a member of the
    /// workspace: Invalid otherwise). Conflict on a taken name.
    async fn scim_create_group(
        &self,
        workspace_id: &str,
        new: &NewScimGroup,
        now: i64,
    ) -> StoreResult<String>;
    async fn scim_update_group(
        &self,
        workspace_id: &str,
        group_id: &str,
        expected: Option<i64>,
        update: &ScimGroupUpdate,
        now: i64,
    ) -> StoreResult<Written>;
    /// Deletes a group; its members stay in the workspace.
    async fn scim_delete_group(
        &self,
        workspace_id: &str,
        group_id: &str,
        expected: Option<i64>,
    ) -> StoreResult<Written>;
}

const USER_SELECT: &str = "SELECT u.id AS id, u.email AS email, u.name AS name, u.created_at AS user_created, \
     m.created_at AS member_since, s.user_id AS scim_user, s.external_id AS external_id, s.active AS active, \
     s.attributes AS attributes, s.created_user AS created_user, s.version AS version, \
     s.created_at AS scim_created, s.updated_at AS scim_updated";

const USER_FROM: &str = "FROM users u \
     LEFT JOIN memberships m ON m.workspace_id = $1 AND m.user_id = u.id \
     LEFT JOIN scim_users s ON s.workspace_id = $1 AND s.user_id = u.id \
     WHERE (m.user_id IS NOT NULL OR s.user_id IS NOT NULL)";

fn user_record(r: &AnyRow) -> StoreResult<ScimUserRecord> {
    let scim_user: Option<String> = r.try_get("scim_user")?;
    let state = match scim_user {
        None => None,
        Some(_) => {
            let active: Option<i64> = r.try_get("active")?;
            let created_user: i64 = r.try_get("created_user")?;
            Some(ScimUserState {
                external_id: r.try_get("external_id")?,
                active: active.map(|a| a != 0),
                attributes: r.try_get("attributes")?,
                created_user: created_user != 0,
                version: r.try_get("version")?,
                created_at: r.try_get("scim_created")?,
                updated_at: r.try_get("scim_updated")?,
            })
        }
    };
    Ok(ScimUserRecord {
        user_id: r.try_get("id")?,
        email: r.try_get("email")?,
        name: r.try_get("name")?,
        user_created_at: r.try_get("user_created")?,
        member_since: r.try_get("member_since")?,
        state,
    })
}

fn text_col(c: TextCol) -> &'static str {
    match c {
        TextCol::Id => "u.id",
        TextCol::UserName => "u.email_norm",
        TextCol::ExternalId => "s.external_id",
    }
}

fn time_col(c: TimeCol) -> &'static str {
    match c {
        TimeCol::Created => "COALESCE(s.created_at, m.created_at, u.created_at)",
        TimeCol::LastModified => "COALESCE(s.updated_at, m.created_at, u.created_at)",
    }
}

/// Renders a condition, pushing its values onto `binds`.
fn render(cond: &UserCond, binds: &mut Vec<Bind>) -> String {
    match cond {
        UserCond::All => "(1 = 1)".into(),
        UserCond::Nothing => "(1 = 0)".into(),
        UserCond::And(parts) if parts.is_empty() => "(1 = 1)".into(),
        UserCond::Or(parts) if parts.is_empty() => "(1 = 0)".into(),
        UserCond::And(parts) => format!(
            "({})",
            parts
                .iter()
                .map(|p| render(p, binds))
                .collect::<Vec<_>>()
                .join(" AND ")
        ),
        UserCond::Or(parts) => format!(
            "({})",
            parts
                .iter()
                .map(|p| render(p, binds))
                .collect::<Vec<_>>()
                .join(" OR ")
        ),
        UserCond::Not(inner) => format!("(NOT {})", render(inner, binds)),
        UserCond::Present(c) => {
            let col = text_col(*c);
            format!("({col} IS NOT NULL AND {col} <> '')")
        }
        UserCond::Text { col, op, value } => {
            let col = text_col(*col);
            let (cmp, v) = match op {
                TextOp::Eq => ("=", value.clone()),
                TextOp::Co => ("LIKE", format!("%{}%", like_escape(value))),
                TextOp::Sw => ("LIKE", format!("{}%", like_escape(value))),
                TextOp::Ew => ("LIKE", format!("%{}", like_escape(value))),
            };
            binds.push(Bind::S(v));
            let escape = if cmp == "LIKE" { " ESCAPE '\\'" } else { "" };
            format!(
                "({col} IS NOT NULL AND {col} {cmp} ${}{escape})",
                binds.len()
            )
        }
        UserCond::Time { col, op, secs } => {
            let cmp = match op {
                TimeOp::Eq => "=",
                TimeOp::Gt => ">",
                TimeOp::Ge => ">=",
                TimeOp::Lt => "<",
                TimeOp::Le => "<=",
            };
            binds.push(Bind::I(*secs));
            format!("({} {cmp} ${})", time_col(*col), binds.len())
        }
        UserCond::Member(true) => "(m.user_id IS NOT NULL)".into(),
        UserCond::Member(false) => "(m.user_id IS NULL)".into(),
    }
}

/// Where the version of one kind of SCIM resource is kept: `table`, keyed
/// by workspace and `id_col`, extends a row of `base` (keyed by workspace
/// and `base_id`) that must exist.
struct Versioned {
    table: &'static str,
    id_col: &'static str,
    base: &'static str,
    base_id: &'static str,
}

/// A user's SCIM row extends their membership.
const USER_VERSION: Versioned = Versioned {
    table: "scim_users",
    id_col: "user_id",
    base: "memberships",
    base_id: "user_id",
};

/// A group's SCIM row extends the user group.
const GROUP_VERSION: Versioned = Versioned {
    table: "scim_groups",
    id_col: "group_id",
    base: "user_groups",
    base_id: "id",
};

/// Claims the next version of a SCIM row inside `tx`: Ok(true) when the row
/// (created if the resource exists without one) is now ours to write,
/// Ok(false) when `expected` is not its version, NotFound when the resource
/// does not exist.
async fn claim_version(
    tx: &mut Transaction<'_, Any>,
    kind: &Versioned,
    workspace_id: &str,
    id: &str,
    expected: Option<i64>,
    now: i64,
) -> StoreResult<bool> {
    let Versioned {
        table,
        id_col,
        base,
        base_id,
    } = kind;
    let done = sqlx::query(&format!(
        "UPDATE {table} SET version = version + 1, updated_at = $1 \
         WHERE workspace_id = $2 AND {id_col} = $3 AND ($4 < 0 OR version = $4)"
    ))
    .bind(now)
    .bind(workspace_id)
    .bind(id)
    .bind(expected.unwrap_or(-1))
    .execute(&mut **tx)
    .await?;
    if done.rows_affected() == 1 {
        return Ok(true);
    }
    let row = sqlx::query(&format!(
        "SELECT version FROM {table} WHERE workspace_id = $1 AND {id_col} = $2"
    ))
    .bind(workspace_id)
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?;
    if row.is_some() {
        return Ok(false);
    }
    let found = sqlx::query(&format!(
        "SELECT created_at FROM {base} WHERE workspace_id = $1 AND {base_id} = $2"
    ))
    .bind(workspace_id)
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?;
    let Some(found) = found else {
        return Err(StoreError::NotFound);
    };
    if expected.is_some_and(|v| v != 0) {
        return Ok(false);
    }
    let since: i64 = found.try_get("created_at")?;
    let inserted = sqlx::query(&format!(
        "INSERT INTO {table} (workspace_id, {id_col}, version, created_at, updated_at) VALUES ($1, $2, 1, $3, $4)"
    ))
    .bind(workspace_id)
    .bind(id)
    .bind(since)
    .bind(now)
    .execute(&mut **tx)
    .await;
    match inserted {
        Ok(_) => Ok(true),
        // Another writer made the row first.
        Err(e) => match map_err(e) {
            StoreError::Conflict(_) => Ok(false),
            other => Err(other),
        },
    }
}

async fn is_member(
    tx: &mut Transaction<'_, Any>,
    workspace_id: &str,
    user_id: &str,
) -> StoreResult<bool> {
    Ok(
        sqlx::query("SELECT 1 AS one FROM memberships WHERE workspace_id = $1 AND user_id = $2")
            .bind(workspace_id)
            .bind(user_id)
            .fetch_optional(&mut **tx)
            .await?
            .is_some(),
    )
}

/// Removes a membership and the group memberships that hang on it.
async fn end_membership(
    tx: &mut Transaction<'_, Any>,
    workspace_id: &str,
    user_id: &str,
) -> StoreResult<bool> {
    sqlx::query("DELETE FROM group_members WHERE workspace_id = $1 AND user_id = $2")
        .bind(workspace_id)
        .bind(user_id)
        .execute(&mut **tx)
        .await?;
    let done = sqlx::query("DELETE FROM memberships WHERE workspace_id = $1 AND user_id = $2")
        .bind(workspace_id)
        .bind(user_id)
        .execute(&mut **tx)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// Adds workspace members to a group; Invalid for anyone who is not one.
async fn add_group_members(
    tx: &mut Transaction<'_, Any>,
    workspace_id: &str,
    group_id: &str,
    user_ids: &[String],
) -> StoreResult<()> {
    for u in user_ids {
        sqlx::query(
            "INSERT INTO group_members (group_id, user_id, workspace_id) \
             SELECT $1, m.user_id, m.workspace_id FROM memberships m WHERE m.workspace_id = $2 AND m.user_id = $3 \
             ON CONFLICT (group_id, user_id) DO NOTHING",
        )
        .bind(group_id)
        .bind(workspace_id)
        .bind(u)
        .execute(&mut **tx)
        .await?;
        if !is_member(tx, workspace_id, u).await? {
            return Err(StoreError::Invalid(format!(
                "`{u}` is not an active user of this workspace"
            )));
        }
    }
    Ok(())
}

fn group_state(r: &AnyRow) -> StoreResult<Option<ScimGroupState>> {
    let version: Option<i64> = r.try_get("version")?;
    let Some(version) = version else {
        return Ok(None);
    };
    Ok(Some(ScimGroupState {
        external_id: r.try_get("external_id")?,
        version,
        created_at: r.try_get("scim_created")?,
        updated_at: r.try_get("scim_updated")?,
    }))
}

const GROUP_SELECT: &str = "SELECT g.id AS id, g.workspace_id AS workspace_id, g.name AS name, \
     g.description AS description, g.policies AS policies, g.created_at AS created_at, \
     s.external_id AS external_id, s.version AS version, s.created_at AS scim_created, s.updated_at AS scim_updated \
     FROM user_groups g LEFT JOIN scim_groups s ON s.workspace_id = g.workspace_id AND s.group_id = g.id";

fn group_record(r: &AnyRow, members: Vec<String>) -> StoreResult<ScimGroupRecord> {
    let policies: String = r.try_get("policies")?;
    Ok(ScimGroupRecord {
        group: Group {
            id: r.try_get("id")?,
            workspace_id: r.try_get("workspace_id")?,
            name: r.try_get("name")?,
            description: r.try_get("description")?,
            policies: super::sql::policies_from(&policies)?,
            member_ids: members,
            created_at: r.try_get("created_at")?,
        },
        state: group_state(r)?,
    })
}

#[async_trait]
impl ScimStore for SqlStore {
    async fn scim_get_user(
        &self,
        workspace_id: &str,
        user_id: &str,
    ) -> StoreResult<Option<ScimUserRecord>> {
        let row = sqlx::query(&format!("{USER_SELECT} {USER_FROM} AND u.id = $2"))
            .bind(workspace_id)
            .bind(user_id)
            .fetch_optional(self.read())
            .await?;
        row.as_ref().map(user_record).transpose()
    }

    async fn scim_find_users(
        &self,
        workspace_id: &str,
        cond: &UserCond,
        window: Option<(i64, i64)>,
    ) -> StoreResult<(Vec<ScimUserRecord>, i64)> {
        let mut binds = vec![Bind::S(workspace_id.to_string())];
        let filter = render(cond, &mut binds);
        let count_sql = format!("SELECT COUNT(*) AS n {USER_FROM} AND {filter}");
        let total: i64 = bind_all(sqlx::query(&count_sql), &binds)
            .fetch_one(self.read())
            .await?
            .try_get("n")?;
        let mut sql = format!("{USER_SELECT} {USER_FROM} AND {filter} ORDER BY u.email_norm, u.id");
        if let Some((offset, limit)) = window {
            if limit == 0 || offset >= total {
                return Ok((Vec::new(), total));
            }
            binds.push(Bind::I(limit));
            binds.push(Bind::I(offset));
            sql.push_str(&format!(
                " LIMIT ${} OFFSET ${}",
                binds.len() - 1,
                binds.len()
            ));
        }
        let rows = bind_all(sqlx::query(&sql), &binds)
            .fetch_all(self.read())
            .await?;
        let users = rows
            .iter()
            .map(user_record)
            .collect::<StoreResult<Vec<_>>>()?;
        Ok((users, total))
    }

    async fn scim_group_memberships(
        &self,
        workspace_id: &str,
        user_ids: Option<&[String]>,
    ) -> StoreResult<Vec<(String, String, String)>> {
        let mut binds = vec![Bind::S(workspace_id.to_string())];
        let mut sql =
            "SELECT gm.user_id AS user_id, g.id AS group_id, g.name AS name FROM group_members gm \
                       JOIN user_groups g ON g.id = gm.group_id WHERE gm.workspace_id = $1"
                .to_string();
        if let Some(ids) = user_ids {
            if ids.is_empty() {
                return Ok(Vec::new());
            }
            let mut marks = Vec::with_capacity(ids.len());
            for id in ids {
                binds.push(Bind::S(id.clone()));
                marks.push(format!("${}", binds.len()));
            }
            sql.push_str(&format!(" AND gm.user_id IN ({})", marks.join(", ")));
        }
        sql.push_str(" ORDER BY g.name, g.id");
        let rows = bind_all(sqlx::query(&sql), &binds)
            .fetch_all(self.read())
            .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("user_id")?,
                    r.try_get("group_id")?,
                    r.try_get("name")?,
                ))
            })
            .collect()
    }

    async fn scim_create_user(
        &self,
        workspace_id: &str,
        new: &NewScimUser,
        now: i64,
    ) -> StoreResult<ScimCreated> {
        let mut tx = self.begin_write().await?;
        let existing = sqlx::query("SELECT id FROM users WHERE email_norm = $1")
            .bind(normalize_email(&new.email))
            .fetch_optional(&mut *tx)
            .await?;
        let (user_id, created_account) = match existing {
            Some(r) => {
                let id: String = r.try_get("id")?;
                let known = sqlx::query(
                    "SELECT 1 AS one FROM scim_users WHERE workspace_id = $1 AND user_id = $2",
                )
                .bind(workspace_id)
                .bind(&id)
                .fetch_optional(&mut *tx)
                .await?;
                if known.is_some() || is_member(&mut tx, workspace_id, &id).await? {
                    return Err(StoreError::Conflict(
                        "a user with this userName already exists in this workspace".into(),
                    ));
                }
                (id, false)
            }
            None => {
                let user = insert_user(
                    &mut *tx,
                    &NewUser {
                        email: new.email.clone(),
                        name: new.name.clone(),
                        password_hash: None,
                    },
                    now,
                )
                .await?;
                (user.id, true)
            }
        };
        sqlx::query(
            "INSERT INTO scim_users (workspace_id, user_id, external_id, active, attributes, created_user, version, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, 1, $7, $7)",
        )
        .bind(workspace_id)
        .bind(&user_id)
        .bind(&new.external_id)
        .bind(new.active.map(i64::from))
        .bind(&new.attributes)
        .bind(i64::from(created_account))
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if new.active != Some(false) {
            super::sql::insert_member(&mut tx, workspace_id, &user_id, &new.default_policies, now)
                .await?;
        }
        let facts = serde_json::json!({"existing_account": !created_account});
        self.commit_noting(tx, Some(&user_id), Some(facts)).await?;
        Ok(ScimCreated {
            user_id,
            created_account,
        })
    }

    async fn scim_update_user(
        &self,
        workspace_id: &str,
        user_id: &str,
        expected: Option<i64>,
        update: &ScimUserUpdate,
        now: i64,
    ) -> StoreResult<Written> {
        let mut tx = self.begin_write().await?;
        if !update.member {
            // Owner counting is decided one change at a time.
            lock_workspace(&mut tx, workspace_id).await?;
        }
        if !claim_version(&mut tx, &USER_VERSION, workspace_id, user_id, expected, now).await? {
            return Ok(Written::Stale);
        }
        sqlx::query(
            "UPDATE scim_users SET external_id = $1, active = $2, attributes = $3 WHERE workspace_id = $4 AND user_id = $5",
        )
        .bind(&update.external_id)
        .bind(update.active.map(i64::from))
        .bind(&update.attributes)
        .bind(workspace_id)
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
        if let Some(name) = &update.name {
            sqlx::query(
                "UPDATE users SET name = $1 WHERE id = $2 AND EXISTS (SELECT 1 FROM scim_users s \
                 WHERE s.workspace_id = $3 AND s.user_id = $2 AND s.created_user = 1)",
            )
            .bind(name.trim())
            .bind(user_id)
            .bind(workspace_id)
            .execute(&mut *tx)
            .await?;
        }
        let member = is_member(&mut tx, workspace_id, user_id).await?;
        let (mut activated, mut deactivated) = (false, false);
        if update.member && !member {
            super::sql::insert_member(
                &mut tx,
                workspace_id,
                user_id,
                &update.default_policies,
                now,
            )
            .await?;
            activated = true;
        } else if !update.member && member {
            end_membership(&mut tx, workspace_id, user_id).await?;
            ensure_owner_left(&mut tx, workspace_id).await?;
            deactivated = true;
        }
        self.commit(tx).await?;
        Ok(Written::Done {
            activated,
            deactivated,
        })
    }

    async fn scim_delete_user(
        &self,
        workspace_id: &str,
        user_id: &str,
        expected: Option<i64>,
    ) -> StoreResult<Written> {
        let mut tx = self.begin_write().await?;
        lock_workspace(&mut tx, workspace_id).await?;
        let row =
            sqlx::query("SELECT version FROM scim_users WHERE workspace_id = $1 AND user_id = $2")
                .bind(workspace_id)
                .bind(user_id)
                .fetch_optional(&mut *tx)
                .await?;
        let version: Option<i64> = row.map(|r| r.try_get("version")).transpose()?;
        let member = is_member(&mut tx, workspace_id, user_id).await?;
        if version.is_none() && !member {
            return Err(StoreError::NotFound);
        }
        if expected.is_some_and(|e| e != version.unwrap_or(0)) {
            return Ok(Written::Stale);
        }
        let deactivated = end_membership(&mut tx, workspace_id, user_id).await?;
        sqlx::query("DELETE FROM scim_users WHERE workspace_id = $1 AND user_id = $2")
            .bind(workspace_id)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        ensure_owner_left(&mut tx, workspace_id).await?;
        let facts = serde_json::json!({"membership_removed": deactivated});
        self.commit_noting(tx, None, Some(facts)).await?;
        Ok(Written::Done {
            activated: false,
            deactivated,
        })
    }

    async fn scim_list_groups(&self, workspace_id: &str) -> StoreResult<Vec<ScimGroupRecord>> {
        let rows = sqlx::query(&format!(
            "{GROUP_SELECT} WHERE g.workspace_id = $1 ORDER BY g.name, g.id"
        ))
        .bind(workspace_id)
        .fetch_all(self.read())
        .await?;
        let members = sqlx::query(
            "SELECT group_id, user_id FROM group_members WHERE workspace_id = $1 ORDER BY group_id, user_id",
        )
        .bind(workspace_id)
        .fetch_all(self.read())
        .await?;
        let mut by_group: std::collections::HashMap<String, Vec<String>> =
            std::collections::HashMap::new();
        for m in &members {
            let g: String = m.try_get("group_id")?;
            let u: String = m.try_get("user_id")?;
            by_group.entry(g).or_default().push(u);
        }
        rows.iter()
            .map(|r| {
                let id: String = r.try_get("id")?;
                group_record(r, by_group.remove(&id).unwrap_or_default())
            })
            .collect()
    }

    async fn scim_get_group(
        &self,
        workspace_id: &str,
        group_id: &str,
    ) -> StoreResult<Option<ScimGroupRecord>> {
        let row = sqlx::query(&format!(
            "{GROUP_SELECT} WHERE g.workspace_id = $1 AND g.id = $2"
        ))
        .bind(workspace_id)
        .bind(group_id)
        .fetch_optional(self.read())
        .await?;
        let Some(row) = row else { return Ok(None) };
        let members = sqlx::query(
            "SELECT user_id FROM group_members WHERE group_id = $1 AND workspace_id = $2 ORDER BY user_id",
        )
        .bind(group_id)
        .bind(workspace_id)
        .fetch_all(self.read())
        .await?;
        let ids = members
            .iter()
            .map(|r| r.try_get("user_id"))
            .collect::<Result<Vec<String>, _>>()?;
        Ok(Some(group_record(&row, ids)?))
    }

    async fn scim_create_group(
        &self,
        workspace_id: &str,
        new: &NewScimGroup,
        now: i64,
    ) -> StoreResult<String> {
        let id = uuid::Uuid::new_v4().to_string();
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO user_groups (id, workspace_id, name, description, policies, created_at) VALUES ($1, $2, $3, '', $4, $5)",
        )
        .bind(&id)
        .bind(workspace_id)
        .bind(new.name.trim())
        .bind(policies_text(&new.policies)?)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO scim_groups (workspace_id, group_id, external_id, version, created_at, updated_at) VALUES ($1, $2, $3, 1, $4, $4)",
        )
        .bind(workspace_id)
        .bind(&id)
        .bind(&new.external_id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        add_group_members(&mut tx, workspace_id, &id, &new.members).await?;
        self.commit_created(tx, Some(&id)).await?;
        Ok(id)
    }

    async fn scim_update_group(
        &self,
        workspace_id: &str,
        group_id: &str,
        expected: Option<i64>,
        update: &ScimGroupUpdate,
        now: i64,
    ) -> StoreResult<Written> {
        let mut tx = self.begin_write().await?;
        lock_workspace(&mut tx, workspace_id).await?;
        if !claim_version(
            &mut tx,
            &GROUP_VERSION,
            workspace_id,
            group_id,
            expected,
            now,
        )
        .await?
        {
            return Ok(Written::Stale);
        }
        sqlx::query(
            "UPDATE scim_groups SET external_id = $1 WHERE workspace_id = $2 AND group_id = $3",
        )
        .bind(&update.external_id)
        .bind(workspace_id)
        .bind(group_id)
        .execute(&mut *tx)
        .await?;
        if let Some(name) = &update.name {
            exec_one(
                sqlx::query("UPDATE user_groups SET name = $1 WHERE workspace_id = $2 AND id = $3")
                    .bind(name.trim())
                    .bind(workspace_id)
                    .bind(group_id),
                &mut *tx,
            )
            .await?;
        }
        for u in &update.remove {
            sqlx::query(
                "DELETE FROM group_members WHERE workspace_id = $1 AND group_id = $2 AND user_id = $3",
            )
            .bind(workspace_id)
            .bind(group_id)
            .bind(u)
            .execute(&mut *tx)
            .await?;
        }
        add_group_members(&mut tx, workspace_id, group_id, &update.add).await?;
        if !update.remove.is_empty() {
            ensure_owner_left(&mut tx, workspace_id).await?;
        }
        self.commit(tx).await?;
        Ok(Written::Done {
            activated: false,
            deactivated: false,
        })
    }

    async fn scim_delete_group(
        &self,
        workspace_id: &str,
        group_id: &str,
        expected: Option<i64>,
    ) -> StoreResult<Written> {
        let mut tx = self.begin_write().await?;
        lock_workspace(&mut tx, workspace_id).await?;
        let row = sqlx::query(
            "SELECT s.version AS version FROM user_groups g LEFT JOIN scim_groups s \
             ON s.workspace_id = g.workspace_id AND s.group_id = g.id WHERE g.workspace_id = $1 AND g.id = $2",
        )
        .bind(workspace_id)
        .bind(group_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Err(StoreError::NotFound);
        };
        let version: Option<i64> = row.try_get("version")?;
        if expected.is_some_and(|e| e != version.unwrap_or(0)) {
            return Ok(Written::Stale);
        }
        for sql in [
            "DELETE FROM group_members WHERE workspace_id = $1 AND group_id = $2",
            "DELETE FROM scim_groups WHERE workspace_id = $1 AND group_id = $2",
            "DELETE FROM user_groups WHERE workspace_id = $1 AND id = $2",
        ] {
            sqlx::query(sql)
                .bind(workspace_id)
                .bind(group_id)
                .execute(&mut *tx)
                .await?;
        }
        ensure_owner_left(&mut tx, workspace_id).await?;
        self.commit(tx).await?;
        Ok(Written::Done {
            activated: false,
            deactivated: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_render_two_valued_sql_with_numbered_binds() {
        let mut binds = vec![Bind::S("ws".into())];
        let cond = UserCond::Or(vec![
            UserCond::Text {
                col: TextCol::UserName,
                op: TextOp::Eq,
                value: "ann@x.test".into(),
            },
            UserCond::Not(Box::new(UserCond::Text {
                col: TextCol::ExternalId,
                op: TextOp::Sw,
                value: "a_%".into(),
            })),
        ]);
        let sql = render(&cond, &mut binds);
        assert_eq!(
            sql,
            "((u.email_norm IS NOT NULL AND u.email_norm = $2) OR (NOT (s.external_id IS NOT NULL AND s.external_id LIKE $3 ESCAPE '\\')))"
        );
        assert!(matches!(&binds[2], Bind::S(s) if s == "a\\_\\%%"));
    }
}
