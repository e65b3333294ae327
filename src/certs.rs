//! Certificates made with rcgen: a CA, serving certificates and client certificates.
//!
//! `kreload certs` uses this for local runs, and the test harness uses it for the control
//! plane (API server serving certificate, client CA, admin client certificate) and for
//! kreload's own webhook certificate.

use std::fs;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("generating a key pair")]
    KeyPair(#[source] rcgen::Error),
    #[error("building certificate parameters for {subject}")]
    Params {
        subject: String,
        #[source]
        source: rcgen::Error,
    },
    #[error("signing the certificate for {subject}")]
    Sign {
        subject: String,
        #[source]
        source: rcgen::Error,
    },
    #[error("writing {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// A PEM certificate with its PEM (PKCS#8) private key.
#[derive(Clone)]
pub struct CertPair {
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for CertPair {
    // Never print private keys.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertPair").finish_non_exhaustive()
    }
}

/// A self-signed certificate authority that can issue leaf certificates.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pair: CertPair,
}

impl Ca {
    /// Creates a new self-signed CA with the given common name.
    pub fn new(common_name: &str) -> Result<Self, Error> {
        let key = KeyPair::generate().map_err(Error::KeyPair)?;
        let mut params =
            CertificateParams::new(Vec::<String>::new()).map_err(|source| Error::Params {
                subject: common_name.to_owned(),
                source,
            })?;
        params.distinguished_name = name(common_name, &[]);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key).map_err(|source| Error::Sign {
            subject: common_name.to_owned(),
            source,
        })?;
        let pair = CertPair {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        };
        Ok(Self {
            issuer: Issuer::new(params, key),
            pair,
        })
    }

    /// The CA certificate in PEM (what goes into a `caBundle` or a kubeconfig).
    pub fn cert_pem(&self) -> &str {
        &self.pair.cert_pem
    }

    /// The CA certificate and key.
    pub fn pair(&self) -> &CertPair {
        &self.pair
    }

    /// Issues a serving certificate valid for the given DNS names and IP addresses.
    pub fn issue_server(&self, dns_names: &[String], ips: &[IpAddr]) -> Result<CertPair, Error> {
        let subject = dns_names
            .first()
            .cloned()
            .or_else(|| ips.first().map(ToString::to_string))
            .unwrap_or_else(|| "kreload".to_owned());
        let mut params = self.leaf_params(&subject, &[])?;
        params.subject_alt_names = dns_names
            .iter()
            .map(|d| d.as_str().try_into().map(SanType::DnsName))
            .collect::<Result<_, _>>()
            .map_err(|source| Error::Params {
                subject: subject.clone(),
                source,
            })?;
        params
            .subject_alt_names
            .extend(ips.iter().map(|ip| SanType::IpAddress(*ip)));
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.sign(&subject, params)
    }

    /// Issues a client certificate; Kubernetes reads the user from the common name and the
    /// groups from the organizations.
    pub fn issue_client(&self, common_name: &str, groups: &[&str]) -> Result<CertPair, Error> {
        let mut params = self.leaf_params(common_name, groups)?;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.sign(common_name, params)
    }

    fn leaf_params(&self, common_name: &str, orgs: &[&str]) -> Result<CertificateParams, Error> {
        let mut params =
            CertificateParams::new(Vec::<String>::new()).map_err(|source| Error::Params {
                subject: common_name.to_owned(),
                source,
            })?;
        params.distinguished_name = name(common_name, orgs);
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.use_authority_key_identifier_extension = true;
        Ok(params)
    }

    fn sign(&self, subject: &str, params: CertificateParams) -> Result<CertPair, Error> {
        let key = KeyPair::generate().map_err(Error::KeyPair)?;
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(|source| Error::Sign {
                subject: subject.to_owned(),
                source,
            })?;
        Ok(CertPair {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

fn name(common_name: &str, orgs: &[&str]) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    for org in orgs {
        dn.push(DnType::OrganizationName, *org);
    }
    dn.push(DnType::CommonName, common_name);
    dn
}

/// A fresh key pair as PEM: (PKCS#8 private key, SubjectPublicKeyInfo public key); the API
/// server's service-account signing key and its verification key.
pub fn new_key_pair_pem() -> Result<(String, String), Error> {
    let key = KeyPair::generate().map_err(Error::KeyPair)?;
    Ok((key.serialize_pem(), key.public_key_pem()))
}

/// Writes `contents` to `path`, readable by the owner only when it is a key.
pub fn write_file(path: &Path, contents: &str, private: bool) -> Result<(), Error> {
    let err = |source| Error::Write {
        path: path.to_owned(),
        source,
    };
    fs::write(path, contents).map_err(err)?;
    if private {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(0o600)).map_err(err)?;
    }
    Ok(())
}

/// Files written by [`write_serving_bundle`].
#[derive(Debug, Clone)]
pub struct BundlePaths {
    pub ca_cert: PathBuf,
    pub ca_key: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Writes a new CA and a serving certificate for the given names into `dir`
/// (`ca.crt`, `ca.key`, `tls.crt`, `tls.key`, the names cert-manager and kubelet use).
pub fn write_serving_bundle(
    dir: &Path,
    dns_names: &[String],
    ips: &[IpAddr],
) -> Result<BundlePaths, Error> {
    fs::create_dir_all(dir).map_err(|source| Error::Write {
        path: dir.to_owned(),
        source,
    })?;
    let ca = Ca::new("kreload-ca")?;
    let leaf = ca.issue_server(dns_names, ips)?;
    let paths = BundlePaths {
        ca_cert: dir.join("ca.crt"),
        ca_key: dir.join("ca.key"),
        cert: dir.join("tls.crt"),
        key: dir.join("tls.key"),
    };
    write_file(&paths.ca_cert, ca.cert_pem(), false)?;
    write_file(&paths.ca_key, &ca.pair().key_pem, true)?;
    write_file(&paths.cert, &leaf.cert_pem, false)?;
    write_file(&paths.key, &leaf.key_pem, true)?;
    Ok(paths)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;

    #[test]
    fn serving_certificate_is_signed_by_the_ca_and_names_the_hosts() {
        let ca = Ca::new("test-ca").expect("ca");
        let leaf = ca
            .issue_server(
                &["kreload.kreload.svc".to_owned()],
                &["127.0.0.1".parse().expect("ip")],
            )
            .expect("leaf");
        let der = CertificateDer::from_pem_slice(leaf.cert_pem.as_bytes()).expect("one cert");
        let (_, parsed) = x509_parser::parse_x509_certificate(&der).expect("x509");
        let ca_der = CertificateDer::from_pem_slice(ca.cert_pem().as_bytes()).expect("one cert");
        let (_, ca_parsed) = x509_parser::parse_x509_certificate(&ca_der).expect("x509");
        assert_eq!(parsed.issuer(), ca_parsed.subject());
        parsed
            .verify_signature(Some(ca_parsed.public_key()))
            .expect("signed by the CA");
        let sans = parsed
            .subject_alternative_name()
            .expect("ext")
            .expect("sans");
        use x509_parser::extensions::GeneralName;
        let names = &sans.value.general_names;
        assert!(names.contains(&GeneralName::DNSName("kreload.kreload.svc")));
        assert!(names.contains(&GeneralName::IPAddress(&[127, 0, 0, 1])));
    }

    #[test]
    fn client_certificate_carries_user_and_group() {
        let ca = Ca::new("test-ca").expect("ca");
        let client = ca
            .issue_client("admin", &["system:masters"])
            .expect("client");
        let der = CertificateDer::from_pem_slice(client.cert_pem.as_bytes()).expect("one cert");
        let (_, parsed) = x509_parser::parse_x509_certificate(&der).expect("x509");
        let subject = parsed.subject().to_string();
        assert!(subject.contains("CN=admin"), "{subject}");
        assert!(subject.contains("O=system:masters"), "{subject}");
        assert!(!format!("{client:?}").contains("PRIVATE"));
    }
}
