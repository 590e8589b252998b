//! `GET /metrics`, read by Prometheus' own reference parser (the Python
//! `prometheus_client`'s `text_string_to_metric_families`, from the
//! virtualenv `scripts/setup-python-client.sh` makes; without it these
//! tests say so loudly and pass, except under CI, where they fail): calls
//! of every route class move the counters under the right labels; an API
//! key is refused, ADMIN is served, `--metrics-listen` needs nothing; no
//! secret reaches the text; the queue's depth shows per app.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fal_core::{Scope, SystemClock};
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app_with};

/// The virtualenv's Python, or `None` (outside CI) after a loud skip.
pub(crate) fn python() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("FAL_TEST_PYTHON") {
        return Some(PathBuf::from(p));
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/fal-client-venv");
    let python = venv.join("bin/python");
    let has_parser = Command::new(&python)
        .args(["-c", "import prometheus_client"])
        .status()
        .is_ok_and(|s| s.success());
    if has_parser {
        return Some(python);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI is set but prometheus_client is missing: run scripts/setup-python-client.sh"
    );
    let _ = writeln!(
        std::io::stderr(),
        "*** SKIPPED metrics test: Prometheus' parser is missing; run scripts/setup-python-client.sh first ***"
    );
    None
}

/// Every sample of a scrape, as Prometheus' parser read it.
pub(crate) struct Scrape {
    text: String,
    samples: Vec<Value>,
}

/// Reads `text` with `prometheus_client.parser` (which raises on anything
/// it cannot parse).
pub(crate) fn parse(python: &Path, text: &str) -> Scrape {
    const SCRIPT: &str = "import sys, json\n\
        from prometheus_client.parser import text_string_to_metric_families\n\
        out = []\n\
        for f in text_string_to_metric_families(sys.stdin.read()):\n\
        \x20   for s in f.samples:\n\
        \x20       out.append({'family': f.name, 'type': f.type, 'name': s.name, 'labels': s.labels, 'value': s.value})\n\
        print(json.dumps(out))\n";
    let mut child = Command::new(python)
        .args(["-c", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "Prometheus' parser refused the scrape: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    Scrape {
        text: text.to_owned(),
        samples: serde_json::from_slice(&out.stdout).unwrap(),
    }
}

impl Scrape {
    /// The value of the sample `name` whose labels are exactly `labels`.
    pub(crate) fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.samples.iter().find_map(|s| {
            let l = s["labels"].as_object()?;
            let same = s["name"] == name
                && l.len() == labels.len()
                && labels.iter().all(|(k, v)| l.get(*k) == Some(&json!(v)));
            same.then(|| s["value"].as_f64().unwrap())
        })
    }

    /// [`Scrape::get`], 0 when absent (a series not yet made).
    pub(crate) fn count(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels).unwrap_or(0.0)
    }

    /// The type Prometheus' parser gave the family `family`.
    fn type_of(&self, family: &str) -> Option<&str> {
        self.samples
            .iter()
            .find(|s| s["family"] == family)
            .and_then(|s| s["type"].as_str())
    }
}

/// `GET /metrics` at `base` with `auth`: status and body.
async fn fetch(app: &TestApp, base: &str, auth: Option<&str>) -> (u16, String, String) {
    let mut req = app.http.get(format!("{base}/metrics"));
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, content_type, resp.text().await.unwrap())
}

/// Scrapes the main listener as the bootstrap admin.
async fn scrape(app: &TestApp, python: &Path) -> Scrape {
    let (status, _, text) = fetch(app, &app.url, Some(&app.admin_auth())).await;
    assert_eq!(status, 200, "{text}");
    parse(python, &text)
}

fn requests<'a>(
    route: &'a str,
    app: &'a str,
    status: &'a str,
    scope: &'a str,
) -> [(&'a str, &'a str); 4] {
    [
        ("route", route),
        ("app", app),
        ("status", status),
        ("scope", scope),
    ]
}

