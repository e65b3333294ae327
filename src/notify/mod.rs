//! Where reload reports go besides Events: Reloader's alert sinks (`ALERT_*`) and its
//! `--webhook-url`. Posts run on a task of their own behind a bounded channel: sending
//! never waits, so a failing or slow sink never delays or blocks a reload; when the channel
//! is full the report is dropped and logged.

pub mod http;
pub mod sinks;

use futures::StreamExt as _;
use tokio::sync::mpsc;

use self::http::Poster;
use self::sinks::{Body, Reloaded, Sink};

/// Reports waiting to be posted at once; more are dropped.
const CAPACITY: usize = 256;
/// Posts in flight at once.
const CONCURRENCY: usize = 4;

/// Reloader's alert settings.
#[derive(Debug, Clone)]
pub struct Alerts {
    pub sink: Sink,
    pub url: String,
    pub proxy: Option<String>,
    pub additional_info: Option<String>,
}

/// What the notifier was configured with.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub alerts: Option<Alerts>,
    /// `--webhook-url`: post here instead of reloading.
    pub webhook_url: Option<String>,
}

struct Job {
    url: String,
    body: Body,
    proxied: bool,
}

/// Sends reports without waiting. Cheap to clone.
#[derive(Clone)]
pub struct Notifier {
    tx: Option<mpsc::Sender<Job>>,
    settings: std::sync::Arc<Settings>,
}

impl Notifier {
    /// A notifier that posts nowhere.
    pub fn none() -> Notifier {
        Notifier {
            tx: None,
            settings: Default::default(),
        }
    }

    /// Starts the posting task (when anything is configured). Errors come from a bad proxy
    /// URL or unreadable system roots.
    pub fn start(settings: Settings) -> Result<Notifier, http::Error> {
        if settings.alerts.is_none() && settings.webhook_url.is_none() {
            return Ok(Notifier::none());
        }
        let direct = Poster::new(None)?;
        let proxy = settings.alerts.as_ref().and_then(|a| a.proxy.as_deref());
        let proxied = Poster::new(proxy)?;
        let (tx, rx) = mpsc::channel::<Job>(CAPACITY);
        tokio::spawn(
            tokio_stream_of(rx).for_each_concurrent(CONCURRENCY, move |job| {
                let poster = if job.proxied { proxied.clone() } else { direct.clone() };
                async move {
                    match poster.post(&job.url, &job.body).await {
                        Ok(status) => tracing::debug!(%status, "report posted"),
                        Err(error) => tracing::warn!(error = %crate::kube::retry::error_chain(&error), "cannot post the report"),
                    }
                }
            }),
        );
        Ok(Notifier {
            tx: Some(tx),
            settings: std::sync::Arc::new(settings),
        })
    }

    /// Whether `--webhook-url` replaces reloading.
    pub fn replaces_reloads(&self) -> bool {
        self.settings.webhook_url.is_some()
    }

    /// Reloader's `--webhook-url` post for one change.
    pub fn changed(&self) {
        if let Some(url) = &self.settings.webhook_url {
            self.send(Job {
                url: url.clone(),
                body: sinks::webhook(),
                proxied: false,
            });
        }
    }

    /// The alert for one reload, when alerts are on.
    pub fn reloaded(&self, r: &Reloaded) {
        if let Some(a) = &self.settings.alerts {
            let text = sinks::alert_text(r, a.additional_info.as_deref());
            self.send(Job {
                url: a.url.clone(),
                body: sinks::alert(a.sink, &text),
                proxied: true,
            });
        }
    }

    fn send(&self, job: Job) {
        let Some(tx) = &self.tx else { return };
        if let Err(mpsc::error::TrySendError::Full(_)) = tx.try_send(job) {
            tracing::warn!("too many reports waiting to be posted; one dropped");
        }
    }
}

fn tokio_stream_of<T: Send + 'static>(mut rx: mpsc::Receiver<T>) -> impl futures::Stream<Item = T> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}
