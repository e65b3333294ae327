//! Env var names, exactly Reloader's, so a migrated workload keeps its variable.

use crate::reload::keys::ENV_PREFIX;
use crate::reload::model::SourceRef;

/// `STAKATER_<NAME>_CONFIGMAP` / `STAKATER_<NAME>_SECRET`.
pub fn env_var_name(src: &SourceRef) -> String {
    format!(
        "{ENV_PREFIX}{}_{}",
        convert_to_env_var_name(&src.name),
        src.kind.env_suffix()
    )
}

/// Reloader's ConvertToEnvVarName: upper-case, keep `[A-Z0-9]`, and turn each run of other
/// characters into one `_`, but only after a kept character. So leading junk is dropped and
/// a trailing run leaves a trailing `_` (`name-` → `NAME_`), as in Reloader.
///
/// Go upper-cases rune by rune with the simple one-to-one mapping and then looks at bytes;
/// only ASCII bytes can be kept, so a character counts when its simple upper-case form is a
/// single ASCII letter or digit (`ı` → `I`), and never when the full mapping expands
/// (`ß` → `SS` in Rust, unchanged `ß` in Go).
pub fn convert_to_env_var_name(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut last_valid = false;
    for ch in s.chars() {
        let mut upper = ch.to_uppercase();
        let kept = match (upper.next(), upper.next()) {
            (Some(u), None) if u.is_ascii_uppercase() || u.is_ascii_digit() => Some(u),
            _ => None,
        };
        match kept {
            Some(u) => {
                out.push(u);
                last_valid = true;
            }
            None => {
                if last_valid {
                    out.push('_');
                }
                last_valid = false;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_var_names() {
        let cases = [
            (
                SourceRef::configmap("my-config"),
                "STAKATER_MY_CONFIG_CONFIGMAP",
            ),
            (SourceRef::secret("app.v1"), "STAKATER_APP_V1_SECRET"),
            (SourceRef::configmap("a"), "STAKATER_A_CONFIGMAP"),
        ];
        for (src, want) in cases {
            assert_eq!(env_var_name(&src), want, "{src}");
        }
    }

    #[test]
    fn convert_by_hand() {
        // Worked by hand from Reloader's loop: upper-case, then for each byte keep [A-Z0-9],
        // else write '_' if the previous byte was kept.
        let cases = [
            // "--" dropped (nothing kept yet), "WEIRD", ".." → "_", "NAME", "--" → "_".
            ("--weird..name--", "WEIRD_NAME_"),
            ("my-config", "MY_CONFIG"),
            ("a.b-c_d", "A_B_C_D"),
            ("Mixed.Case9", "MIXED_CASE9"),
            ("123", "123"),
            ("x", "X"),
            ("", ""),
            ("...", ""),
            ("a__b", "A_B"),
            // Non-ASCII: "é" upper-cases to "É", two non-ASCII bytes → one '_' after "CAF".
            ("café-x", "CAF_X"),
            // Dotless ı's simple upper case is ASCII I in Go too.
            ("ıd", "ID"),
            // Go leaves ß unchanged (no one-rune upper case): dropped, not "SS".
            ("straße", "STRA_E"),
        ];
        for (input, want) in cases {
            assert_eq!(convert_to_env_var_name(input), want, "{input:?}");
        }
    }
}