/// A model call on `path` with `auth` and a header that must never show,
/// sent by `http`: a client whose connections only ever carried model
/// calls takes the hand-written path; one that carried anything else was
/// handed to hyper and the router for good.
async fn run(http: &reqwest::Client, app: &TestApp, path: &str, auth: &str) -> u16 {
    let resp = http
        .post(format!("{}{path}", app.url))
        .header("authorization", auth)
        .header("x-private-note", "hdr-value-never-in-metrics")
        .body(r#"{"prompt": "hello"}"#)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let _ = resp.bytes().await;
    status
}

#[tokio::test]
async fn every_route_class_moves_its_counters_under_the_right_labels() {
    let Some(python) = python() else { return };
    let app = spawn_app_with(|c| c.demo = true, Arc::new(SystemClock)).await;
    let admin = app.admin_auth();
    let (api_id, api_secret) = app.other_user_key(Scope::Api).await;
    let api = format!("Key {api_id}:{api_secret}");
    let wrong = format!("Key {api_id}:{}", "x".repeat(api_secret.len()));
    let before = scrape(&app, &python).await;

    // Model calls on the hand-written path: the app is a label once found.
    let hand = reqwest::Client::new();
    for _ in 0..3 {
        assert_eq!(run(&hand, &app, "/run/fal-ai/echo", &admin).await, 200);
    }
    for _ in 0..2 {
        assert_eq!(run(&hand, &app, "/run/fal-ai/echo", &api).await, 200);
    }
    assert_eq!(run(&hand, &app, "/run/fal-ai/echo", &wrong).await, 401);
    assert_eq!(run(&hand, &app, "/run/nobody/nothing", &admin).await, 404);
    // And one through the router (this connection carried a scrape).
    assert_eq!(run(&app.http, &app, "/run/fal-ai/echo", &admin).await, 200);
    // No Authorization header: hyper and the router take it (401).
    let (status, _, _) = app
        .call(Method::POST, "/run/fal-ai/echo", None, Some("{}"))
        .await;
    assert_eq!(status, 401);
    // The REST API, the queue, the dashboard.
    let (status, _, _) = app.call(Method::GET, "/keys", Some(&admin), None).await;
    assert_eq!(status, 200);
    let (status, _, _) = app
        .call(Method::POST, "/queue/fal-ai/echo", Some(&api), Some("{}"))
        .await;
    assert_eq!(status, 200);
    let page = app.http.get(format!("{}/dashboard/login", app.url));
    let status = page.send().await.unwrap().status().as_u16();
    assert_eq!(status, 200);
    // The same app registered twice: the database's uniqueness rule.
    let add = r#"{"owner": "admin", "name": "twice", "upstream": "http://127.0.0.1:9"}"#;
    let (first, _, _) = app
        .call(Method::POST, "/apps", Some(&admin), Some(add))
        .await;
    let (second, _, _) = app
        .call(Method::POST, "/apps", Some(&admin), Some(add))
        .await;
    assert_eq!((first, second), (201, 409));

    let after = scrape(&app, &python).await;
    assert_eq!(after.type_of("fal_requests"), Some("counter"));
    let histogram = after.type_of("fal_gateway_request_duration_seconds");
    assert_eq!(histogram, Some("histogram"));
    let moved = |labels: &[(&str, &str)]| {
        after.count("fal_requests_total", labels) - before.count("fal_requests_total", labels)
    };
    assert_eq!(moved(&requests("run", "fal-ai/echo", "2xx", "ADMIN")), 4.0);
    assert_eq!(moved(&requests("run", "fal-ai/echo", "2xx", "API")), 2.0);
    assert_eq!(
        moved(&requests("run", "", "4xx", "none")),
        2.0,
        "bad key, no key"
    );
    assert_eq!(
        moved(&requests("run", "", "4xx", "ADMIN")),
        1.0,
        "unknown app"
    );
    assert_eq!(
        moved(&requests("run", "nobody/nothing", "4xx", "ADMIN")),
        0.0
    );
    assert_eq!(moved(&requests("queue", "fal-ai/echo", "2xx", "API")), 1.0);
    assert_eq!(moved(&requests("dashboard", "", "2xx", "none")), 1.0);
    assert!(
        moved(&requests("api", "", "2xx", "ADMIN")) >= 2.0,
        "GET /keys, a scrape"
    );
    assert_eq!(moved(&requests("api", "", "4xx", "ADMIN")), 1.0, "the 409");

    let refused = |reason| {
        let l = [("reason", reason)];
        after.count("fal_verifications_refused_total", &l)
            - before.count("fal_verifications_refused_total", &l)
    };
    assert_eq!(refused("invalid_credentials"), 1.0);
    assert_eq!(refused("missing_credentials"), 1.0);

    let delta = |name: &str, labels: &[(&str, &str)]| {
        after.count(name, labels) - before.count(name, labels)
    };
    // Five calls forwarded on the hand-written path, one by the router
    // (the queue's are not model calls of a client).
    assert_eq!(
        delta("fal_gateway_request_duration_seconds_count", &[]),
        6.0
    );
    assert_eq!(
        delta("fal_gateway_upstream_duration_seconds_count", &[]),
        6.0
    );
    let inf = after.count(
        "fal_gateway_request_duration_seconds_bucket",
        &[("le", "+Inf")],
    );
    assert_eq!(
        inf,
        after.count("fal_gateway_request_duration_seconds_count", &[])
    );
    assert!(after.count("fal_gateway_upstream_duration_seconds_sum", &[]) > 0.0);
    // Verification: every key call is a cache lookup.
    let hits = delta("fal_verify_duration_seconds_count", &[("cache", "hit")]);
    let misses = delta("fal_verify_duration_seconds_count", &[("cache", "miss")]);
    assert!(hits + misses >= 9.0, "hits {hits}, misses {misses}");
    assert_eq!(
        delta("fal_key_cache_lookups_total", &[("result", "hit")]),
        hits
    );
    assert!(after.count("fal_key_cache_records", &[]) >= 2.0);
    assert_eq!(after.get("fal_key_cache_capacity", &[]), Some(1_000_000.0));
    // One kept connection to the demo upstream, used again and again (by
    // the hand-written path; the router's hyper client keeps its own).
    assert!(after.count("fal_upstream_pool_opened_connections_total", &[]) >= 1.0);
    assert!(delta("fal_upstream_pool_reused_connections_total", &[]) >= 3.0);
    assert!(after.count("fal_upstream_pool_idle_connections", &[]) >= 1.0);
    // SQLite: four connections, and the queue's one of its own.
    assert_eq!(
        after.get("fal_db_pool_max_connections", &[("pool", "main")]),
        Some(4.0)
    );
    assert_eq!(
        after.get("fal_db_pool_max_connections", &[("pool", "queue")]),
        Some(1.0)
    );
    assert!(
        after
            .get(
                "fal_db_pool_connections",
                &[("pool", "main"), ("state", "idle")]
            )
            .is_some()
    );
    assert!(delta("fal_db_errors_total", &[("kind", "conflict")]) >= 1.0);

    // Nothing secret: no key's secret, not the refused one, no header value.
    for secret in [
        &app.admin_secret,
        &api_secret,
        &"x".repeat(api_secret.len()),
    ] {
        assert!(
            !after.text.contains(secret.as_str()),
            "a secret is in the scrape"
        );
    }
    assert!(!after.text.contains("hdr-value-never-in-metrics"));
    assert!(!after.text.contains("prompt"));
}

#[tokio::test]
async fn the_main_listener_serves_metrics_to_admin_callers_only() {
    let app = spawn_app_with(|_| {}, Arc::new(SystemClock)).await;
    let (api_id, api_secret) = app.other_user_key(Scope::Api).await;
    let (status, _, body) = fetch(&app, &app.url, None).await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("missing_credentials"), "{body}");
    let api = format!("Key {api_id}:{api_secret}");
    let (status, _, body) = fetch(&app, &app.url, Some(&api)).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("insufficient_scope"), "{body}");
    let (status, content_type, body) = fetch(&app, &app.url, Some(&app.admin_auth())).await;
    assert_eq!(status, 200);
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    assert!(body.contains("# TYPE fal_requests_total counter"), "{body}");
    // The refusals are counted too (what the parser reads is checked above).
    assert!(
        body.contains(r#"fal_verifications_refused_total{reason="missing_credentials"} 1"#),
        "{body}"
    );
}

