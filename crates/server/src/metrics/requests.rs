//! Requests by route class, app, status class and scope
//! (`fal_requests_total`), and what a router request tells the counting
//! middleware about itself (its caller's scope, its app, its upstream's
//! time) through a task-local note.
//!
//! An app is a label only once the request's handler found it (a
//! registered app, or a queued request of one): a path naming anything
//! else counts under `app=""`, so no caller can add series at will.
//! Each worker keeps its own [`RequestCounter`], whose per-app counters
//! are looked up under a lock no other thread takes, and resolved to the
//! family's series once per label set.

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use fal_core::Scope;
use prometheus_client::encoding::{EncodeLabel, EncodeLabelSet, LabelSetEncoder};
use prometheus_client::metrics::family::Family;

use super::sharded::ShardedCounter;

/// Which part of the server a request went to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Route {
    /// Everything but the three below (the REST API, health, metrics).
    Api,
    /// `/run/…`, model calls.
    Run,
    /// `/queue/…`, the request queue.
    Queue,
    /// `/dashboard…`, the pages in the browser.
    Dashboard,
}

impl Route {
    const ALL: [Route; 4] = [Route::Api, Route::Run, Route::Queue, Route::Dashboard];

    /// The class of a request for `path`.
    pub fn of_path(path: &str) -> Route {
        let first = path.trim_start_matches('/').split('/').next();
        match first.unwrap_or_default() {
            "run" => Route::Run,
            "queue" => Route::Queue,
            "dashboard" => Route::Dashboard,
            _ => Route::Api,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Route::Api => "api",
            Route::Run => "run",
            Route::Queue => "queue",
            Route::Dashboard => "dashboard",
        }
    }
}

/// The scope a request was authenticated with, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum CallerScope {
    /// Not authenticated (no credentials, or refused ones).
    #[default]
    None,
    /// An API key (or a token minted with one).
    Api,
    /// An ADMIN key or a session.
    Admin,
}

impl CallerScope {
    const ALL: [CallerScope; 3] = [CallerScope::None, CallerScope::Api, CallerScope::Admin];

    fn as_str(self) -> &'static str {
        match self {
            CallerScope::None => "none",
            CallerScope::Api => "API",
            CallerScope::Admin => "ADMIN",
        }
    }
}

impl From<Scope> for CallerScope {
    fn from(s: Scope) -> CallerScope {
        match s {
            Scope::Api => CallerScope::Api,
            Scope::Admin => CallerScope::Admin,
        }
    }
}

/// Status classes, by the status's first digit.
const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// The index of `status`'s class in [`STATUS_CLASSES`].
fn class_of(status: u16) -> usize {
    usize::from(status / 100).clamp(1, 5) - 1
}

/// The labels of `fal_requests_total`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Labels {
    route: Route,
    app: Arc<str>,
    status: &'static str,
    scope: CallerScope,
}

impl EncodeLabelSet for Labels {
    fn encode(&self, e: &mut LabelSetEncoder) -> Result<(), std::fmt::Error> {
        ("route", self.route.as_str()).encode(e.encode_label())?;
        ("app", &*self.app).encode(e.encode_label())?;
        ("status", self.status).encode(e.encode_label())?;
        ("scope", self.scope.as_str()).encode(e.encode_label())
    }
}

/// The family of `fal_requests_total`.
pub type RequestFamily = Family<Labels, ShardedCounter>;

/// Every label set of one app: 4 routes × 5 classes × 3 scopes.
const SLOTS: usize = 4 * 5 * 3;

/// One app's counters (or those of requests with no app) on one worker,
/// each resolved to the family's series at its first use.
pub struct AppRequests {
    family: RequestFamily,
    app: Arc<str>,
    slots: [OnceLock<ShardedCounter>; SLOTS],
}

impl AppRequests {
    fn new(family: RequestFamily, app: &str) -> AppRequests {
        AppRequests {
            family,
            app: app.into(),
            slots: std::array::from_fn(|_| OnceLock::new()),
        }
    }

    /// Counts one answered request of this app.
    pub fn count(&self, route: Route, status: u16, scope: CallerScope) {
        let r = Route::ALL.iter().position(|&x| x == route).unwrap_or(0);
        let s = CallerScope::ALL
            .iter()
            .position(|&x| x == scope)
            .unwrap_or(0);
        let class = class_of(status);
        let slot = &self.slots[(r * 5 + class) * 3 + s];
        slot.get_or_init(|| {
            self.family.get_or_create_owned(&Labels {
                route,
                app: self.app.clone(),
                status: STATUS_CLASSES[class],
                scope,
            })
        })
        .inc();
    }
}

/// Apps a worker keeps counters for before it starts afresh (apps are
/// registered by operators and users, not made up by callers; this only
/// bounds what removed apps leave behind).
const MAX_APPS: usize = 10_000;

