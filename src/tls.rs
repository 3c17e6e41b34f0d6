//! TLS for the lab: the article's "支持https代理" (HTTPS proxying), for real.
//!
//! A real server started with `--tls` serves HTTPS with a certificate made at
//! start ([`SelfSignedCert`]: self-signed, for `localhost`, `127.0.0.1` and
//! `::1`). No certificate authority knows it, so clients trust it by its PEM,
//! which is written to a file: `curl --cacert FILE`, or a proxy's
//! `--upstream-ca FILE` ([`UpstreamTrust::CaFile`]). The private key never
//! leaves the process.
//!
//! The other side is how a proxy reaches `https://` upstreams
//! ([`client_config`]): it trusts the PEM file it is given, and nothing else
//! (the lab only talks to loopback, so there are no public roots to load),
//! unless told `--insecure-upstream`, which accepts any certificate and says
//! so loudly.
//!
//! Everything uses the `ring` crypto provider, passed explicitly to every
//! rustls builder ([`crypto_provider`]), so no process-wide default is relied
//! on or installed.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig,
    SignatureScheme,
};
use tokio_rustls::TlsAcceptor;

/// The names the self-signed certificate is valid for: every way to say loopback.
pub const LOCAL_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// How long a TLS handshake may take, on either side (Go's
/// `TLSHandshakeTimeout` in the article's Transport: 10 s).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The file name of the certificate `lab realserver --tls` writes by default,
/// in the system temp directory.
pub const DEFAULT_CERT_FILE_NAME: &str = "lab-realserver-cert.pem";

/// Why TLS could not be set up, with the next step in the message.
///
/// Each message is whole (the cause is in it, not in `source()`), so that it
/// reads the same printed alone or in an error chain.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot make a self-signed certificate: {0}")]
    Generate(rcgen::Error),

    #[error(
        "cannot write the certificate to {}: {error}; choose another file with --tls-cert-out PATH",
        path.display()
    )]
    WriteCert {
        path: PathBuf,
        error: std::io::Error,
    },

    #[error(
        "cannot read certificates from {}: {error}; give a PEM file of one or more certificates \
         (`lab realserver --tls` logs where it wrote its own)",
        path.display()
    )]
    ReadCa {
        path: PathBuf,
        error: rustls::pki_types::pem::Error,
    },

    #[error(
        "{} holds no certificate (no -----BEGIN CERTIFICATE----- block); give the PEM file that \
         `lab realserver --tls` wrote (it logs where), or your CA's certificate",
        path.display()
    )]
    NoCertificate { path: PathBuf },

    #[error(
        "{} holds a certificate that cannot be trusted as a root: {error}; give the upstream's \
         own certificate or the CA that signed it",
        path.display()
    )]
    BadCa { path: PathBuf, error: rustls::Error },

    #[error("cannot set up TLS: {0}")]
    Config(rustls::Error),
}

impl From<rcgen::Error> for TlsError {
    fn from(error: rcgen::Error) -> Self {
        TlsError::Generate(error)
    }
}

impl From<rustls::Error> for TlsError {
    fn from(error: rustls::Error) -> Self {
        TlsError::Config(error)
    }
}

/// The crypto provider of every TLS config of the lab: `ring`, chosen here
/// explicitly rather than through rustls's process-wide default.
pub fn crypto_provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

/// Where `lab realserver --tls` writes its certificate unless told
/// `--tls-cert-out`: `lab-realserver-cert.pem` in the system temp directory.
pub fn default_cert_path() -> PathBuf {
    std::env::temp_dir().join(DEFAULT_CERT_FILE_NAME)
}

/// A certificate made at start, signed by its own key, for [`LOCAL_NAMES`].
pub struct SelfSignedCert {
    cert: CertificateDer<'static>,
    key: PrivatePkcs8KeyDer<'static>,
    pem: String,
}

impl std::fmt::Debug for SelfSignedCert {
    // Never print the private key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SelfSignedCert")
            .field("names", &LOCAL_NAMES)
            .finish_non_exhaustive()
    }
}

