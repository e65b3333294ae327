//! The API server's client certificate for its webhook calls: an AdmissionConfiguration
//! whose kubeconfig gives every webhook (`*`) a certificate from the control plane's CA, so
//! a kreload started with `--client-ca-file=<that CA>` can require it. A webhook that asks
//! for no client certificate is not affected.

use std::path::{Path, PathBuf};

use kreload::certs::{self, CertPair};

/// Writes the certificate, its kubeconfig and the AdmissionConfiguration under `root`, and
/// returns the AdmissionConfiguration's path (for `--admission-control-config-file`).
pub fn write(root: &Path, identity: &CertPair) -> Result<PathBuf, certs::Error> {
    let cert = root.join("webhook-client.crt");
    let key = root.join("webhook-client.key");
    certs::write_file(&cert, &identity.cert_pem, false)?;
    certs::write_file(&key, &identity.key_pem, true)?;
    let kubeconfig = root.join("webhook-kubeconfig.yaml");
    let users = format!(
        "apiVersion: v1\nkind: Config\nusers:\n- name: '*'\n  user:\n    \
         client-certificate: {}\n    client-key: {}\n",
        cert.display(),
        key.display()
    );
    certs::write_file(&kubeconfig, &users, true)?;
    let plugin = |name: &str| {
        format!(
            "- name: {name}\n  configuration:\n    apiVersion: apiserver.config.k8s.io/v1\n    \
             kind: WebhookAdmissionConfiguration\n    kubeConfigFile: {}\n",
            kubeconfig.display()
        )
    };
    let config = format!(
        "apiVersion: apiserver.config.k8s.io/v1\nkind: AdmissionConfiguration\nplugins:\n{}{}",
        plugin("ValidatingAdmissionWebhook"),
        plugin("MutatingAdmissionWebhook")
    );
    let path = root.join("admission.yaml");
    certs::write_file(&path, &config, false)?;
    Ok(path)
}
