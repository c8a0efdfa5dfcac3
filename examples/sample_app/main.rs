//! `sample_app`: the downstream app of `docker-compose.yml`, behind nginx
//! and the gateway's forward-auth (see `app.rs`).
//!
//! Environment: `SAMPLE_APP_LISTEN` (default `127.0.0.1:3000`),
//! `SAMPLE_APP_JWKS_URL` (default
//! `http://127.0.0.1:8080/.well-known/jwks.json`), `SAMPLE_APP_ISSUER` (the
//! gateway's `public_url`, default `http://127.0.0.1:8080`).

mod app;

use std::process::ExitCode;

fn var(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_string())
}

#[tokio::main]
async fn main() -> ExitCode {
    let listen = var("SAMPLE_APP_LISTEN", "127.0.0.1:3000");
    let cfg = app::Config {
        jwks_url: var(
            "SAMPLE_APP_JWKS_URL",
            "http://127.0.0.1:8080/.well-known/jwks.json",
        ),
        issuer: var("SAMPLE_APP_ISSUER", "http://127.0.0.1:8080"),
    };
    let listener = match tokio::net::TcpListener::bind(&listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("sample_app: cannot listen on {listen}: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("sample_app listening on {listen}, trusting {}", cfg.issuer);
    let router = app::SampleApp::new(cfg).router();
    // Ctrl-C, or SIGTERM from `docker compose down`.
    let stop = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {},
                    _ = term.recv() => {},
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    };
    match axum::serve(listener, router)
        .with_graceful_shutdown(stop)
        .await
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sample_app: {e}");
            ExitCode::FAILURE
        }
    }
}
