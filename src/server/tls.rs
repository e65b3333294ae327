//! TLS for the webhook port: TLS 1.2 and 1.3 with the ring provider, and a certificate
//! resolver that picks up rotated files without a restart.
//!
//! The resolver checks the files lazily from the handshake path, at most once per interval,
//! instead of from a background task: there is no task to own or stop, it works without a
//! runtime, and the check is one `canonicalize` + `metadata` per file. Only a handshake
//! that finds a change pays for reading and parsing; concurrent handshakes never wait for
//! it (they serve the current certificate while one of them checks).

use std::error::Error as StdError;
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock, TryLockError};
use std::time::{Duration, Instant, SystemTime};

use rustls::SupportedProtocolVersion;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, ServerConfig};
use rustls::sign::CertifiedKey;
use tracing::{info, warn};

/// How often the resolver looks at the files by default.
pub const DEFAULT_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// The versions the webhook port offers. rustls implements nothing older than TLS 1.2, and
/// the API server speaks both of these.
pub const PROTOCOL_VERSIONS: &[&SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("reading {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("parsing the certificates in {path}")]
    ParseCertificates {
        path: PathBuf,
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    #[error("no certificate in {path}")]
    NoCertificate { path: PathBuf },
    #[error("parsing the private key in {path}")]
    ParseKey {
        path: PathBuf,
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    #[error("pairing the private key in {key} with the certificate in {cert}")]
    CertifiedKey {
        cert: PathBuf,
        key: PathBuf,
        #[source]
        source: rustls::Error,
    },
    #[error("building the TLS server configuration")]
    Config(#[source] rustls::Error),
    #[error("using the client CA certificates in {path}")]
    ClientCa {
        path: PathBuf,
        #[source]
        source: rustls::server::VerifierBuilderError,
    },
}

/// Builds the webhook port's configuration: ring provider, TLS 1.3 and 1.2, no client
/// authentication, ALPN `h2` then `http/1.1`.
pub fn server_config(resolver: Arc<CertResolver>) -> Result<ServerConfig, TlsError> {
    server_config_with(resolver, None)
}

/// [`server_config`], requiring a client certificate signed by a CA in `client_ca` (PEM)
/// when one is given: only the API server, given that certificate in its
/// AdmissionConfiguration, can then post reviews. Read once, at start.
pub fn server_config_with(
    resolver: Arc<CertResolver>,
    client_ca: Option<&Path>,
) -> Result<ServerConfig, TlsError> {
    let builder = ServerConfig::builder_with_provider(resolver.provider.clone())
        .with_protocol_versions(PROTOCOL_VERSIONS)
        .map_err(TlsError::Config)?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(path) => builder.with_client_cert_verifier(client_verifier(path, &resolver.provider)?),
    };
    let mut config = builder.with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

fn client_verifier(
    path: &Path,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in certificates(path)? {
        roots.add(cert).map_err(TlsError::Config)?;
    }
    rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|source| TlsError::ClientCa {
            path: path.to_owned(),
            source,
        })
}

/// Serves the certificate and key from two files, re-reading them when they change.
pub struct CertResolver {
    cert_path: PathBuf,
    key_path: PathBuf,
    interval: Duration,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
    check: Mutex<CheckState>,
}

struct CheckState {
    checked_at: Instant,
    /// What the served certificate was read from.
    served: Stamp,
    /// The last change that failed to load, so it is reported once, not every interval.
    rejected: Option<Stamp>,
}

/// Identifies file contents cheaply. The canonical target changes on kubelet's `..data`
/// symlink swap even when size and mtime happen to match; mtime and length catch files
/// rewritten in place.
#[derive(Clone, Debug, PartialEq, Eq)]
struct FileStamp {
    target: Option<PathBuf>,
    modified: Option<SystemTime>,
    len: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Stamp {
    cert: FileStamp,
    key: FileStamp,
}

/// What one look at the files found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refresh {
    /// Another handshake is checking, or the interval has not passed.
    NotDue,
    Unchanged,
    Reloaded,
    /// A change that does not load; the previous certificate stays.
    Rejected,
    /// The same bad change as last time; not reported again.
    StillRejected,
}

impl CertResolver {
    /// Loads the files, checking for changes every [`DEFAULT_CHECK_INTERVAL`].
    pub fn new(cert_path: PathBuf, key_path: PathBuf) -> Result<Arc<Self>, TlsError> {
        Self::with_check_interval(cert_path, key_path, DEFAULT_CHECK_INTERVAL)
    }

    /// Like [`CertResolver::new`] with another interval (tests use zero: check every time).
    pub fn with_check_interval(
        cert_path: PathBuf,
        key_path: PathBuf,
        interval: Duration,
    ) -> Result<Arc<Self>, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let served = stamp(&cert_path, &key_path);
        let key = load(&cert_path, &key_path, &provider)?;
        info!(cert = %cert_path.display(), key = %key_path.display(), "serving certificate loaded");
        Ok(Arc::new(Self {
            cert_path,
            key_path,
            interval,
            provider,
            current: RwLock::new(Arc::new(key)),
            check: Mutex::new(CheckState {
                checked_at: Instant::now(),
                served,
                rejected: None,
            }),
        }))
    }

    /// The certificate to serve now, after a check of the files if one is due.
    pub fn current(&self) -> Arc<CertifiedKey> {
        self.refresh();
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn refresh(&self) -> Refresh {
        let mut state = match self.check.try_lock() {
            Ok(state) => state,
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(TryLockError::WouldBlock) => return Refresh::NotDue,
        };
        let now = Instant::now();
        if now.duration_since(state.checked_at) < self.interval {
            return Refresh::NotDue;
        }
        state.checked_at = now;
        // Stamp before reading: a write racing with the read then shows up as a new stamp
        // at the next check instead of being missed.
        let seen = stamp(&self.cert_path, &self.key_path);
        if seen == state.served {
            return Refresh::Unchanged;
        }
        if state.rejected.as_ref() == Some(&seen) {
            return Refresh::StillRejected;
        }
        match load(&self.cert_path, &self.key_path, &self.provider) {
            Ok(key) => {
                *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(key);
                state.served = seen;
                state.rejected = None;
                info!(cert = %self.cert_path.display(), "serving certificate reloaded");
                Refresh::Reloaded
            }
            Err(error) => {
                warn!(
                    error = %Chain(&error),
                    cert = %self.cert_path.display(),
                    "keeping the previous serving certificate"
                );
                state.rejected = Some(seen);
                Refresh::Rejected
            }
        }
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

impl fmt::Debug for CertResolver {
    // Paths only: never print key material.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertResolver")
            .field("cert_path", &self.cert_path)
            .field("key_path", &self.key_path)
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

fn file_stamp(path: &Path) -> FileStamp {
    let target = fs::canonicalize(path).ok();
    let meta = target.as_deref().and_then(|t| fs::metadata(t).ok());
    FileStamp {
        modified: meta.as_ref().and_then(|m| m.modified().ok()),
        len: meta.as_ref().map_or(0, fs::Metadata::len),
        target,
    }
}

fn stamp(cert: &Path, key: &Path) -> Stamp {
    Stamp {
        cert: file_stamp(cert),
        key: file_stamp(key),
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

/// The certificates in a PEM file, at least one.
fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let chain = CertificateDer::pem_slice_iter(&read(path)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::ParseCertificates {
            path: path.to_owned(),
            source,
        })?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(chain)
}

fn load(cert: &Path, key: &Path, provider: &CryptoProvider) -> Result<CertifiedKey, TlsError> {
    let chain = certificates(cert)?;
    let private =
        PrivateKeyDer::from_pem_slice(&read(key)?).map_err(|source| TlsError::ParseKey {
            path: key.to_owned(),
            source,
        })?;
    // from_der also checks that the key belongs to the certificate, which catches a
    // rotation observed half-way (new certificate, old key).
    CertifiedKey::from_der(chain, private, provider).map_err(|source| TlsError::CertifiedKey {
        cert: cert.to_owned(),
        key: key.to_owned(),
        source,
    })
}

/// Displays an error with its sources, for the one log line a failed reload gets.
struct Chain<'a>(&'a dyn StdError);

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(error) = source {
            write!(f, ": {error}")?;
            source = error.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;
    use crate::certs::{Ca, CertPair};

    fn leaf(ca: &Ca) -> CertPair {
        ca.issue_server(&["localhost".to_owned()], &[])
            .expect("leaf")
    }

    fn der(pem: &str) -> CertificateDer<'static> {
        CertificateDer::from_pem_slice(pem.as_bytes()).expect("pem")
    }

    /// Two certificates from one CA, the first served from a projected volume, and a
    /// resolver that looks at it every `interval`.
    fn rig(interval: Duration) -> (CertPair, CertPair, Projected, Arc<CertResolver>) {
        let ca = Ca::new("ca").expect("ca");
        let (first, second) = (leaf(&ca), leaf(&ca));
        let projected = Projected::new(&first);
        let resolver = projected.resolver(interval);
        (first, second, projected, resolver)
    }

    /// A kubelet-style projected volume: `tls.crt -> ..data/tls.crt`, `..data -> ..<gen>`.
    struct Projected {
        dir: tempfile::TempDir,
        generation: Option<PathBuf>,
    }

    impl Projected {
        fn new(pair: &CertPair) -> Self {
            let mut projected = Self {
                dir: tempfile::tempdir().expect("tempdir"),
                generation: None,
            };
            projected.swap("..gen_a", &pair.cert_pem, &pair.key_pem);
            for name in ["tls.crt", "tls.key"] {
                symlink(
                    Path::new("..data").join(name),
                    projected.dir.path().join(name),
                )
                .expect("link");
            }
            projected
        }

        /// Swaps in a new generation, then checks what the resolver's next look finds and
        /// which certificate it then serves.
        fn rotate(
            &mut self,
            resolver: &CertResolver,
            generation: &str,
            (cert, key): (&str, &str),
            (want, serving): (Refresh, &str),
        ) {
            self.swap(generation, cert, key);
            assert_eq!(resolver.refresh(), want, "{generation}");
            assert_eq!(resolver.current().cert[0], der(serving), "{generation}");
        }

        /// Writes a new generation and swaps `..data` to it atomically, as kubelet does.
        fn swap(&mut self, generation: &str, cert: &str, key: &str) {
            let root = self.dir.path();
            let dir = root.join(generation);
            fs::create_dir(&dir).expect("generation dir");
            fs::write(dir.join("tls.crt"), cert).expect("cert");
            fs::write(dir.join("tls.key"), key).expect("key");
            symlink(generation, root.join("..data_tmp")).expect("tmp link");
            fs::rename(root.join("..data_tmp"), root.join("..data")).expect("swap");
            if let Some(old) = self.generation.replace(dir) {
                fs::remove_dir_all(old).expect("remove old generation");
            }
        }

        fn resolver(&self, interval: Duration) -> Arc<CertResolver> {
            let root = self.dir.path();
            CertResolver::with_check_interval(root.join("tls.crt"), root.join("tls.key"), interval)
                .expect("resolver")
        }
    }

    #[test]
    fn missing_files_fail_at_start() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = CertResolver::new(dir.path().join("tls.crt"), dir.path().join("tls.key"))
            .expect_err("no files");
        assert!(matches!(err, TlsError::Read { .. }), "{err:?}");
    }

    #[test]
    fn a_certificate_with_someone_elses_key_fails_at_start() {
        let ca = Ca::new("ca").expect("ca");
        let (a, b) = (leaf(&ca), leaf(&ca));
        let projected = Projected::new(&CertPair {
            cert_pem: a.cert_pem,
            key_pem: b.key_pem,
        });
        let root = projected.dir.path();
        let err =
            CertResolver::new(root.join("tls.crt"), root.join("tls.key")).expect_err("mismatch");
        assert!(matches!(err, TlsError::CertifiedKey { .. }), "{err:?}");
    }

    #[test]
    fn symlink_swap_is_picked_up() {
        let (a, b, mut projected, resolver) = rig(Duration::ZERO);
        assert_eq!(resolver.current().cert[0], der(&a.cert_pem));
        assert_eq!(resolver.refresh(), Refresh::Unchanged);

        let to_b = (Refresh::Reloaded, b.cert_pem.as_str());
        projected.rotate(&resolver, "..gen_b", (&b.cert_pem, &b.key_pem), to_b);
    }

    #[test]
    fn a_bad_change_keeps_the_old_certificate_and_is_reported_once() {
        let (a, c, mut projected, resolver) = rig(Duration::ZERO);

        projected.swap("..gen_b", "garbage", &a.key_pem);
        assert_eq!(resolver.refresh(), Refresh::Rejected);
        assert_eq!(resolver.refresh(), Refresh::StillRejected);
        assert_eq!(resolver.current().cert[0], der(&a.cert_pem));

        // Half a rotation (new certificate, old key) is also refused.
        let kept = (Refresh::Rejected, a.cert_pem.as_str());
        projected.rotate(&resolver, "..gen_c", (&c.cert_pem, &a.key_pem), kept);
        let to_c = (Refresh::Reloaded, c.cert_pem.as_str());
        projected.rotate(&resolver, "..gen_d", (&c.cert_pem, &c.key_pem), to_c);
    }

    #[test]
    fn files_are_looked_at_once_per_interval() {
        let (a, b, mut projected, resolver) = rig(Duration::from_secs(3600));
        let not_due = (Refresh::NotDue, a.cert_pem.as_str());
        projected.rotate(&resolver, "..gen_b", (&b.cert_pem, &b.key_pem), not_due);
    }

    #[test]
    fn config_offers_tls12_and_tls13_and_both_alpn_protocols() {
        let ca = Ca::new("ca").expect("ca");
        let projected = Projected::new(&leaf(&ca));
        let config = server_config(projected.resolver(DEFAULT_CHECK_INTERVAL)).expect("config");
        assert_eq!(
            config.alpn_protocols,
            [b"h2".to_vec(), b"http/1.1".to_vec()]
        );
        let mut versions: Vec<u16> = PROTOCOL_VERSIONS.iter().map(|v| v.version.into()).collect();
        versions.sort_unstable();
        assert_eq!(versions, [0x0303, 0x0304], "exactly TLS 1.2 and TLS 1.3");
        assert!(
            config
                .crypto_provider()
                .cipher_suites
                .iter()
                .all(|suite| { u16::from(suite.version().version) >= 0x0303 })
        );
    }
}
