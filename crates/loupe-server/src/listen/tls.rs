//! TLS for `loupe serve --tls-cert FILE --tls-key FILE` (rustls).
//!
//! The certificate chain and key are PEM files, read once at start; a
//! problem with either stops the server before it listens, naming the file.
//! A client gets the handshake within the header read timeout or is
//! dropped: an unfinished handshake holds a connection slot like an
//! unfinished request head does.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{self, ServerConfig};

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("--tls-cert {path}: {problem}")]
    Cert { path: PathBuf, problem: String },
    #[error("--tls-key {path}: {problem}")]
    Key { path: PathBuf, problem: String },
    #[error("--tls-cert and --tls-key do not go together: {0}")]
    Mismatch(String),
}

/// The certificate chain and private key to serve TLS with.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TlsFiles {
    /// Reads both files and builds the acceptor (HTTP/1.1 over TLS 1.2+).
    pub fn acceptor(&self) -> Result<TlsAcceptor, TlsError> {
        let certs = read_certs(&self.cert)?;
        let key = read_key(&self.key)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Mismatch(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| TlsError::Mismatch(e.to_string()))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(TlsAcceptor::from(Arc::new(config)))
    }
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let problem = |problem: String| TlsError::Cert {
        path: path.to_path_buf(),
        problem,
    };
    let pem = std::fs::read(path).map_err(|e| problem(e.to_string()))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| problem(format!("not a PEM certificate chain: {e}")))?;
    if certs.is_empty() {
        return Err(problem(
            "no certificate in it (a PEM `CERTIFICATE` block)".into(),
        ));
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = std::fs::read(path).map_err(|e| TlsError::Key {
        path: path.to_path_buf(),
        problem: e.to_string(),
    })?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| TlsError::Key {
        path: path.to_path_buf(),
        problem: format!("no private key in it (PKCS#8, PKCS#1 or SEC1 PEM): {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    /// Why `files` is refused (it must be).
    fn refusal(files: TlsFiles) -> String {
        match files.acceptor() {
            Ok(_) => panic!("{files:?} was accepted"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn bad_files_are_named_with_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let made = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let cert = write(dir.path(), "cert.pem", &made.cert.pem());
        let key = write(dir.path(), "key.pem", &made.key_pair.serialize_pem());
        let good = TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
        };
        assert!(good.acceptor().is_ok());

        let missing = TlsFiles {
            cert: dir.path().join("nope.pem"),
            key: key.clone(),
        };
        let e = refusal(missing);
        assert!(
            e.starts_with("--tls-cert ") && e.contains("nope.pem"),
            "{e}"
        );

        let not_a_key = TlsFiles {
            cert: cert.clone(),
            key: cert.clone(),
        };
        let e = refusal(not_a_key);
        assert!(
            e.starts_with("--tls-key ") && e.contains("no private key"),
            "{e}"
        );

        let other = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let other_key = write(dir.path(), "other.pem", &other.key_pair.serialize_pem());
        let mismatched = TlsFiles {
            cert,
            key: other_key,
        };
        let e = refusal(mismatched);
        assert!(e.contains("do not go together"), "{e}");

        let empty = write(dir.path(), "empty.pem", "");
        let e = refusal(TlsFiles { cert: empty, key });
        assert!(e.contains("no certificate"), "{e}");
    }
}