/// Counts requests, for one worker thread (see the module's comment).
pub struct RequestCounter {
    family: RequestFamily,
    no_app: AppRequests,
    apps: Mutex<HashMap<Box<str>, Arc<AppRequests>, foldhash::fast::RandomState>>,
}

impl RequestCounter {
    /// Counts into `family`.
    pub(super) fn new(family: RequestFamily) -> RequestCounter {
        RequestCounter {
            no_app: AppRequests::new(family.clone(), ""),
            family,
            apps: Mutex::default(),
        }
    }

    /// The counters of the app `owner/name`, which exists.
    pub fn app(&self, app: &str) -> Arc<AppRequests> {
        let mut apps = self.apps.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = apps.get(app) {
            return c.clone();
        }
        if apps.len() >= MAX_APPS {
            apps.clear();
        }
        let c = Arc::new(AppRequests::new(self.family.clone(), app));
        apps.insert(app.into(), c.clone());
        c
    }

    /// Counts one answered request; `app` (`owner/name`) only once the
    /// request's handler found it.
    pub fn count(&self, route: Route, app: Option<&str>, status: u16, scope: CallerScope) {
        match app {
            None => self.no_app.count(route, status, scope),
            Some(app) => self.app(app).count(route, status, scope),
        }
    }
}

/// What a router request learned about itself, for its count.
#[derive(Debug, Default)]
pub struct Noted {
    /// Its caller's scope, once authenticated.
    pub scope: CallerScope,
    /// Its app (`owner/name`), once found.
    pub app: Option<String>,
    /// How long its upstream took to answer (a forwarded model call).
    pub upstream: Option<Duration>,
}

tokio::task_local! {
    static NOTED: RefCell<Noted>;
}

/// Runs a router request with room for its note; gives back its outcome
/// and the note.
pub async fn noting<F: Future>(f: F) -> (F::Output, Noted) {
    NOTED
        .scope(RefCell::new(Noted::default()), async {
            let out = f.await;
            let noted = NOTED.try_with(|n| n.take()).unwrap_or_default();
            (out, noted)
        })
        .await
}

fn note(f: impl FnOnce(&mut Noted)) {
    let _ = NOTED.try_with(|n| f(&mut n.borrow_mut()));
}

/// The request's caller was authenticated with `scope`.
pub fn note_scope(scope: Scope) {
    note(|n| n.scope = scope.into());
}

/// The request is for the app `owner/name`, which exists.
pub fn note_app(owner: &str, name: &str) {
    note(|n| n.app = Some(format!("{owner}/{name}")));
}

/// The request's upstream answered (or failed) after `took`.
pub fn note_upstream(took: Duration) {
    note(|n| n.upstream = Some(took));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_fall_in_four_classes() {
        assert_eq!(Route::of_path("/run/a/b"), Route::Run);
        assert_eq!(Route::of_path("/run"), Route::Run);
        assert_eq!(Route::of_path("/queue/a/b/requests/1"), Route::Queue);
        assert_eq!(Route::of_path("/dashboard"), Route::Dashboard);
        assert_eq!(
            Route::of_path("/dashboard/static/app.css"),
            Route::Dashboard
        );
        assert_eq!(Route::of_path("/runner"), Route::Api);
        assert_eq!(Route::of_path("/keys"), Route::Api);
        assert_eq!(Route::of_path("/"), Route::Api);
    }

    #[test]
    fn statuses_fall_in_their_class() {
        assert_eq!(STATUS_CLASSES[class_of(200)], "2xx");
        assert_eq!(STATUS_CLASSES[class_of(404)], "4xx");
        assert_eq!(STATUS_CLASSES[class_of(599)], "5xx");
        assert_eq!(STATUS_CLASSES[class_of(101)], "1xx");
    }

    #[test]
    fn two_workers_count_into_the_same_series() {
        let family = RequestFamily::default();
        let (a, b) = (
            RequestCounter::new(family.clone()),
            RequestCounter::new(family.clone()),
        );
        a.count(Route::Run, Some("o/n"), 200, CallerScope::Api);
        b.count(Route::Run, Some("o/n"), 204, CallerScope::Api);
        b.count(Route::Run, None, 401, CallerScope::None);
        let series = |app: &str, status, scope| {
            family
                .get(&Labels {
                    route: Route::Run,
                    app: app.into(),
                    status,
                    scope,
                })
                .map(|c| c.get())
        };
        assert_eq!(series("o/n", "2xx", CallerScope::Api), Some(2));
        assert_eq!(series("", "4xx", CallerScope::None), Some(1));
        assert_eq!(series("o/n", "4xx", CallerScope::None), None);
    }
}
