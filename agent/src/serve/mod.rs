//! Seam's own listeners (metrics and health, OTLP receive): optional TLS and an optional bearer
//! token, shared by all of them. Both are off unless configured, and every listener binds to
//! loopback unless told otherwise. `/healthz` and `/readyz` stay open (they say nothing about
//! tenants) so kubelet probes need no token.
pub(crate) mod metrics;
use std::{
    io,
    path::{Path, PathBuf},
    sync::Arc,
};

use hyper::{HeaderMap, header::AUTHORIZATION};
use ring::hmac;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject as _};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::TcpStream,
};
use tokio_rustls::TlsAcceptor;
use zeroize::Zeroizing;

/// Flags of `seam run` for its listeners.
#[derive(Clone, Debug, Default, clap::Args)]
pub(crate) struct ListenArgs {
    /// PEM certificate chain: Seam's listeners (--listen, --otlp-receive-*) serve TLS only.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// File holding a token every request to Seam's listeners must carry as `Authorization:
    /// Bearer <token>` (except /healthz and /readyz). Keep it mode 0600.
    #[arg(long, value_name = "FILE")]
    pub auth_token_file: Option<PathBuf>,
}

/// Why the listeners' TLS or token could not be set up.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ListenSetupError {
    /// A certificate, key or token file could not be read.
    #[error("cannot read {path}: {source}; check the path and that root can read it")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The file holds no usable PEM item of the expected kind.
    #[error("{path}: {what}; give a PEM file (-----BEGIN ...-----)")]
    Pem { path: PathBuf, what: String },
    /// rustls refused the certificate and key together.
    #[error(
        "the TLS certificate and key do not make a server identity: {0}; check that the key belongs to the certificate"
    )]
    Tls(#[source] rustls::Error),
    /// The token file is empty.
    #[error("{0}: the auth token file is empty; write a long random token into it")]
    EmptyToken(PathBuf),
}

/// What a request presented, against the configured token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Auth {
    /// No token is configured, or the right one was presented.
    Allowed,
    /// A token is configured and the request carried none or another one.
    Denied,
}

/// A certificate chain and its private key, as PEM (the key wiped on drop).
struct IdentityPem {
    cert: Vec<u8>,
    key: Zeroizing<Vec<u8>>,
}

/// TLS and token of Seam's listeners, loaded once and shared.
#[derive(Clone, Default)]
pub(crate) struct ListenSecurity {
    tls: Option<TlsAcceptor>,
    /// The PEM files as read (tonic takes its identity as PEM).
    pem: Option<Arc<IdentityPem>>,
    /// HMAC key and the tag of the expected token: comparing tags is constant-time.
    token: Option<Arc<(hmac::Key, hmac::Tag)>>,
}

impl std::fmt::Debug for ListenSecurity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListenSecurity")
            .field("tls", &self.tls.is_some())
            .field("token", &self.token.is_some())
            .finish()
    }
}

fn read(path: &Path) -> Result<Vec<u8>, ListenSetupError> {
    std::fs::read(path).map_err(|source| ListenSetupError::Read {
        path: path.to_owned(),
        source,
    })
}

impl ListenSecurity {
    /// Nothing: plain HTTP, no token.
    pub(crate) fn none() -> Self {
        Self::default()
    }

