//! HTTPS servers with a self-signed certificate generated when the test runs.

use std::ops::Deref;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use rcgen::{CertificateParams, KeyPair};
use tokio::io::AsyncWriteExt;
use tokio_rustls::rustls::crypto::aws_lc_rs;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

use super::healthy::HEALTHY_BODY;
use super::http::{ok, RequestReader};
use super::server::{bind_loopback, hold_until_client_closes, Accepted, Server};

/// A self-signed certificate and its private key, an ECDSA P-256 key generated with it.
///
/// A client rejects it with its default roots, and trusts it once
/// [`TestCertificate::root`] is added with `ClientBuilder::add_root_certificate`.
#[derive(Debug)]
pub struct TestCertificate {
    certificate: CertificateDer<'static>,
    /// The private key in PKCS #8 DER form.
    key: Vec<u8>,
}

impl TestCertificate {
    /// Generates a certificate for the DNS names in `names` that is valid now.
    pub fn self_signed(names: &[&str]) -> Self {
        let params = params_for(names);
        Self::sign(&params)
    }

    /// Generates a certificate for `names` that was valid only during the year 2000.
    pub fn expired(names: &[&str]) -> Self {
        let mut params = params_for(names);
        params.not_before = rcgen::date_time_ymd(2000, 1, 1);
        params.not_after = rcgen::date_time_ymd(2001, 1, 1);
        Self::sign(&params)
    }

    /// Generates a certificate for `names` that becomes valid only in the year 2999.
    pub fn not_yet_valid(names: &[&str]) -> Self {
        let mut params = params_for(names);
        params.not_before = rcgen::date_time_ymd(2999, 1, 1);
        params.not_after = rcgen::date_time_ymd(3000, 1, 1);
        Self::sign(&params)
    }

    fn sign(params: &CertificateParams) -> Self {
        let key = KeyPair::generate().expect("failed to generate a test key pair");
        let certificate = params
            .self_signed(&key)
            .expect("failed to sign the test certificate");
        Self {
            certificate: certificate.der().clone(),
            key: key.serialize_der(),
        }
    }

    /// Returns the certificate as a root for `reqwest::ClientBuilder::add_root_certificate`.
    pub fn root(&self) -> reqwest::Certificate {
        reqwest::Certificate::from_der(&self.certificate)
            .expect("reqwest rejected the generated test certificate")
    }

    /// Builds a TLS server configuration that presents this certificate and
    /// uses the aws-lc-rs provider, the one reqwest's `rustls` feature uses.
    fn server_config(&self) -> ServerConfig {
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key.clone()));
        ServerConfig::builder_with_provider(Arc::new(aws_lc_rs::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("aws-lc-rs supports the default TLS versions")
            .with_no_client_auth()
            .with_single_cert(vec![self.certificate.clone()], key)
            .expect("rustls rejected the generated test certificate or key")
    }
}

fn params_for(names: &[&str]) -> CertificateParams {
    let names: Vec<String> = names.iter().map(|name| (*name).to_owned()).collect();
    CertificateParams::new(names).expect("the test certificate names are valid DNS names")
}

/// The behavior of a [`TlsServer`] on a connection after the TLS handshake.
#[derive(Debug, Clone, Copy)]
enum AfterHandshake {
    /// Responds to every request with `200 OK` and body `ok`.
    Respond,
    /// Reads the request head and never sends a byte back.
    Stall,
}

/// An HTTPS server on 127.0.0.1 that presents a [`TestCertificate`].
///
/// The connection counter of [`Server`] counts TCP connections, and
/// [`TlsServer::handshakes`] counts the TLS handshakes that completed, so a
/// test can tell a client that rejected the certificate from one that never
/// connected.
#[derive(Debug)]
pub struct TlsServer {
    server: Server,
    handshakes: Arc<AtomicUsize>,
}

impl TlsServer {
    /// Starts a server that responds to every request with `200 OK` and body `ok`,
    /// keeping connections alive.
    pub async fn responding(certificate: &TestCertificate) -> Self {
        Self::start(certificate, AfterHandshake::Respond).await
    }

    /// Simulates a hung backend behind TLS: completes the handshake, reads the
    /// request head and never responds, keeping the socket open.
    pub async fn stalling(certificate: &TestCertificate) -> Self {
        Self::start(certificate, AfterHandshake::Stall).await
    }

    async fn start(certificate: &TestCertificate, after: AfterHandshake) -> Self {
        let acceptor = TlsAcceptor::from(Arc::new(certificate.server_config()));
        let handshakes = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&handshakes);
        let server = Server::spawn(bind_loopback().await, move |connection| {
            serve_tls(connection, acceptor.clone(), Arc::clone(&counter), after)
        });
        Self { server, handshakes }
    }

    /// Number of TLS handshakes that completed, across all connections.
    pub fn handshakes(&self) -> usize {
        self.handshakes.load(Ordering::SeqCst)
    }

    /// `https://HOST:PORT` followed by `path`, for a client that maps `host`
    /// to this server with `ClientBuilder::resolve`.
    pub fn url_for_host(&self, host: &str, path: &str) -> String {
        let separator = if path.starts_with('/') { "" } else { "/" };
        format!("https://{host}:{}{separator}{path}", self.port())
    }
}

impl Deref for TlsServer {
    type Target = Server;

    fn deref(&self) -> &Server {
        &self.server
    }
}

async fn serve_tls(
    connection: Accepted,
    acceptor: TlsAcceptor,
    handshakes: Arc<AtomicUsize>,
    after: AfterHandshake,
) {
    let Accepted { stream, stats, .. } = connection;
    // A client that rejects the certificate aborts the handshake with an alert.
    let Ok(mut stream) = acceptor.accept(stream).await else {
        return;
    };
    handshakes.fetch_add(1, Ordering::SeqCst);

    let mut reader = RequestReader::new();
    match after {
        AfterHandshake::Respond => {
            while let Ok(Some(_head)) = reader.read_request(&mut stream).await {
                stats.record_request();
                // tokio-rustls may keep encrypted bytes buffered until a flush.
                let sent = stream.write_all(&ok(HEALTHY_BODY)).await;
                if sent.is_err() || stream.flush().await.is_err() {
                    break;
                }
            }
            stats.record_close();
        }
        AfterHandshake::Stall => {
            if let Ok(Some(_head)) = reader.read_head(&mut stream).await {
                stats.record_request();
            }
            hold_until_client_closes(&mut stream, &stats).await;
        }
    }
}