#[tokio::test]
async fn the_metrics_listener_serves_metrics_without_credentials_and_nothing_else() {
    let Some(python) = python() else { return };
    let app = spawn_app_with(
        |c| c.metrics_listen = Some("127.0.0.1:0".parse().unwrap()),
        Arc::new(SystemClock),
    )
    .await;
    let addr = app.server.as_ref().unwrap().metrics_addr.expect("bound");
    assert_ne!(addr.port(), 0);
    let base = format!("http://{addr}");
    let (status, _, text) = fetch(&app, &base, None).await;
    assert_eq!(status, 200, "{text}");
    let scraped = parse(&python, &text);
    assert!(scraped.get("fal_key_cache_records", &[]).is_some());
    let (status, _, _) = app
        .call(Method::GET, "/keys", Some(&app.admin_auth()), None)
        .await;
    assert_eq!(status, 200);
    let (status, _, text) = fetch(&app, &base, None).await;
    assert_eq!(status, 200);
    let later = parse(&python, &text);
    assert_eq!(
        later.count("fal_requests_total", &requests("api", "", "2xx", "ADMIN"))
            - scraped.count("fal_requests_total", &requests("api", "", "2xx", "ADMIN")),
        1.0
    );
    // Only /metrics there; the main listener still wants an ADMIN key.
    let other = app.http.get(format!("{base}/keys")).send().await.unwrap();
    assert_eq!(other.status().as_u16(), 404);
    let (status, _, _) = fetch(&app, &app.url, None).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn the_queue_depth_and_age_show_per_app() {
    let Some(python) = python() else { return };
    let app = spawn_app_with(
        |c| {
            c.demo = true;
            c.queue_concurrency = 1;
        },
        Arc::new(SystemClock),
    )
    .await;
    let admin = app.admin_auth();
    let slow = json!({"sleep_ms": 3000}).to_string();
    for _ in 0..3 {
        let (status, _, _) = app
            .call(
                Method::POST,
                "/queue/fal-ai/echo",
                Some(&admin),
                Some(&slow),
            )
            .await;
        assert_eq!(status, 200);
    }
    // One runs (the app's concurrency is 1), two wait.
    let started = Instant::now();
    let s = loop {
        let s = scrape(&app, &python).await;
        let running = s.count(
            "fal_queue_depth",
            &[("app", "fal-ai/echo"), ("state", "running")],
        );
        if running == 1.0 {
            break s;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "nothing ran");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        s.get(
            "fal_queue_depth",
            &[("app", "fal-ai/echo"), ("state", "waiting")]
        ),
        Some(2.0)
    );
    let age = s.get(
        "fal_queue_oldest_waiting_age_seconds",
        &[("app", "fal-ai/echo")],
    );
    assert!(age.is_some_and(|a| (0.0..60.0).contains(&a)), "{age:?}");
    assert_eq!(s.type_of("fal_queue_depth"), Some("gauge"));
}
