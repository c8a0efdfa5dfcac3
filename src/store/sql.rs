//! The SQL both backends run, through sqlx's `Any` driver. Placeholders are
//! `$N`, which SQLite and PostgreSQL both accept.

use super::*;
use crate::domain::model::normalize_email;
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The connections of one database, and which of them a statement uses.
///
/// SQLite lets one writer at a time and a transaction that starts as a
/// reader cannot wait for the write lock: so on SQLite every write (a
/// transaction or a single statement) goes through [`Db::write`], a pool of
/// one connection whose waiters are served in order, and every write
/// transaction begins `IMMEDIATE` (it takes the write lock at once and,
/// against another process such as the CLI, waits `busy_timeout` for it).
/// Reads use [`Db::read`], a pool of several connections, and run alongside
/// the writer (WAL). On PostgreSQL both are the same pool.
///
/// A SQLite file database commits through group commit (see
/// [`super::group_commit`]): a write is acknowledged only after
/// [`Db::durable`], which [`Db::commit`] and [`Db::written`] wait for.
#[derive(Clone)]
pub struct Db {
    read: AnyPool,
    write: AnyPool,
    backend: Backend,
    group: Option<Arc<super::group_commit::GroupCommit>>,
}

impl Db {
    pub fn new(read: AnyPool, write: AnyPool, backend: Backend) -> Self {
        Self {
            read,
            write,
            backend,
            group: None,
        }
    }

    /// SQLite with group commit: its writer commits without syncing and
    /// every write waits for `group`'s next sync instead.
    pub fn with_group_commit(mut self, group: super::group_commit::GroupCommit) -> Self {
        self.group = Some(Arc::new(group));
        self
    }

    /// Returns once every write committed before the call is on disk (at
    /// once where the database syncs each commit itself). Inside
    /// [`super::group_commit::one_wait`] (every HTTP request) it returns at
    /// once and the wait happens, once for all of the request's writes,
    /// before the answer goes out.
    pub async fn durable(&self) -> Result<(), sqlx::Error> {
        match &self.group {
            Some(g) if super::group_commit::defer(g) => Ok(()),
            Some(g) => g.durable().await.map_err(sqlx::Error::Io),
            None => Ok(()),
        }
    }

    /// Runs a write made directly on [`Self::write`] (a statement on its
    /// own, committed by itself) and answers once it is durable.
    pub async fn written<T, E: From<sqlx::Error>>(
        &self,
        write: impl std::future::Future<Output = Result<T, E>>,
    ) -> Result<T, E> {
        let out = write.await?;
        self.durable().await?;
        Ok(out)
    }

    /// Sync rounds of group commit so far (None without it).
    pub fn sync_rounds(&self) -> Option<u64> {
        self.group.as_ref().map(|g| g.rounds())
    }

    /// One pool for both reads and writes (PostgreSQL).
    pub fn single(pool: AnyPool, backend: Backend) -> Self {
        Self::new(pool.clone(), pool, backend)
    }

    /// For statements that only read.
    pub fn read(&self) -> &AnyPool {
        &self.read
    }