impl SelfSignedCert {
    /// Makes a new key pair (ECDSA P-256) and a certificate for [`LOCAL_NAMES`].
    pub fn generate() -> Result<SelfSignedCert, TlsError> {
        let names: Vec<String> = LOCAL_NAMES.iter().map(|name| name.to_string()).collect();
        // rcgen makes `127.0.0.1` and `::1` IP-address names, `localhost` a DNS name.
        let mut params = rcgen::CertificateParams::new(names)?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "lab realserver (self-signed)");
        let key_pair = rcgen::KeyPair::generate()?;
        let cert = params.self_signed(&key_pair)?;
        Ok(SelfSignedCert {
            pem: cert.pem(),
            cert: cert.der().clone(),
            key: PrivatePkcs8KeyDer::from(key_pair.serialize_der()),
        })
    }

    /// The certificate as PEM: what a client is given to trust.
    pub fn pem(&self) -> &str {
        &self.pem
    }

    /// The certificate as DER.
    pub fn der(&self) -> &CertificateDer<'static> {
        &self.cert
    }

    /// Writes the certificate (never the key) as PEM to `path`, replacing the file.
    pub fn write_pem(&self, path: &Path) -> Result<(), TlsError> {
        std::fs::write(path, self.pem.as_bytes()).map_err(|error| TlsError::WriteCert {
            path: path.to_path_buf(),
            error,
        })
    }

    /// A server config presenting this certificate, HTTP/1.1 by ALPN.
    pub fn server_config(&self) -> Result<Arc<ServerConfig>, TlsError> {
        let mut config = ServerConfig::builder_with_provider(crypto_provider())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(
                vec![self.cert.clone()],
                PrivateKeyDer::Pkcs8(self.key.clone_key()),
            )?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

/// What a server needs to serve HTTPS: its TLS config and, when it was
/// written for clients, where its certificate is.
#[derive(Debug, Clone)]
pub struct ServerTls {
    config: Arc<ServerConfig>,
    cert_file: Option<PathBuf>,
}

impl ServerTls {
    /// Serves with `config`; `cert_file`, if any, is only for telling clients.
    pub fn new(config: Arc<ServerConfig>, cert_file: Option<PathBuf>) -> ServerTls {
        ServerTls { config, cert_file }
    }

    /// Makes a [`SelfSignedCert`], writes its PEM to `cert_file` for clients
    /// to trust, and serves with it: `lab realserver --tls`.
    pub fn self_signed(cert_file: &Path) -> Result<ServerTls, TlsError> {
        let cert = SelfSignedCert::generate()?;
        cert.write_pem(cert_file)?;
        Ok(ServerTls::new(
            cert.server_config()?,
            Some(cert_file.to_path_buf()),
        ))
    }

    /// The acceptor for [`crate::server::serve_tls`].
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.config.clone())
    }

    /// Where the certificate was written for clients, if it was.
    pub fn cert_file(&self) -> Option<&Path> {
        self.cert_file.as_deref()
    }
}

/// Which certificates a client of `https://` upstreams accepts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum UpstreamTrust {
    /// None: no CA was given, so every `https://` upstream is refused (with a
    /// hint to pass `--upstream-ca`). Plain `http://` works as ever.
    #[default]
    Unconfigured,
    /// Certificates signed by one in this PEM file (or that are one of them,
    /// as a self-signed certificate is): `--upstream-ca FILE`.
    CaFile(PathBuf),
    /// Any certificate at all: `--insecure-upstream`. The connection is
    /// encrypted but the upstream is not authenticated.
    Insecure,
}

/// The client config for upstream connections: no client certificate, no
/// ALPN (HTTP/1.1), trusting what `trust` says.
pub fn client_config(trust: &UpstreamTrust) -> Result<Arc<ClientConfig>, TlsError> {
    let builder = ClientConfig::builder_with_provider(crypto_provider())
        .with_safe_default_protocol_versions()?;
    let config = match trust {
        UpstreamTrust::CaFile(path) => builder
            .with_root_certificates(load_roots(path)?)
            .with_no_client_auth(),
        UpstreamTrust::Unconfigured => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(FixedVerdict::refuse_all()))
            .with_no_client_auth(),
        UpstreamTrust::Insecure => {
            tracing::warn!(
                "INSECURE: --insecure-upstream accepts ANY certificate from https:// upstreams: \
                 the traffic is encrypted, but anyone on the path can pose as the upstream. \
                 Use it only in a lab; to authenticate the upstream, pass --upstream-ca FILE instead"
            );
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(FixedVerdict::accept_any()))
                .with_no_client_auth()
        }
    };
    Ok(Arc::new(config))
}

/// Reads every certificate of a PEM file into a root store.
fn load_roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let read_error = |error| TlsError::ReadCa {
        path: path.to_path_buf(),
        error,
    };
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(path).map_err(read_error)? {
        roots
            .add(cert.map_err(read_error)?)
            .map_err(|error| TlsError::BadCa {
                path: path.to_path_buf(),
                error,
            })?;
    }
    if roots.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(roots)
}

/// The signature checks of the handshake, shared by the two verifiers below:
/// whatever the certificate, the peer must prove it holds its key.
#[derive(Debug)]
struct HandshakeSignatures(WebPkiSupportedAlgorithms);

impl HandshakeSignatures {
    fn new() -> HandshakeSignatures {
        HandshakeSignatures(crypto_provider().signature_verification_algorithms)
    }

