//! `loupe serve --tls-cert/--tls-key`: HTTPS with a certificate made here.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ureq::tls::{Certificate, RootCerts, TlsConfig};

use crate::support::Server;

/// A self-signed certificate for `localhost`, written as PEM; its DER.
fn certificate(dir: &Path) -> (String, String, Vec<u8>) {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    std::fs::write(&cert, made.cert.pem()).unwrap();
    std::fs::write(&key, made.key_pair.serialize_pem()).unwrap();
    (
        cert.to_str().unwrap().to_string(),
        key.to_str().unwrap().to_string(),
        made.cert.der().to_vec(),
    )
}

fn client(trusted: Option<&[u8]>) -> ureq::Agent {
    let roots = match trusted {
        Some(der) => RootCerts::Specific(Arc::new(vec![Certificate::from_der(der).to_owned()])),
        None => RootCerts::WebPki,
    };
    ureq::Agent::config_builder()
        .tls_config(TlsConfig::builder().root_certs(roots).build())
        .http_status_as_error(false)
        .proxy(None)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into()
}

#[test]
fn https_for_a_client_that_trusts_the_certificate_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, der) = certificate(dir.path());
    let mut server = Server::with_args(&["--tls-cert", &cert, "--tls-key", &key]);
    let url = format!("https://localhost:{}", server.addr.port());

    // A client that trusts it: the API answers, writes included.
    let ok = client(Some(&der));
    let mut r = ok.get(format!("{url}/healthz")).call().unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.body_mut().read_to_string().unwrap().contains("\"ok\""));
    let r = ok
        .post(format!("{url}/api/v1/runs"))
        .content_type("application/json")
        .send(r#"{"id":"tls-run"}"#)
        .unwrap();
    assert_eq!(r.status(), 201);

    // One that does not: no answer, a certificate error.
    let e = client(None)
        .get(format!("{url}/healthz"))
        .call()
        .unwrap_err();
    assert!(
        e.to_string().to_lowercase().contains("certificate")
            || e.to_string().to_lowercase().contains("unknown issuer"),
        "{e}"
    );

    // Plain HTTP to the TLS port gets no HTTP answer.
    let mut s = TcpStream::connect(server.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    write!(s, "GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    assert!(
        !String::from_utf8_lossy(&got).starts_with("HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&got)
    );

    // SIGTERM with a TLS keep-alive connection open still ends promptly.
    let keep = client(Some(&der));
    assert_eq!(
        keep.get(format!("{url}/healthz")).call().unwrap().status(),
        200
    );
    let t = Instant::now();
    let status = server.sigterm();
    assert!(status.success(), "{status:?}");
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
}

#[test]
fn a_bad_key_file_stops_the_server_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, _, _) = certificate(dir.path());
    let out = crate::support::loupe_cmd()
        .args(["serve", "--addr", "127.0.0.1:0", "--data"])
        .arg(dir.path().join("data"))
        .args(["--tls-cert", &cert, "--tls-key", &cert])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--tls-key") && err.contains("cert.pem"),
        "{err}"
    );
}