    /// For every statement that writes. A statement run on it by itself is
    /// its own transaction: wrap it in [`Self::written`] so that it is
    /// answered only once durable.
    pub fn write(&self) -> &AnyPool {
        &self.write
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Begins a write transaction (`BEGIN IMMEDIATE` on SQLite).
    ///
    /// Cancellation-safe: starting a transaction is not (a caller dropped
    /// while BEGIN is on its way leaves the connection inside a transaction
    /// that no `Transaction` will roll back, and on SQLite's one writer
    /// connection every later write then fails). So it runs in a task of
    /// its own: if the caller goes away, the task still finishes and drops
    /// the transaction, which rolls it back.
    pub async fn begin(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>, sqlx::Error> {
        let (pool, backend) = (self.write.clone(), self.backend);
        tokio::spawn(async move {
            match backend {
                Backend::Sqlite => pool.begin_with("BEGIN IMMEDIATE").await,
                Backend::Postgres => pool.begin().await,
            }
        })
        .await
        .map_err(|e| sqlx::Error::Io(std::io::Error::other(e)))?
    }

    /// Commits a transaction in a task of its own, so that a caller dropped
    /// meanwhile cannot leave it half-finished (see [`Self::begin`]), and
    /// answers once it is durable.
    pub async fn commit(
        &self,
        tx: sqlx::Transaction<'static, sqlx::Any>,
    ) -> Result<(), sqlx::Error> {
        tokio::spawn(tx.commit())
            .await
            .map_err(|e| sqlx::Error::Io(std::io::Error::other(e)))??;
        self.durable().await
    }

    pub async fn close(&self) {
        self.write.close().await;
        self.read.close().await;
    }
}

#[derive(Clone)]
pub struct SqlStore {
    db: Db,
    /// Audit events recorded on their own, written in batches.
    audit: Arc<super::audit_batch::AuditBatcher>,
    /// Whether the member list's email filter has an index to lead with
    /// (see [`super::search`]); set by [`Self::migrate`].
    email_search: Arc<std::sync::atomic::AtomicBool>,
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Maps a sqlx error onto the store's error: constraint names become
/// readable conflicts, connection trouble becomes "unavailable". `?` does
/// this through the `From` below.
pub fn map_err(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            let what = db
                .constraint()
                .map(str::to_string)
                .unwrap_or_else(|| db.message().to_string());
            StoreError::Conflict(conflict_text(&what))
        }
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Tls(_) => StoreError::Unavailable(e.to_string()),
        _ => StoreError::Other(e.to_string()),
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        map_err(e)
    }
}

/// Turns a constraint name (PostgreSQL) or message (SQLite) into what the
/// person should read.
fn conflict_text(what: &str) -> String {
    if what.contains("users_email_key") || what.contains("users.email_norm") {
        "a user with this email already exists".into()
    } else if what.contains("workspaces_slug_key") || what.contains("workspaces.slug") {
        "a workspace with this slug already exists".into()
    } else if what.contains("memberships_pkey") || what.contains("memberships.workspace_id") {
        "already a member of this workspace".into()
    } else if what.contains("user_groups_name_key") || what.contains("user_groups.name") {
        "a group with this name already exists".into()
    } else if what.contains("invitations_open_key") || what.contains("invitations.email_norm") {
        "an invitation for this email is already open".into()
    } else if what.contains("identity_links_pkey") || what.contains("identity_links.provider") {
        "this identity is already linked to a user".into()
    } else if what.contains("resources_pkey") || what.contains("resources.id") {
        "a resource with this id already exists".into()
    } else {
        "already exists".into()
    }
}

pub(crate) fn user_from(row: &AnyRow) -> Result<User, sqlx::Error> {
    Ok(User {
        id: row.try_get("id")?,
        email: row.try_get("email")?,
        name: row.try_get("name")?,
        password_hash: row.try_get("password_hash")?,
        created_at: row.try_get("created_at")?,
        last_login_at: row.try_get("last_login_at")?,
        totp_secret: row.try_get("totp_secret")?,
        totp_enabled_at: row.try_get("totp_enabled_at")?,
        totp_last_step: row.try_get("totp_last_step")?,
    })
}

pub(crate) fn workspace_from(row: &AnyRow) -> Result<Workspace, sqlx::Error> {
    workspace_from_prefixed(row, "")
}

/// A workspace whose columns were selected as `<prefix><column>` (next to
/// another table's columns of the same names).
pub(crate) fn workspace_from_prefixed(
    row: &AnyRow,
    prefix: &str,
) -> Result<Workspace, sqlx::Error> {
    // Unprefixed (every read but the join) costs no allocation.
    let col = |c: &'static str| -> std::borrow::Cow<'static, str> {
        if prefix.is_empty() {
            c.into()
        } else {
            format!("{prefix}{c}").into()
        }
    };
    let settings: String = row.try_get(&*col("settings"))?;
    Ok(Workspace {
        id: row.try_get(&*col("id"))?,
        slug: row.try_get(&*col("slug"))?,
        name: row.try_get(&*col("name"))?,
        created_at: row.try_get(&*col("created_at"))?,
        // Unknown or damaged settings fall back to the safe defaults.
        settings: serde_json::from_str(&settings).unwrap_or_default(),
    })
}

pub(crate) const WS_COLS: &str = "id, slug, name, created_at, settings";

/// `cols` (a `*_COLS` list) qualified by the table alias `table` for a
/// join, each named `<prefix><column>` when `prefix` is given.
pub(crate) fn qualified(cols: &str, table: &str, prefix: Option<&str>) -> String {
    cols.split(", ")
        .map(|c| match prefix {
            Some(p) => format!("{table}.{c} AS {p}{c}"),
            None => format!("{table}.{c}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

pub(crate) fn policies_from(text: &str) -> StoreResult<Vec<Policy>> {
    serde_json::from_str(text)
        .map_err(|e| StoreError::Other(format!("stored policies unreadable: {e}")))
}

pub(crate) fn policies_text(p: &[Policy]) -> StoreResult<String> {
    serde_json::to_string(p).map_err(|e| StoreError::Other(e.to_string()))
}

pub(crate) const USER_COLS: &str = "id, email, name, password_hash, created_at, last_login_at, totp_secret, totp_enabled_at, totp_last_step";

impl SqlStore {
    pub fn new(db: Db) -> Self {
        Self {
            db,
            audit: Arc::default(),
            email_search: Arc::default(),
        }
    }

    /// Statements that wrote audit events recorded on their own (each may
    /// hold many events: see [`super::audit_batch`]).
    pub fn audit_statements(&self) -> u64 {
        self.audit.statements()
    }

    /// Whether the email substring index is there (see [`super::search`]).
    pub(crate) fn email_search(&self) -> bool {
        self.email_search.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The connections, for the session store and the Twilio issuer.
    pub fn db(&self) -> &Db {
        &self.db
    }

    pub(crate) fn read(&self) -> &AnyPool {
        self.db.read()
    }

    pub(crate) fn write(&self) -> &AnyPool {
        self.db.write()
    }

    /// Begins a write transaction (see [`Db`]).
    pub(crate) async fn begin_write(&self) -> StoreResult<sqlx::Transaction<'static, sqlx::Any>> {
        Ok(self.db.begin().await?)
    }

    /// Commits a write transaction. The audit event of the change running
    /// in this task (see [`crate::audit::bound`]) is written in it first,
    /// so the change and its event commit together or not at all.
    pub(crate) async fn commit(
        &self,
        tx: sqlx::Transaction<'static, sqlx::Any>,
    ) -> StoreResult<()> {
        self.commit_created(tx, None).await
    }

    /// [`Self::commit`] for a change that created the row `created` (the
    /// pending event's target when it names none).
    pub(crate) async fn commit_created(
        &self,
        tx: sqlx::Transaction<'static, sqlx::Any>,
        created: Option<&str>,
    ) -> StoreResult<()> {
        self.commit_noting(tx, created, None).await
    }

    /// [`Self::commit`], completing the pending event with what the change
    /// learnt (see [`crate::audit::take_pending_for`]).
    pub(crate) async fn commit_noting(
        &self,
        mut tx: sqlx::Transaction<'static, sqlx::Any>,
        created: Option<&str>,
        facts: Option<serde_json::Value>,
    ) -> StoreResult<()> {
        if let Some(event) = crate::audit::take_pending_for(created, facts) {
            insert_audit(&mut *tx, &event).await?;
        }
        self.db.commit(tx).await?;
        Ok(())
    }

    /// One write statement; with a pending audit event (see
    /// [`crate::audit::bound`]), in a transaction with it, committed only if
    /// the statement changed a row (`created` names the row it created).
    /// Returns the number of rows changed.
    pub(crate) async fn exec_write<'q>(
        &self,
        q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
        created: Option<&str>,
    ) -> StoreResult<u64> {
        if !crate::audit::is_pending() {
            return Ok(self
                .db
                .written(q.execute(self.write()))
                .await?
                .rows_affected());
        }
        let mut tx = self.begin_write().await?;
        let changed = q.execute(&mut *tx).await?.rows_affected();
        if changed > 0 {
            self.commit_created(tx, created).await?;
        }
        Ok(changed)
    }

    /// [`Self::exec_write`] of a statement that must change a row (else
    /// NotFound).
    pub(crate) async fn write_one<'q>(
        &self,
        q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    ) -> StoreResult<()> {
        match self.exec_write(q, None).await? {
            0 => Err(StoreError::NotFound),
            _ => Ok(()),
        }
    }

    pub fn backend(&self) -> Backend {
        self.db.backend()
    }

    /// Runs the migrations, then prepares each backend's own search
    /// structures (see [`super::search`]).
    pub async fn migrate(&self) -> StoreResult<()> {
        MIGRATOR
            .run(self.write())
            .await
            .map_err(|e| StoreError::Other(format!("migration failed: {e}")))?;
        self.db.durable().await?;
        let email = super::search::prepare(&self.db).await?;
        self.email_search
            .store(email, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    pub async fn close(&self) {
        self.db.close().await
    }
}

pub(crate) async fn insert_user<'e, E>(ex: E, new: &NewUser, now: i64) -> StoreResult<User>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let user = User {
        id: uuid::Uuid::new_v4().to_string(),
        email: new.email.trim().to_string(),
        name: new.name.trim().to_string(),
        password_hash: new.password_hash.clone(),
        created_at: now,
        last_login_at: None,
        totp_secret: None,
        totp_enabled_at: None,
        totp_last_step: None,
    };
    sqlx::query("INSERT INTO users (id, email, email_norm, name, password_hash, created_at) VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(&user.id)
        .bind(&user.email)
        .bind(normalize_email(&user.email))
        .bind(&user.name)
        .bind(&user.password_hash)
        .bind(now)
        .execute(ex)
        .await?;
    Ok(user)
}

async fn insert_workspace<'e, E>(ex: E, slug: &str, name: &str, now: i64) -> StoreResult<Workspace>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let ws = Workspace {
        id: uuid::Uuid::new_v4().to_string(),
        slug: slug.to_string(),
        name: name.to_string(),
        created_at: now,
        settings: Default::default(),
    };
    sqlx::query("INSERT INTO workspaces (id, slug, name, created_at) VALUES ($1, $2, $3, $4)")
        .bind(&ws.id)
        .bind(&ws.slug)
        .bind(&ws.name)
        .bind(now)
        .execute(ex)
        .await?;
    Ok(ws)
}

/// Adds a membership, with its user's normalised email as the list's sort
/// key (`memberships.sort_email`, kept in step by `set_user_email`).
/// NotFound when there is no such user. On PostgreSQL the email is read
/// under a share lock on the user's row: an email change being committed
/// either finishes first (and this reads its new value) or waits for this
/// transaction and then updates the new membership too.
pub(crate) async fn insert_member(
    conn: &mut sqlx::AnyConnection,
    workspace_id: &str,
    user_id: &str,
    policies: &[Policy],
    now: i64,
) -> StoreResult<()> {
    let lock = if conn.backend_name() == "PostgreSQL" {
        " FOR SHARE"
    } else {
        ""
    };
    let email: String = sqlx::query(&format!("SELECT email_norm FROM users WHERE id = $1{lock}"))
        .bind(user_id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or(StoreError::NotFound)?
        .try_get("email_norm")?;
    sqlx::query(
        "INSERT INTO memberships (workspace_id, user_id, policies, created_at, sort_email) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(workspace_id)
    .bind(user_id)
    .bind(policies_text(policies)?)
    .bind(now)
    .bind(email)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub(crate) async fn insert_audit<'e, E>(ex: E, e: &AuditEvent) -> StoreResult<()>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    insert_audit_chunk(ex, std::slice::from_ref(e)).await
}

/// Rows an `INSERT` of audit events holds at most: 10 parameters a row,
/// under the 999 bound parameters older SQLite builds allow.
const AUDIT_ROWS_PER_STATEMENT: usize = 99;

/// One multi-row `INSERT` of `chunk` (at most [`AUDIT_ROWS_PER_STATEMENT`]).
async fn insert_audit_chunk<'e, E>(ex: E, chunk: &[AuditEvent]) -> StoreResult<()>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let rows = (0..chunk.len())
        .map(|r| {
            let params = (1..=10)
                .map(|c| format!("${}", r * 10 + c))
                .collect::<Vec<_>>()
                .join(", ");
            format!("({params})")
        })
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "INSERT INTO audit_events (id, workspace_id, time, actor_type, actor_id, actor_email, action, target, ip, details) \
         VALUES {rows}"
    );
    let mut q = sqlx::query(&sql);
    for e in chunk {
        q = q
            .bind(&e.id)
            .bind(&e.workspace_id)
            .bind(e.time)
            .bind(&e.actor.kind)
            .bind(&e.actor.id)
            .bind(&e.actor.email)
            .bind(&e.action)
            .bind(&e.target)
            .bind(&e.ip)
            .bind(e.details.to_string());
    }
    q.execute(ex).await?;
    Ok(())
}

/// Audit events in as few statements as the limit on bind parameters
/// allows, all or none: more than one statement's worth runs in one
/// transaction. Counts the statements in `statements`. Committed, not yet
/// durable: the caller waits for that (see [`Db::written`]).
pub(crate) async fn insert_audit_rows(
    db: &Db,
    events: &[AuditEvent],
    statements: &std::sync::atomic::AtomicU64,
) -> StoreResult<()> {
    let count = |n: usize| statements.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
    if events.len() <= AUDIT_ROWS_PER_STATEMENT {
        insert_audit_chunk(db.write(), events).await?;
        count(1);
        return Ok(());
    }
    let mut tx = db.begin().await?;
    let chunks = events.chunks(AUDIT_ROWS_PER_STATEMENT);
    let n = chunks.len();
    for chunk in chunks {
        insert_audit_chunk(&mut *tx, chunk).await?;
    }
    tx.commit().await?;
    count(n);
    Ok(())
}

/// Runs an UPDATE/DELETE that must touch exactly one row (else NotFound).
pub(crate) async fn exec_one<'e, E>(
    q: sqlx::query::Query<'e, sqlx::Any, sqlx::any::AnyArguments<'e>>,
    ex: E,
) -> StoreResult<()>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let done = q.execute(ex).await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

async fn write_recovery_codes(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    user_id: &str,
    hashes: &[String],
) -> StoreResult<()> {
    sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1")
        .bind(user_id)
        .execute(&mut **tx)
        .await?;
    for h in hashes {
        sqlx::query("INSERT INTO recovery_codes (user_id, code_hash) VALUES ($1, $2)")
            .bind(user_id)
            .bind(h)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

#[async_trait]
impl Store for SqlStore {
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1")
            .execute(self.read())
            .await
            .map_err(|e| match map_err(e) {
                StoreError::Other(m) => StoreError::Unavailable(m),
                other => other,
            })?;
        Ok(())
    }

    async fn create_user(&self, new: &NewUser, now: i64) -> StoreResult<User> {
        self.db.written(insert_user(self.write(), new, now)).await
    }

    async fn user_by_id(&self, id: &str) -> StoreResult<Option<User>> {
        let row = sqlx::query(&format!("SELECT {USER_COLS} FROM users WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.read())
            .await?;
        row.as_ref()
            .map(user_from)
            .transpose()
            .map_err(StoreError::from)
    }

    async fn user_by_email(&self, email: &str) -> StoreResult<Option<User>> {
        let row = sqlx::query(&format!(
            "SELECT {USER_COLS} FROM users WHERE email_norm = $1"
        ))
        .bind(normalize_email(email))
        .fetch_optional(self.read())
        .await?;
        row.as_ref()
            .map(user_from)
            .transpose()
            .map_err(StoreError::from)
    }

    async fn set_password_hash(&self, user_id: &str, hash: &str, now: i64) -> StoreResult<()> {
        self.write_one(
            sqlx::query(
                "UPDATE users SET password_hash = $1, password_changed_at = $2 WHERE id = $3",
            )
            .bind(hash)
            .bind(now)
            .bind(user_id),
        )
        .await
    }

    async fn set_user_name(&self, user_id: &str, name: &str) -> StoreResult<()> {
        self.write_one(
            sqlx::query("UPDATE users SET name = $1 WHERE id = $2")
                .bind(name.trim())
                .bind(user_id),
        )
        .await
    }

    async fn set_pending_totp(&self, user_id: &str, sealed_secret: &str) -> StoreResult<()> {
        self.write_one(
            sqlx::query("UPDATE users SET totp_secret = $1, totp_last_step = NULL WHERE id = $2 AND totp_enabled_at IS NULL")
                .bind(sealed_secret)
                .bind(user_id))
        .await
    }

    async fn enable_totp(
        &self,
        user_id: &str,
        now: i64,
        step: i64,
        recovery_hashes: &[String],
    ) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        exec_one(
            sqlx::query("UPDATE users SET totp_enabled_at = $1, totp_last_step = $2 WHERE id = $3 AND totp_secret IS NOT NULL")
                .bind(now)
                .bind(step)
                .bind(user_id),
            &mut *tx,
        )
        .await?;
        write_recovery_codes(&mut tx, user_id, recovery_hashes).await?;
        self.commit(tx).await
    }

    async fn disable_totp(&self, user_id: &str) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        exec_one(
            sqlx::query("UPDATE users SET totp_secret = NULL, totp_enabled_at = NULL, totp_last_step = NULL WHERE id = $1").bind(user_id),
            &mut *tx,
        )
        .await?;
        write_recovery_codes(&mut tx, user_id, &[]).await?;
        self.commit(tx).await
    }

    async fn claim_totp_step(&self, user_id: &str, step: i64) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE users SET totp_last_step = $1 WHERE id = $2 AND (totp_last_step IS NULL OR totp_last_step < $1)",
        )
        .bind(step)
        .bind(user_id)
        .execute(self.write())
        .await?;
        self.db.durable().await?;
        Ok(done.rows_affected() == 1)
    }

