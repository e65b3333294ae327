//! Content hashes, byte-for-byte the ones Reloader computes, so that a workload Reloader
//! already stamped is seen as up to date and a migration restarts nothing.
//!
//! The algorithm (Reloader's util.go): one `key=value` entry per data item, the entries
//! sorted bytewise, joined with `;`, SHA-1, lowercase hex.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use sha1::{Digest, Sha1};

/// ConfigMap hash: `data` values as they are, `binaryData` values standard-base64 encoded.
pub fn configmap_hash(
    data: Option<&BTreeMap<String, String>>,
    binary_data: Option<&BTreeMap<String, ByteString>>,
) -> String {
    let text = data
        .into_iter()
        .flatten()
        .map(|(k, v)| entry(k, v.as_bytes()));
    let binary = binary_data
        .into_iter()
        .flatten()
        .map(|(k, v)| entry(k, STANDARD.encode(&v.0).as_bytes()));
    digest(text.chain(binary).collect())
}

/// Secret hash over the raw bytes of `data` (Go's `string([]byte)` keeps bytes as they are,
/// so invalid UTF-8 must not be replaced). `stringData` is write-only and normally already
/// merged by the API server; if present it overrides `data`, as the server would.
pub fn secret_hash(
    data: Option<&BTreeMap<String, ByteString>>,
    string_data: Option<&BTreeMap<String, String>>,
) -> String {
    let mut merged: BTreeMap<&str, &[u8]> = data
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.as_str(), v.0.as_slice()))
        .collect();
    for (k, v) in string_data.into_iter().flatten() {
        merged.insert(k, v.as_bytes());
    }
    digest(merged.into_iter().map(|(k, v)| entry(k, v)).collect())
}

/// SecretProviderClass hash, from one `SecretProviderClassPodStatus`'s status: one
/// `id=version` entry per mounted object plus `SecretProviderClassName=<spc>`, sorted and
/// joined like the others (Reloader's GetSHAfromSecretProviderClassPodStatus in
/// internal/pkg/util/util.go). The provider's versions change on rotation; the content never
/// reaches the API server, so this is all there is to hash.
pub fn secret_provider_class_hash<'a>(
    spc_name: &str,
    objects: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> String {
    let mut entries: Vec<Vec<u8>> = objects
        .into_iter()
        .map(|(id, version)| entry(id, version.as_bytes()))
        .collect();
    entries.push(entry("SecretProviderClassName", spc_name.as_bytes()));
    digest(entries)
}

/// What Reloader hashes for a deleted source under the annotations strategy.
pub const DELETE_MARKER: &str = "__RELOADER_EMPTY_DELETE_MARKER__";

/// `sha1(DELETE_MARKER)`, the hash Reloader records in `last-reloaded-from` for a deleted
/// source (`aae45bad…`).
pub fn delete_marker_hash() -> String {
    hex::encode(Sha1::digest(DELETE_MARKER.as_bytes()))
}

pub fn configmap_hash_of(cm: &ConfigMap) -> String {
    configmap_hash(cm.data.as_ref(), cm.binary_data.as_ref())
}

pub fn secret_hash_of(s: &Secret) -> String {
    secret_hash(s.data.as_ref(), s.string_data.as_ref())
}

fn entry(key: &str, value: &[u8]) -> Vec<u8> {
    let mut e = Vec::with_capacity(key.len() + 1 + value.len());
    e.extend_from_slice(key.as_bytes());
    e.push(b'=');
    e.extend_from_slice(value);
    e
}

