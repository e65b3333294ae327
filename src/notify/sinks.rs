//! What is posted where: Reloader's alert payloads for each sink, and the body of
//! `--webhook-url`, byte for byte what Reloader sends, so receivers built for Reloader keep
//! working. Values only.

use serde_json::json;

/// `ALERT_SINK`: `slack`, `teams`, `gchat`, anything else the raw webhook (as in Reloader).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sink {
    Slack,
    Teams,
    GoogleChat,
    Raw,
}

impl Sink {
    /// Reloader lower-cases and trims the value, and falls back to the raw webhook.
    pub fn parse(s: &str) -> Sink {
        match s.trim().to_ascii_lowercase().as_str() {
            "slack" => Sink::Slack,
            "teams" => Sink::Teams,
            "gchat" => Sink::GoogleChat,
            _ => Sink::Raw,
        }
    }
}

/// A request body and its content type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Body {
    pub content_type: &'static str,
    pub text: String,
}

const JSON: &str = "application/json";

/// Reloader's `--webhook-url` body.
pub fn webhook() -> Body {
    Body {
        content_type: JSON,
        text: r#"{"webhook":"update successful"}"#.to_owned(),
    }
}

/// One reload, in the words of Reloader's alert (`*` marks what Slack shows in bold).
#[derive(Debug, Clone, Copy)]
pub struct Reloaded<'a> {
    pub source_name: &'a str,
    /// `CONFIGMAP` or `SECRET`.
    pub source_type: &'a str,
    pub namespace: &'a str,
    pub workload: &'a str,
    /// `Deployment`, `StatefulSet`, …
    pub workload_kind: &'a str,
}

/// The alert text; `additional` (`ALERT_ADDITIONAL_INFO`) goes first, as in Reloader.
pub fn alert_text(r: &Reloaded, additional: Option<&str>) -> String {
    let msg = format!(
        "kreload detected changes in *{}* of type *{}* in namespace *{}*. Hence reloaded *{}* of type *{}* in namespace *{}*",
        r.source_name, r.source_type, r.namespace, r.workload, r.workload_kind, r.namespace
    );
    match additional.map(str::trim) {
        Some(info) => format!("{info} : {msg}"),
        None => msg,
    }
}

/// The payload each sink gets for `text`, as Reloader builds it.
pub fn alert(sink: Sink, text: &str) -> Body {
    let text_json = |v: serde_json::Value| Body {
        content_type: JSON,
        text: v.to_string(),
    };
    match sink {
        // Reloader's Slack attachment: its fields in Go's struct order.
        Sink::Slack => Body {
            content_type: JSON,
            text: format!(
                r#"{{"attachments":[{{"color":"good","author_name":"Reloader","text":{}}}]}}"#,
                json!(text)
            ),
        },
        Sink::Teams | Sink::GoogleChat => text_json(json!({ "text": text })),
        Sink::Raw => Body {
            content_type: "text/plain",
            text: text.replace('*', ""),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> String {
        let r = Reloaded {
            source_name: "app-config",
            source_type: "CONFIGMAP",
            namespace: "shop",
            workload: "web",
            workload_kind: "Deployment",
        };
        alert_text(&r, Some(" cluster=eu-1 "))
    }

    #[test]
    fn every_sink_gets_reloaders_payload() {
        let text = sample();
        assert_eq!(
            text,
            "cluster=eu-1 : kreload detected changes in *app-config* of type *CONFIGMAP* in namespace *shop*. Hence reloaded *web* of type *Deployment* in namespace *shop*"
        );
        let slack = alert(Sink::Slack, "a \"b\"");
        assert_eq!(
            slack.text,
            r#"{"attachments":[{"color":"good","author_name":"Reloader","text":"a \"b\""}]}"#
        );
        assert_eq!(alert(Sink::Teams, "t").text, r#"{"text":"t"}"#);
        assert_eq!(alert(Sink::GoogleChat, "g").text, r#"{"text":"g"}"#);
        let raw = alert(Sink::Raw, &text);
        assert_eq!(raw.content_type, "text/plain");
        assert!(
            raw.text
                .starts_with("cluster=eu-1 : kreload detected changes in app-config of")
        );
        assert_eq!(webhook().text, r#"{"webhook":"update successful"}"#);
    }

    #[test]
    fn sinks_parse_as_reloader_reads_them() {
        assert_eq!(Sink::parse(" Slack "), Sink::Slack);
        assert_eq!(Sink::parse("teams"), Sink::Teams);
        assert_eq!(Sink::parse("GCHAT"), Sink::GoogleChat);
        assert_eq!(Sink::parse("webhook"), Sink::Raw);
        assert_eq!(Sink::parse(""), Sink::Raw);
    }
}
