//! The `kreload` binary's command line: `certs` writes usable files, and bad input fails
//! with a message that names the problem.

use rustls::pki_types::pem::PemObject as _;
use std::process::Command;

fn kreload(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_kreload"))
        .args(args)
        .env_remove("KUBECONFIG")
        .output()
        .expect("run kreload")
}

#[test]
fn certs_writes_a_ca_and_a_serving_certificate_for_the_given_names() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let out = kreload(&[
        "certs",
        "--dir",
        dir.path().to_str().expect("utf-8 path"),
        "--dns-names",
        "hooks.example.test",
        "--ips",
        "10.1.2.3",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for name in ["ca.crt", "ca.key", "tls.crt", "tls.key"] {
        assert!(dir.path().join(name).is_file(), "{name} missing");
    }
    let mode = std::fs::metadata(dir.path().join("tls.key"))
        .expect("key")
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0, "private key readable by others: {mode:o}");
    let pem = std::fs::read(dir.path().join("tls.crt")).expect("cert");
    let der = rustls::pki_types::CertificateDer::from_pem_slice(&pem).expect("a cert");
    let (_, cert) = x509_parser::parse_x509_certificate(&der).expect("x509");
    let sans = format!(
        "{:?}",
        cert.subject_alternative_name()
            .expect("ext")
            .expect("sans")
            .value
    );
    assert!(sans.contains("hooks.example.test"), "{sans}");
    assert!(sans.contains("[10, 1, 2, 3]"), "{sans}");
}

#[test]
fn serve_names_a_missing_certificate() {
    let out = kreload(&[
        "serve",
        "--tls-cert-file",
        "/nonexistent/tls.crt",
        "--tls-key-file",
        "/nonexistent/tls.key",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("loading the serving certificate"),
        "{stderr}"
    );
    assert!(stderr.contains("/nonexistent/tls.crt"), "{stderr}");
}

#[test]
fn serve_refuses_bad_flag_values_with_the_choices() {
    let out = kreload(&["serve", "--reload-strategy", "rolling"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("rolling"), "{stderr}");
    let out = kreload(&["serve", "--namespace-selector", "=x"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("--namespace-selector"), "{stderr}");
}

/// Reloader's chart passes its flags without a subcommand (its `args` replace the image's
/// `serve`): kreload runs `serve` with them, and here stops at the missing certificate.
#[test]
fn flags_without_a_subcommand_run_serve() {
    let out = kreload(&[
        "--log-level=info",
        "--tls-cert-file=/nonexistent/tls.crt",
        "--tls-key-file=/nonexistent/tls.key",
        "--listen-address=127.0.0.1:0",
        "--admin-address=127.0.0.1:0",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("serving certificate"),
        "not serve's error: {stderr}"
    );
}