    fn tls12(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn tls13(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

/// A verifier whose verdict on the certificate is decided in advance:
/// - `--insecure-upstream` accepts every server certificate without looking
///   at it (not its issuer, names or dates);
/// - with no CA configured, every certificate is refused as from an unknown
///   issuer (rustls cannot build a verifier with no roots at all).
///
/// Either way the handshake signatures are checked, which proves nothing
/// about *who* the peer is.
#[derive(Debug)]
pub struct FixedVerdict {
    accept: bool,
    signatures: HandshakeSignatures,
}

impl FixedVerdict {
    /// `--insecure-upstream`.
    pub fn accept_any() -> Self {
        FixedVerdict {
            accept: true,
            signatures: HandshakeSignatures::new(),
        }
    }

    /// No CA given.
    pub fn refuse_all() -> Self {
        FixedVerdict {
            accept: false,
            signatures: HandshakeSignatures::new(),
        }
    }
}

impl ServerCertVerifier for FixedVerdict {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self.accept {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.signatures.tls12(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.signatures.tls13(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.signatures.schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::client::WebPkiServerVerifier;

    fn verifier_trusting(cert: &SelfSignedCert) -> Arc<WebPkiServerVerifier> {
        let mut roots = RootCertStore::empty();
        roots.add(cert.der().clone()).unwrap();
        WebPkiServerVerifier::builder_with_provider(Arc::new(roots), crypto_provider())
            .build()
            .unwrap()
    }

    #[test]
    fn the_certificate_is_valid_for_every_loopback_name_and_no_other() {
        let cert = SelfSignedCert::generate().unwrap();
        let verifier = verifier_trusting(&cert);
        for name in LOCAL_NAMES {
            let server_name = ServerName::try_from(name).unwrap();
            verifier
                .verify_server_cert(cert.der(), &[], &server_name, &[], UnixTime::now())
                .unwrap_or_else(|err| panic!("{name}: {err}"));
        }
        for name in ["example.com", "127.0.0.2"] {
            let server_name = ServerName::try_from(name).unwrap();
            let err = verifier
                .verify_server_cert(cert.der(), &[], &server_name, &[], UnixTime::now())
                .expect_err(name);
            assert!(
                err.to_string().contains("not valid for name"),
                "{name}: {err}"
            );
        }
    }

    #[test]
    fn another_certificate_is_not_trusted() {
        let trusted = SelfSignedCert::generate().unwrap();
        let other = SelfSignedCert::generate().unwrap();
        let verifier = verifier_trusting(&trusted);
        let name = ServerName::try_from("localhost").unwrap();
        let err = verifier
            .verify_server_cert(other.der(), &[], &name, &[], UnixTime::now())
            .unwrap_err();
        assert!(
            matches!(
                err,
                rustls::Error::InvalidCertificate(CertificateError::BadSignature)
                    | rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)
            ),
            "{err:?}"
        );
    }

    #[test]
    fn the_pem_round_trips_and_holds_no_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cert.pem");
        let cert = SelfSignedCert::generate().unwrap();
        cert.write_pem(&path).unwrap();
        let written = std::fs::read_to_string(&path).unwrap();
        assert!(
            written.starts_with("-----BEGIN CERTIFICATE-----"),
            "{written}"
        );
        assert!(!written.contains("PRIVATE KEY"), "{written}");
        let roots = load_roots(&path).unwrap();
        assert_eq!(roots.len(), 1);
        assert!(!format!("{cert:?}").contains("key"), "{cert:?}");
    }

    #[test]
    fn ca_files_that_cannot_be_used_say_what_to_give_instead() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let err = client_config(&UpstreamTrust::CaFile(missing.clone())).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, TlsError::ReadCa { .. }), "{msg}");
        assert!(msg.contains(&missing.display().to_string()), "{msg}");
        assert!(msg.contains("lab realserver --tls"), "{msg}");

        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let err = client_config(&UpstreamTrust::CaFile(empty)).unwrap_err();
        assert!(
            matches!(err, TlsError::NoCertificate { .. }),
            "{err}: expected NoCertificate"
        );
        assert!(err.to_string().contains("BEGIN CERTIFICATE"), "{err}");
    }

    #[test]
    fn unwritable_cert_paths_name_the_flag() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("no-such-dir").join("cert.pem");
        let err = ServerTls::self_signed(&path).unwrap_err();
        assert!(err.to_string().contains("--tls-cert-out"), "{err}");
    }

    #[test]
    fn the_default_cert_path_is_in_the_temp_dir() {
        let path = default_cert_path();
        assert!(path.starts_with(std::env::temp_dir()), "{}", path.display());
        assert!(path.ends_with(DEFAULT_CERT_FILE_NAME));
    }
}