    /// Loads the files the flags name.
    pub(crate) fn load(args: &ListenArgs) -> Result<Self, ListenSetupError> {
        let mut out = Self::default();
        if let (Some(cert_path), Some(key_path)) = (&args.tls_cert, &args.tls_key) {
            let cert_pem = read(cert_path)?;
            let key_pem = Zeroizing::new(read(key_path)?);
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
                .collect::<Result<_, _>>()
                .map_err(|e| ListenSetupError::Pem {
                    path: cert_path.clone(),
                    what: e.to_string(),
                })?;
            if certs.is_empty() {
                return Err(ListenSetupError::Pem {
                    path: cert_path.clone(),
                    what: "no certificate in it".to_owned(),
                });
            }
            let key =
                PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| ListenSetupError::Pem {
                    path: key_path.clone(),
                    what: format!("no private key: {e}"),
                })?;
            let config = rustls::ServerConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .map_err(ListenSetupError::Tls)?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(ListenSetupError::Tls)?;
            out.tls = Some(TlsAcceptor::from(Arc::new(config)));
            out.pem = Some(Arc::new(IdentityPem {
                cert: cert_pem,
                key: key_pem,
            }));
        }
        if let Some(path) = &args.auth_token_file {
            let raw = Zeroizing::new(read(path)?);
            let token = raw.trim_ascii();
            if token.is_empty() {
                return Err(ListenSetupError::EmptyToken(path.clone()));
            }
            warn_if_readable_by_others(path);
            let key = hmac::Key::generate(hmac::HMAC_SHA256, &ring::rand::SystemRandom::new())
                .map_err(|_| ListenSetupError::Tls(rustls::Error::FailedToGetRandomBytes))?;
            let tag = hmac::sign(&key, token);
            out.token = Some(Arc::new((key, tag)));
        }
        Ok(out)
    }

    /// Whether the listeners serve TLS.
    pub(crate) fn tls(&self) -> bool {
        self.tls.is_some()
    }

    /// The certificate and key PEM (for tonic's identity), when TLS is on.
    pub(crate) fn identity_pem(&self) -> Option<(&[u8], &[u8])> {
        self.pem
            .as_deref()
            .map(|pem| (pem.cert.as_slice(), pem.key.as_slice()))
    }

    /// Checks an `authorization` value (`Bearer <token>`).
    pub(crate) fn check_value(&self, value: Option<&[u8]>) -> Auth {
        let Some(expected) = &self.token else {
            return Auth::Allowed;
        };
        let presented = value
            .and_then(|v| {
                let (scheme, token) = v.split_at_checked(7)?;
                scheme.eq_ignore_ascii_case(b"bearer ").then_some(token)
            })
            .map(<[u8]>::trim_ascii);
        match presented {
            Some(token) if hmac::verify(&expected.0, token, expected.1.as_ref()).is_ok() => {
                Auth::Allowed
            }
            _ => Auth::Denied,
        }
    }

    /// Checks a request's headers.
    pub(crate) fn check(&self, headers: &HeaderMap) -> Auth {
        self.check_value(headers.get(AUTHORIZATION).map(|v| v.as_bytes()))
    }

    /// The accepted connection, after the TLS handshake when TLS is on.
    pub(crate) async fn accept(&self, stream: TcpStream) -> io::Result<Conn> {
        match &self.tls {
            None => Ok(Conn::Plain(stream)),
            Some(acceptor) => Ok(Conn::Tls(Box::new(acceptor.accept(stream).await?))),
        }
    }
}

fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(path = ?path, "the auth token file is readable by group or others; chmod 0600 it");
    }
}

/// A connection to one of Seam's listeners, plain or TLS.
pub(crate) enum Conn {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl AsyncRead for Conn {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => std::pin::Pin::new(s).poll_read(cx, buf),
            Self::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => std::pin::Pin::new(s).poll_write(cx, buf),
            Self::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => std::pin::Pin::new(s).poll_flush(cx),
            Self::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => std::pin::Pin::new(s).poll_shutdown(cx),
            Self::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_token(token: &str) -> ListenSecurity {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, format!("{token}\n")).unwrap();
        ListenSecurity::load(&ListenArgs {
            auth_token_file: Some(path),
            ..ListenArgs::default()
        })
        .unwrap()
    }

    #[test]
    fn the_token_must_match_exactly() {
        let s = with_token("s3cret-token");
        assert_eq!(s.check_value(Some(b"Bearer s3cret-token")), Auth::Allowed);
        assert_eq!(s.check_value(Some(b"bearer s3cret-token")), Auth::Allowed);
        assert_eq!(s.check_value(Some(b"Bearer s3cret-tokeN")), Auth::Denied);
        assert_eq!(s.check_value(Some(b"Bearer s3cret-token2")), Auth::Denied);
        assert_eq!(s.check_value(Some(b"Basic s3cret-token")), Auth::Denied);
        assert_eq!(s.check_value(Some(b"Bearer")), Auth::Denied);
        assert_eq!(s.check_value(None), Auth::Denied);
        assert_eq!(ListenSecurity::none().check_value(None), Auth::Allowed);
    }

    #[test]
    fn bad_files_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "  \n").unwrap();
        let err = ListenSecurity::load(&ListenArgs {
            auth_token_file: Some(empty),
            ..ListenArgs::default()
        })
        .unwrap_err();
        assert!(matches!(err, ListenSetupError::EmptyToken(_)), "{err}");
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not pem").unwrap();
        let err = ListenSecurity::load(&ListenArgs {
            tls_cert: Some(junk.clone()),
            tls_key: Some(junk),
            ..ListenArgs::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("PEM"), "{err}");
        let err = ListenSecurity::load(&ListenArgs {
            tls_cert: Some(dir.path().join("missing.pem")),
            tls_key: Some(dir.path().join("missing.key")),
            ..ListenArgs::default()
        })
        .unwrap_err();
        assert!(matches!(err, ListenSetupError::Read { .. }), "{err}");
    }
}
