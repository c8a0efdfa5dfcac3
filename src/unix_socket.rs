//! Serving on a Unix domain socket (`listen = "unix:/path"`), for a proxy on
//! the same host.
//!
//! Handlers read the peer as a `SocketAddr` (client IP for audit and
//! throttling, and whether `X-Forwarded-*` headers are believed). A Unix
//! peer has no IP address, so every connection on the socket is reported as
//! [`UNIX_PEER`] (127.0.0.1): a same-host proxy, trusted for forwarded
//! headers exactly when 127.0.0.1 is in `trusted_proxies` (the default).
//!
//! The socket file is created mode [`SOCKET_MODE`] (owner and group may
//! connect; see docs/configuration.md), a stale file left by a previous run
//! is replaced, and the file is removed when the listener is dropped (after
//! the graceful shutdown).

use axum::serve::Listener;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::net::{UnixListener, UnixStream};

/// The address every Unix-socket peer is given: a local proxy.
pub const UNIX_PEER: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 0);

/// Read and write (connect) for the owner and the group, nothing for others:
/// whoever can connect is believed about `X-Forwarded-For`.
pub const SOCKET_MODE: u32 = 0o660;

/// A Unix listener that reports its peers as [`UNIX_PEER`] and removes its
/// socket file when dropped.
pub struct UnixSocketListener {
    inner: UnixListener,
    path: PathBuf,
}

impl UnixSocketListener {
    /// Binds `path`, replacing a stale socket file (one nobody accepts on).
    /// Refuses to replace anything else, or a socket still in use.
    pub fn bind(path: &Path) -> Result<Self, String> {
        let shown = path.display();
        match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.file_type().is_socket() => {
                if std::os::unix::net::UnixStream::connect(path).is_ok() {
                    return Err(format!("listen: unix:{shown} is in use by another process"));
                }
                std::fs::remove_file(path)
                    .map_err(|e| format!("listen: cannot remove the stale socket {shown}: {e}"))?;
                tracing::info!(path = %shown, "replaced a stale socket file");
            }
            Ok(_) => {
                return Err(format!(
                    "listen: {shown} exists and is not a socket; not replacing it"
                ))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("listen: {shown}: {e}")),
        }
        let inner = UnixListener::bind(path)
            .map_err(|e| format!("listen: cannot bind unix:{shown}: {e}"))?;
        let listener = Self {
            inner,
            path: path.to_path_buf(),
        };
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(SOCKET_MODE))
            .map_err(|e| format!("listen: cannot set the mode of {shown}: {e}"))?;
        Ok(listener)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for UnixSocketListener {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Listener for UnixSocketListener {
    type Io = UnixStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.inner.accept().await {
                Ok((stream, _)) => return (stream, UNIX_PEER),
                Err(e) => {
                    // Like axum's TCP listener: out of descriptors and the
                    // like pass; back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(UNIX_PEER)
    }
}