/// Sorts whole entries, not keys: `a-b=…` sorts before `a=…` although key `a` sorts first,
/// and Reloader sorts the joined strings.
fn digest(mut entries: Vec<Vec<u8>>) -> String {
    entries.sort_unstable();
    let mut h = Sha1::new();
    for (i, e) in entries.iter().enumerate() {
        if i > 0 {
            h.update(b";");
        }
        h.update(e);
    }
    hex::encode(h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn bytes(pairs: &[(&str, &[u8])]) -> BTreeMap<String, ByteString> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), ByteString(v.to_vec())))
            .collect()
    }

    // Every expected value below was computed independently with Python:
    //   hashlib.sha1(b";".join(sorted(k.encode() + b"=" + v for k, v in items))).hexdigest()
    // with binaryData values replaced by base64.b64encode(v) first.

    #[test]
    fn empty_is_sha1_of_nothing() {
        // hashlib.sha1(b"").hexdigest()
        let empty = "da39a3ee5e6b4b0d3255bfef95601890afd80709";
        assert_eq!(configmap_hash(None, None), empty);
        assert_eq!(configmap_hash(Some(&text(&[])), Some(&bytes(&[]))), empty);
        assert_eq!(secret_hash(None, None), empty);
        assert_eq!(configmap_hash_of(&ConfigMap::default()), empty);
        assert_eq!(secret_hash_of(&Secret::default()), empty);
    }

    /// Vectors computed independently with Python's hashlib: `sha1(b"...").hexdigest()`
    /// of the string in the comment.
    const CONFIGMAP_VECTORS: &[(&[(&str, &str)], &str)] = &[
        // "a=1"
        (&[("a", "1")], "86eda770a6060824b090dd4df091e3bd4121279c"),
        // "a="
        (&[("a", "")], "30042aab716211a15ff4e0c635b9f7eaef2abbf4"),
        // "a=1;b=2;c=3", inserted out of order
        (
            &[("b", "2"), ("c", "3"), ("a", "1")],
            "112240a7d992e03a90439a8cee8f0281e19edf75",
        ),
        // "j=x;y=z;k=a=b;c": '=' and ';' inside values are not escaped
        (
            &[("k", "a=b;c"), ("j", "x;y=z")],
            "95663db1bf8dc21ca9f8821a82adb71ab9472961",
        ),
        // "a-b=3;a.b=2;a=1": entries, not keys, are sorted
        (
            &[("a", "1"), ("a.b", "2"), ("a-b", "3")],
            "eda5750b73d882eee5c905c71476939717fedbeb",
        ),
        // "z=1;ключ=значение" (UTF-8): non-ASCII sorts by UTF-8 bytes
        (
            &[("ключ", "значение"), ("z", "1")],
            "b39f31d59de1f48a28e846e72310363e67296845",
        ),
    ];

    #[test]
    fn configmap_vectors() {
        for (data, want) in CONFIGMAP_VECTORS {
            assert_eq!(configmap_hash(Some(&text(data)), None), *want, "{data:?}");
        }
    }

    #[test]
    fn configmap_binary_data_is_base64() {
        // sha1(b"bin=AAEC/w==;txt=hi"), base64.b64encode(bytes([0, 1, 2, 255])) == b"AAEC/w=="
        let data = text(&[("txt", "hi")]);
        let bin = bytes(&[("bin", &[0, 1, 2, 255])]);
        let want = "99d47e14b00d035b47c3fa7fc50f5932cb479534";
        assert_eq!(configmap_hash(Some(&data), Some(&bin)), want);
        let cm = ConfigMap {
            data: Some(data),
            binary_data: Some(bin),
            ..ConfigMap::default()
        };
        assert_eq!(configmap_hash_of(&cm), want);
    }

    #[test]
    fn secret_hashes_raw_bytes() {
        // sha1(b"tls.key=\xff\xfe\x00abc;user=admin")
        let data = bytes(&[("user", b"admin"), ("tls.key", b"\xff\xfe\x00abc")]);
        let want = "d70ed6e4184615f30ef0714b4665688d104d86d0";
        assert_eq!(secret_hash(Some(&data), None), want);
        // What a lossy UTF-8 conversion would have hashed (U+FFFD for each bad byte):
        // sha1("tls.key=\ufffd\ufffd\x00abc;user=admin".encode()).
        let lossy = bytes(&[
            ("user", b"admin"),
            ("tls.key", "\u{FFFD}\u{FFFD}\0abc".as_bytes()),
        ]);
        let lossy_hash = secret_hash(Some(&lossy), None);
        assert_eq!(lossy_hash, "c919b160c0f33b579ed0124e51c72f2dee2a66fb");
        assert_ne!(lossy_hash, want);
        let s = Secret {
            data: Some(data),
            ..Secret::default()
        };
        assert_eq!(secret_hash_of(&s), want);
    }

    #[test]
    fn secret_and_configmap_agree_on_text() {
        // The same text content hashes the same either way: sha1(b"a=1;b=2;c=3").
        let data = bytes(&[("a", b"1"), ("b", b"2"), ("c", b"3")]);
        assert_eq!(
            secret_hash(Some(&data), None),
            "112240a7d992e03a90439a8cee8f0281e19edf75"
        );
    }

    #[test]
    fn secret_provider_class_is_reloaders_hash() {
        // Computed by Reloader v1.4.21's GetSHAfromSecretProviderClassPodStatus
        // (internal/pkg/util/util.go, with crypto.GenerateSHA) restated in Go and run with
        // Go 1.25: Objects [{ID: "secret/db-password", Version: "v2"}, {ID: "secret/api-key",
        // Version: "7"}], SecretProviderClassName "vault-db". It hashes
        // "SecretProviderClassName=vault-db;secret/api-key=7;secret/db-password=v2" (Go's
        // sort.Strings: uppercase 'S' before lowercase 's').
        let want = "a75cc321702f1128daaf6dab6634e2916a6f7bb6";
        let objects = [("secret/db-password", "v2"), ("secret/api-key", "7")];
        assert_eq!(secret_provider_class_hash("vault-db", objects), want);
        // The objects' order does not matter.
        let reversed = [("secret/api-key", "7"), ("secret/db-password", "v2")];
        assert_eq!(secret_provider_class_hash("vault-db", reversed), want);
        // No objects: the class name alone, sha1("SecretProviderClassName=vault-db").
        assert_eq!(
            secret_provider_class_hash("vault-db", []),
            "1614effc0230aca4ac64801f4d1ec246d8b42938"
        );
        // A new version is a new hash.
        let rotated = [("secret/db-password", "v3"), ("secret/api-key", "7")];
        assert_ne!(secret_provider_class_hash("vault-db", rotated), want);
    }

    #[test]
    fn string_data_overrides_data() {
        // sha1(b"a=new;b=x")
        let data = bytes(&[("a", b"old")]);
        let string_data = text(&[("a", "new"), ("b", "x")]);
        let want = "727cd5ba968b747976797725e75d0a74b74e92f9";
        assert_eq!(secret_hash(Some(&data), Some(&string_data)), want);
        assert_eq!(secret_hash(None, Some(&string_data)), want);
    }
}