    async fn replace_recovery_codes(&self, user_id: &str, hashes: &[String]) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        write_recovery_codes(&mut tx, user_id, hashes).await?;
        self.commit(tx).await
    }

    async fn use_recovery_code(&self, user_id: &str, hash: &str, now: i64) -> StoreResult<bool> {
        let done = sqlx::query("UPDATE recovery_codes SET used_at = $1 WHERE user_id = $2 AND code_hash = $3 AND used_at IS NULL")
            .bind(now)
            .bind(user_id)
            .bind(hash)
            .execute(self.write())
            .await?;
        self.db.durable().await?;
        Ok(done.rows_affected() == 1)
    }

    async fn unused_recovery_codes(&self, user_id: &str) -> StoreResult<i64> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM recovery_codes WHERE user_id = $1 AND used_at IS NULL",
        )
        .bind(user_id)
        .fetch_one(self.read())
        .await?;
        row.try_get("n").map_err(StoreError::from)
    }

    async fn sso_connection_workspace(&self, connection_id: &str) -> StoreResult<Option<String>> {
        let row = sqlx::query("SELECT workspace_id FROM sso_connections WHERE id = $1")
            .bind(connection_id)
            .fetch_optional(self.read())
            .await?;
        row.map(|r| r.try_get("workspace_id"))
            .transpose()
            .map_err(StoreError::from)
    }

    async fn set_workspace_settings(
        &self,
        workspace_id: &str,
        settings: &WorkspaceSettings,
    ) -> StoreResult<()> {
        let text = serde_json::to_string(settings).map_err(|e| StoreError::Other(e.to_string()))?;
        self.write_one(
            sqlx::query("UPDATE workspaces SET settings = $1 WHERE id = $2")
                .bind(text)
                .bind(workspace_id),
        )
        .await
    }

    async fn swap_workspace_settings(
        &self,
        workspace_id: &str,
        before: &WorkspaceSettings,
        after: &WorkspaceSettings,
    ) -> StoreResult<bool> {
        // The stored text is compared as read (not as `before` would be
        // written now), so older or differently ordered documents swap too.
        let stored: Option<String> =
            sqlx::query_scalar("SELECT settings FROM workspaces WHERE id = $1")
                .bind(workspace_id)
                .fetch_optional(self.write())
                .await?;
        let Some(stored) = stored else {
            return Err(StoreError::NotFound);
        };
        let parsed: WorkspaceSettings = serde_json::from_str(&stored).unwrap_or_default();
        if parsed != *before {
            return Ok(false);
        }
        let text = serde_json::to_string(after).map_err(|e| StoreError::Other(e.to_string()))?;
        let swap =
            sqlx::query("UPDATE workspaces SET settings = $1 WHERE id = $2 AND settings = $3")
                .bind(text)
                .bind(workspace_id)
                .bind(stored);
        Ok(self.exec_write(swap, None).await? == 1)
    }

    async fn record_audit(&self, e: &AuditEvent) -> StoreResult<()> {
        self.db.written(self.audit.record(&self.db, e)).await
    }

    async fn enqueue_mail(&self, m: &OutboxMail) -> StoreResult<()> {
        sqlx::query("INSERT INTO outbox (id, to_addr, subject, body, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(&m.id)
            .bind(&m.to)
            .bind(&m.subject)
            .bind(&m.body)
            .bind(m.created_at)
            .execute(self.write())
            .await?;
        self.db.durable().await?;
        Ok(())
    }

    async fn mail_sent(&self, id: &str, now: i64) -> StoreResult<()> {
        // The body may hold a one-time link: once delivered it is not kept.
        self.write_one(
            sqlx::query("UPDATE outbox SET sent_at = $1, attempts = attempts + 1, body = '(delivered)', last_error = NULL WHERE id = $2")
                .bind(now)
                .bind(id))
        .await
    }

    async fn mail_failed(&self, id: &str, error: &str) -> StoreResult<()> {
        self.write_one(
            sqlx::query("UPDATE outbox SET attempts = attempts + 1, last_error = $1 WHERE id = $2")
                .bind(error)
                .bind(id),
        )
        .await
    }

    async fn record_login(&self, user_id: &str, now: i64, method: &str) -> StoreResult<()> {
        // One statement, one commit: a sign-in's writes are what bounds the
        // SAML ACS on SQLite (bench/saml_acs.sh).
        self.exec_write(
            sqlx::query("UPDATE users SET last_login_at = $1, last_auth_method = $2 WHERE id = $3")
                .bind(now)
                .bind(method)
                .bind(user_id),
            None,
        )
        .await?;
        Ok(())
    }

    async fn create_workspace(&self, slug: &str, name: &str, now: i64) -> StoreResult<Workspace> {
        self.db
            .written(insert_workspace(self.write(), slug, name, now))
            .await
    }

    async fn workspace_by_slug(&self, slug: &str) -> StoreResult<Option<Workspace>> {
        let row = sqlx::query(&format!("SELECT {WS_COLS} FROM workspaces WHERE slug = $1"))
            .bind(slug)
            .fetch_optional(self.read())
            .await?;
        row.as_ref()
            .map(workspace_from)
            .transpose()
            .map_err(StoreError::from)
    }

    async fn add_member(
        &self,
        workspace_id: &str,
        user_id: &str,
        policies: &[Policy],
        now: i64,
    ) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        insert_member(&mut tx, workspace_id, user_id, policies, now).await?;
        self.commit(tx).await
    }

    async fn membership(
        &self,
        workspace_id: &str,
        user_id: &str,
    ) -> StoreResult<Option<Membership>> {
        let row = sqlx::query(
            "SELECT policies, created_at FROM memberships WHERE workspace_id = $1 AND user_id = $2",
        )
        .bind(workspace_id)
        .bind(user_id)
        .fetch_optional(self.read())
        .await?;
        match row {
            None => Ok(None),
            Some(r) => {
                let text: String = r.try_get("policies")?;
                Ok(Some(Membership {
                    workspace_id: workspace_id.to_string(),
                    user_id: user_id.to_string(),
                    policies: policies_from(&text)?,
                    created_at: r.try_get("created_at")?,
                }))
            }
        }
    }

    async fn set_member_policies(
        &self,
        workspace_id: &str,
        user_id: &str,
        policies: &[Policy],
    ) -> StoreResult<()> {
        let done = sqlx::query(
            "UPDATE memberships SET policies = $1 WHERE workspace_id = $2 AND user_id = $3",
        )
        .bind(policies_text(policies)?)
        .bind(workspace_id)
        .bind(user_id)
        .execute(self.write())
        .await?;
        self.db.durable().await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn workspaces_of_user(&self, user_id: &str) -> StoreResult<Vec<WorkspaceAccess>> {
        let rows = sqlx::query(
            "SELECT w.id, w.slug, w.name, w.created_at, w.settings, m.policies FROM memberships m \
             JOIN workspaces w ON w.id = m.workspace_id WHERE m.user_id = $1 ORDER BY w.slug",
        )
        .bind(user_id)
        .fetch_all(self.read())
        .await?;
        rows.iter()
            .map(|r| {
                let text: String = r.try_get("policies")?;
                Ok(WorkspaceAccess {
                    workspace: workspace_from(r)?,
                    policies: policies_from(&text)?,
                })
            })
            .collect()
    }

    async fn bootstrap_workspace(
        &self,
        slug: &str,
        name: &str,
        owner: &NewUser,
        now: i64,
    ) -> StoreResult<(Workspace, User)> {
        let mut tx = self.begin_write().await?;
        let ws = insert_workspace(&mut *tx, slug, name, now).await?;
        let existing = sqlx::query(&format!(
            "SELECT {USER_COLS} FROM users WHERE email_norm = $1"
        ))
        .bind(normalize_email(&owner.email))
        .fetch_optional(&mut *tx)
        .await?;
        let user = match existing {
            Some(row) => user_from(&row)?,
            None => insert_user(&mut *tx, owner, now).await?,
        };
        insert_member(
            &mut tx,
            &ws.id,
            &user.id,
            &[Policy::workspace(crate::domain::roles::WORKSPACE_OWNER)],
            now,
        )
        .await?;
        self.commit(tx).await?;
        Ok((ws, user))
    }

    async fn create_action_token(
        &self,
        token_hash: &str,
        purpose: &str,
        user_id: &str,
        now: i64,
        expires_at: i64,
    ) -> StoreResult<()> {
        sqlx::query("INSERT INTO action_tokens (token_hash, purpose, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(token_hash)
            .bind(purpose)
            .bind(user_id)
            .bind(now)
            .bind(expires_at)
            .execute(self.write())
            .await?;
        self.db.durable().await?;
        Ok(())
    }

    async fn consume_action_token(
        &self,
        token_hash: &str,
        purpose: &str,
        now: i64,
    ) -> StoreResult<Option<String>> {
        let row = sqlx::query(
            "UPDATE action_tokens SET used_at = $1 WHERE token_hash = $2 AND purpose = $3 \
             AND used_at IS NULL AND expires_at > $1 RETURNING user_id",
        )
        .bind(now)
        .bind(token_hash)
        .bind(purpose)
        .fetch_optional(self.write())
        .await?;
        self.db.durable().await?;
        row.map(|r| r.try_get("user_id"))
            .transpose()
            .map_err(StoreError::from)
    }

    async fn peek_action_token(
        &self,
        token_hash: &str,
        purpose: &str,
        now: i64,
    ) -> StoreResult<Option<String>> {
        let row = sqlx::query(
            "SELECT user_id FROM action_tokens WHERE token_hash = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > $3",
        )
        .bind(token_hash)
        .bind(purpose)
        .bind(now)
        .fetch_optional(self.read())
        .await?;
        row.map(|r| r.try_get("user_id"))
            .transpose()
            .map_err(StoreError::from)
    }
}
