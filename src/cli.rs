//! The command line (README "Command line"). Exit status: 0 success, 1 bad input
//! (one-line reason on stderr), 2 usage.

use crate::app::{self, StartError};
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::crypto;
use crate::domain::model::{valid_email, valid_slug};
use crate::domain::DomainError;
use crate::password::check_policy;
use crate::store::{NewUser, Store, StoreError};
use clap::{Parser, Subcommand};
use std::io::Read;
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "iam-gateway",
    version,
    about = "Identity gateway: sign-in, sessions and forward-auth for a multi-workspace SaaS"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the gateway.
    Serve {
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Run the gateway with demo data (workspace `acme`, an owner, a member,
    /// a group, a Twilio account linked to the owner); prints every URL and
    /// credential. Idempotent.
    Demo {
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Apply database migrations and exit.
    Migrate {
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Create a workspace and its first owner.
    Bootstrap {
        #[arg(long)]
        workspace: String,
        #[arg(long = "owner-email")]
        owner_email: String,
        /// Display name of the workspace (defaults to the slug).
        #[arg(long)]
        name: Option<String>,
        /// Read the owner's password from standard input instead of printing
        /// a one-time set-password link.
        #[arg(long = "password-stdin")]
        password_stdin: bool,
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Validate the configuration and print it with secrets masked.
    CheckConfig {
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Print a workspace's members as CSV (RFC 4180, formula-safe).
    ExportMembers {
        #[arg(long)]
        workspace: String,
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// API tokens for automation.
    Token {
        #[command(subcommand)]
        action: TokenAction,
    },
    /// SCIM tokens for a workspace's identity provider.
    ScimToken {
        #[command(subcommand)]
        action: ScimTokenAction,
    },
    /// The keys that sign assertions and ID tokens (published at
    /// /.well-known/jwks.json).
    Keys {
        #[command(subcommand)]
        action: KeysAction,
    },
    /// Run only the simulated Twilio issuer, or manage its accounts.
    TwilioIssuer {
        #[arg(long)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        action: Option<IssuerCommand>,
    },
}

#[derive(Subcommand, Debug)]
pub enum TokenAction {
    /// Mint an API token and print only its secret.
    Create {
        #[arg(long)]
        workspace: String,
        #[arg(long)]
        role: String,
        #[arg(long, default_value = "")]
        description: String,
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
pub enum ScimTokenAction {
    /// Mint a SCIM token for the workspace and print only its secret.
    Create {
        #[arg(long)]
        workspace: String,
        #[arg(long, default_value = "")]
        description: String,
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
pub enum KeysAction {
    /// List every key with its state (next, signing, previous, expired,
    /// retired) and times.
    List {
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Add a key: published at once, signing after `keys.publish_ahead`;
    /// the key it replaces stays published for `keys.keep_published`.
    Rotate {
        /// Sign with the new key at once (a leaked key): verifiers that
        /// cached the JWKS refuse its tokens until they fetch it again.
        #[arg(long)]
        now: bool,
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Unpublish a key at once: tokens it signed stop verifying.
    Retire {
        kid: String,
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
pub enum IssuerCommand {
    /// Create a Twilio account in the issuer's store and print its `sub`.
    AddAccount {
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: String,
        /// Read the password from standard input instead of printing a
        /// one-time set-password link (on stderr).
        #[arg(long = "password-stdin")]
        password_stdin: bool,
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

/// A failure to report as one line, exit status 1.
#[derive(Debug)]
pub struct Failure(pub String);

impl From<StartError> for Failure {
    fn from(e: StartError) -> Self {
        Failure(e.to_string())
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure(e.to_string())
    }
}

impl From<DomainError> for Failure {
    fn from(e: DomainError) -> Self {
        match e {
            DomainError::Internal(m) => Failure(format!("internal error: {m}")),
            DomainError::Unavailable(m) => Failure(format!("unavailable: {m}")),
            other => Failure(other.to_string()),
        }
    }
}

fn load(config: Option<&PathBuf>) -> Result<Config, Failure> {
    Config::load(config.map(|p| p.as_path()), std::env::vars())
        .map_err(|errs| Failure(errs.join("; ")))
}

pub async fn run(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Serve { config } => Ok(app::run(load(config.as_ref())?).await?),
        Command::Migrate { config } => {
            let cfg = load(config.as_ref())?;
            let store = crate::store::open(&cfg.database_url).await?;
            store.close().await;
            println!("migrations applied");
            Ok(())
        }
        Command::CheckConfig { config } => {
            match Config::load(config.as_deref(), std::env::vars()) {
                Ok(cfg) => {
                    print!("{}", cfg.to_masked_toml().trim_start());
                    Ok(())
                }
                Err(errs) => {
                    for e in &errs {
                        eprintln!("error: {e}");
                    }
                    Err(Failure(format!(
                        "{} problem(s) in the configuration",
                        errs.len()
                    )))
                }
            }
        }
        Command::Demo { config } => {
            let cfg = load(config.as_ref())?;
            for line in app::seed_demo(&cfg).await? {
                println!("{line}");
            }
            Ok(app::run(cfg).await?)
        }
        Command::ExportMembers { workspace, config } => {
            export_members(load(config.as_ref())?, &workspace).await
        }
        Command::Token {
            action:
                TokenAction::Create {
                    workspace,
                    role,
                    description,
                    config,
                },
        } => token_create(load(config.as_ref())?, &workspace, &role, &description).await,
        Command::ScimToken {
            action:
                ScimTokenAction::Create {
                    workspace,
                    description,
                    config,
                },
        } => scim_token_create(load(config.as_ref())?, &workspace, &description).await,
        Command::Keys { action } => keys(action).await,
        Command::TwilioIssuer { config, action } => match action {
            None => Ok(app::run_issuer(load(config.as_ref())?).await?),
            Some(IssuerCommand::AddAccount {
                email,
                name,
                password_stdin,
                config: inner,
            }) => {
                let cfg = load(inner.as_ref().or(config.as_ref()))?;
                twilio_add_account(cfg, &email, &name, password_stdin).await
            }
        },
        Command::Bootstrap {
            workspace,
            owner_email,
            name,
            password_stdin,
            config,
        } => {
            bootstrap(
                load(config.as_ref())?,
                &workspace,
                &owner_email,
                name,
                password_stdin,
            )
            .await
        }
    }
}

async fn keys(action: KeysAction) -> Result<(), Failure> {
    use crate::clock::rfc3339;
    use crate::keys::State;
    let config = match &action {
        KeysAction::List { config }
        | KeysAction::Rotate { config, .. }
        | KeysAction::Retire { config, .. } => config.clone(),
    };
    let cfg = load(config.as_ref())?;
    let secret = app::load_or_create_secret(&cfg.secret_key_file)?;
    let store = crate::store::open(&cfg.database_url).await?;
    let policy = cfg.keys.policy();
    let now = SystemClock.now();
    let changed = match action {
        KeysAction::List { .. } => {
            println!("KID               STATE     CREATED               SIGNS FROM            PUBLISHED UNTIL");
            for k in crate::keys::list(store.db(), now, policy).await? {
                let until = match k.state {
                    State::Previous { until } | State::Expired { until } => rfc3339(until),
                    State::Retired { at } => rfc3339(at),
                    State::Next | State::Signing => "-".into(),
                };
                println!(
                    "{:<17} {:<9} {:<21} {:<21} {}",
                    k.row.kid,
                    k.state.name(),
                    rfc3339(k.row.created_at),
                    rfc3339(k.row.activates_at),
                    until
                );
            }
            false
        }
        KeysAction::Rotate { now: at_once, .. } => {
            let row = crate::keys::rotate(store.db(), &secret, now, policy, at_once).await?;
            println!("{}", row.kid);
            if at_once {
                eprintln!(
                    "key {} signs now; verifiers that cached the JWKS refuse its tokens until they fetch it again",
                    row.kid
                );
            } else {
                eprintln!(
                    "key {} is published now and signs from {}",
                    row.kid,
                    rfc3339(row.activates_at)
                );
            }
            true
        }
        KeysAction::Retire { kid, .. } => {
            crate::keys::retire(store.db(), &kid, now, policy)
                .await
                .map_err(|e| match e {
                    DomainError::NotFound => Failure(format!("no key {kid}")),
                    other => other.into(),
                })?;
            eprintln!("key {kid} is no longer published; tokens it signed stop verifying");
            true
        }
    };
    if changed {
        // Instances also re-read the keys every keys.refresh.
        let channel = app::invalidation_channel(&cfg, &store)?;
        if let Err(e) = channel.announce_keys().await {
            eprintln!("warning: could not tell the running instances ({e}); they pick the change up within {}", crate::domain::duration::format(cfg.keys.refresh));
        }
    }
    store.close().await;
    Ok(())
}

async fn bootstrap(
    cfg: Config,
    slug: &str,
    email: &str,
    name: Option<String>,
    password_stdin: bool,
) -> Result<(), Failure> {
    if !valid_slug(slug) {
        return Err(Failure(format!(
            "`{slug}` is not a workspace slug (2-63 of a-z, 0-9 and -)"
        )));
    }
    if !valid_email(email) {
        return Err(Failure(format!("`{email}` is not an email address")));
    }
    let password = if password_stdin {
        Some(read_password_stdin(email)?)
    } else {
        None
    };
    let clock = SystemClock;
    let store = crate::store::open(&cfg.database_url).await?;
    let existing = store.user_by_email(email).await?;
    let hasher = crate::password::Hasher::new(1)
        .await
        .map_err(|e| Failure(e.to_string()))?;
    let hash = match &password {
        Some(pw) if existing.is_none() => {
            Some(hasher.hash(pw).await.map_err(|e| Failure(e.to_string()))?)
        }
        _ => None,
    };
    let owner = NewUser {
        email: email.trim().to_string(),
        name: String::new(),
        password_hash: hash,
    };
    let ws_name = name.unwrap_or_else(|| slug.to_string());
    let (ws, user) = store
        .bootstrap_workspace(slug, &ws_name, &owner, clock.now())
        .await?;
    println!(
        "workspace {} created; owner {} (user id {})",
        ws.slug, user.email, user.id
    );
    if existing.is_some() {
        println!(
            "{} already had an account; its credentials are unchanged",
            user.email
        );
    } else if password.is_none() {
        let token = crypto::random_token("").map_err(|e| Failure(e.to_string()))?;
        let now = clock.now();
        store
            .create_action_token(
                &crypto::sha256_hex(token.as_bytes()),
                crate::service::account::SET_PASSWORD,
                &user.id,
                now,
                now + 24 * 3600,
            )
            .await?;
        println!(
            "set the owner's password within 24 hours at: {}/set-password/{token}",
            cfg.public_url
        );
    }
    store.close().await;
    Ok(())
}

async fn open_workspace(
    cfg: &Config,
    slug: &str,
) -> Result<
    (
        std::sync::Arc<crate::store::sql::SqlStore>,
        crate::domain::model::Workspace,
    ),
    Failure,
> {
    let store = crate::store::open(&cfg.database_url).await?;
    let ws = store
        .workspace_by_slug(slug)
        .await?
        .ok_or_else(|| Failure(format!("no workspace `{slug}`")))?;
    Ok((store, ws))
}

async fn export_members(cfg: Config, slug: &str) -> Result<(), Failure> {
    use futures_util::StreamExt;
    use std::io::Write;
    let (store, ws) = open_workspace(&cfg, slug).await?;
    let dyn_store: std::sync::Arc<dyn Store> = store.clone();
    let mut rows = std::pin::pin!(crate::service::members::csv_stream(
        dyn_store,
        ws.id.clone(),
        SystemClock.now()
    ));
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    while let Some(chunk) = rows.next().await {
        let chunk = chunk.map_err(|e| Failure(e.to_string()))?;
        out.write_all(chunk.as_bytes())
            .map_err(|e| Failure(format!("cannot write: {e}")))?;
    }
    out.flush()
        .map_err(|e| Failure(format!("cannot write: {e}")))?;
    store.close().await;
    Ok(())
}

async fn token_create(
    cfg: Config,
    slug: &str,
    role: &str,
    description: &str,
) -> Result<(), Failure> {
    let policies = vec![crate::domain::roles::Policy::workspace(role)];
    crate::service::tokens::check_token_policies(&policies).map_err(|e| Failure(e.to_string()))?;
    cli_token(
        cfg,
        slug,
        crate::service::tokens::Kind::Api,
        description,
        policies,
    )
    .await
}

/// `scim-token create`: like `POST /api/v1/workspaces/{slug}/scim-tokens`;
/// prints only the secret.
async fn scim_token_create(cfg: Config, slug: &str, description: &str) -> Result<(), Failure> {
    if description.chars().count() > 200 {
        return Err(Failure("--description: at most 200 characters".into()));
    }
    let kind = crate::service::tokens::Kind::Scim;
    cli_token(cfg, slug, kind, description, Vec::new()).await
}

/// Mints a token of workspace `slug` through the core and prints only its
/// secret.
async fn cli_token(
    cfg: Config,
    slug: &str,
    kind: crate::service::tokens::Kind,
    description: &str,
    policies: Vec<crate::domain::roles::Policy>,
) -> Result<(), Failure> {
    let (store, ws) = open_workspace(&cfg, slug).await?;
    let secret = crate::service::tokens::create_from_cli(
        store.as_ref(),
        SystemClock.now(),
        &ws.id,
        kind,
        description,
        policies,
    )
    .await;
    store.close().await;
    println!("{}", secret?);
    Ok(())
}

/// A password from standard input (one trailing newline removed), checked
/// against the policy.
fn read_password_stdin(email: &str) -> Result<String, Failure> {
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .map_err(|e| Failure(format!("cannot read the password from stdin: {e}")))?;
    let pw = text
        .strip_suffix('\n')
        .map(|t| t.strip_suffix('\r').unwrap_or(t))
        .unwrap_or(&text)
        .to_string();
    check_policy(&pw, email).map_err(Failure)?;
    Ok(pw)
}

/// `twilio-issuer add-account`: prints only the new `sub` on stdout. Without
/// `--password-stdin` nobody can sign in to the account until its password is
/// set through the one-time link printed on stderr (24 hours).
async fn twilio_add_account(
    cfg: Config,
    email: &str,
    name: &str,
    password_stdin: bool,
) -> Result<(), Failure> {
    use crate::twilio_issuer::accounts;
    let email = accounts::check_email(email)
        .map_err(|_| Failure(format!("`{email}` is not an email address")))?;
    let name = accounts::check_name(name).map_err(|e| Failure(format!("--name: {e}")))?;
    let password = if password_stdin {
        Some(read_password_stdin(&email)?)
    } else {
        None
    };
    let store = crate::store::open(&cfg.database_url).await?;
    let hasher = crate::password::Hasher::new(1)
        .await
        .map_err(|e| Failure(e.to_string()))?;
    let created = accounts::create(
        store.as_ref(),
        &hasher,
        SystemClock.now(),
        &email,
        &name,
        password.as_deref(),
    )
    .await;
    store.close().await;
    let created = created?;
    println!("{}", created.sub);
    if let Some(token) = created.password_link {
        eprintln!(
            "no password set: nobody can sign in to this account until one is set at (one use, within 24 hours): {}/set-password/{token}",
            cfg.twilio_issuer.public_url
        );
    }
    Ok(())
}
