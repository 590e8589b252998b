//! The device flow's polls: throttled per device code before they reach
//! GitHub, and GitHub's answers mapped to clear 4xx.

use std::sync::Arc;

use fal_core::{ManualClock, Timestamp};
use reqwest::Method;
use serde_json::Value;

use crate::fake_github::{DEVICE_CODE, FakeGithub};
use crate::github_web::app_with_github_and;
use crate::helpers::TestApp;

async fn app(fake: &FakeGithub) -> (TestApp, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(Timestamp(1_800_000_000_000)));
    let app = app_with_github_and(fake, |_| {}, clock.clone()).await;
    (app, clock)
}

async fn poll(app: &TestApp, code: &str) -> (u16, Value) {
    let body = serde_json::json!({ "device_code": code }).to_string();
    let (status, _, json) = app
        .call(Method::POST, "/auth/device/token", None, Some(&body))
        .await;
    (status, json)
}

async fn start(app: &TestApp) -> Value {
    let (status, _, json) = app.call(Method::POST, "/auth/device", None, None).await;
    assert_eq!(status, 200, "{json}");
    json
}

#[tokio::test]
async fn polls_sooner_than_the_interval_never_reach_github() {
    let fake = FakeGithub::start();
    let (app, clock) = app(&fake).await;
    fake.script(&["pending"; 10]);
    let started = start(&app).await;
    assert_eq!(started["interval"], 1);

    // At once: too soon; GitHub is not asked, and the interval grows by 5 s.
    let (status, body) = poll(&app, DEVICE_CODE).await;
    assert_eq!(
        (status, &body["status"]),
        (202, &"slow_down".into()),
        "{body}"
    );
    assert_eq!(body["interval"], 6);
    assert_eq!(fake.polls().len(), 0);

    clock.advance_millis(6_000);
    let (status, body) = poll(&app, DEVICE_CODE).await;
    assert_eq!(
        (status, &body["status"]),
        (202, &"authorization_pending".into())
    );
    assert_eq!(fake.polls().len(), 1);

    // A burst of 20 at the same instant: none reaches GitHub.
    let burst: Vec<_> = (0..20).map(|_| poll(&app, DEVICE_CODE)).collect();
    for (status, body) in futures_util::future::join_all(burst).await {
        assert_eq!(status, 202);
        assert_eq!(body["status"], "slow_down", "{body}");
    }
    assert_eq!(fake.polls().len(), 1, "the burst reached GitHub");

    // After the (now long) interval, the next poll goes through.
    clock.advance_millis(106_000);
    let (status, body) = poll(&app, DEVICE_CODE).await;
    assert_eq!(
        (status, &body["status"]),
        (202, &"authorization_pending".into())
    );
    assert_eq!(fake.polls().len(), 2);
}

#[tokio::test]
async fn an_unknown_device_code_is_a_400_that_says_so_once_asked() {
    let fake = FakeGithub::start();
    let (app, clock) = app(&fake).await;
    let (status, body) = poll(&app, "made-up").await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["code"], "unknown_device_code");
    assert!(
        body["detail"].as_str().unwrap().contains("fal auth login"),
        "{body}"
    );
    assert_eq!(fake.polls().len(), 1);
    // The answer is remembered: asking again, even much later, costs GitHub nothing.
    clock.advance_millis(60_000);
    let (status, body) = poll(&app, "made-up").await;
    assert_eq!(
        (status, &body["code"]),
        (400, &"unknown_device_code".into())
    );
    assert_eq!(fake.polls().len(), 1);
}

#[tokio::test]
async fn expired_denied_and_used_codes_are_clear_4xx_and_final() {
    let fake = FakeGithub::start();
    let (app, clock) = app(&fake).await;
    for (step, want, code) in [
        ("expired", 410, "expired_token"),
        ("denied", 403, "access_denied"),
    ] {
        fake.script(&[step]);
        start(&app).await;
        clock.advance_millis(1_000);
        let before = fake.polls().len();
        let (status, body) = poll(&app, DEVICE_CODE).await;
        assert_eq!((status, &body["code"]), (want, &code.into()), "{body}");
        clock.advance_millis(10_000);
        let (status, body) = poll(&app, DEVICE_CODE).await;
        assert_eq!((status, &body["code"]), (want, &code.into()), "{body}");
        assert_eq!(fake.polls().len(), before + 1, "{step}: asked GitHub again");
    }
    // Tokens are handed out once; the code is used up after that.
    fake.script(&["ok"]);
    start(&app).await;
    clock.advance_millis(1_000);
    let (status, body) = poll(&app, DEVICE_CODE).await;
    assert_eq!(status, 200, "{body}");
    clock.advance_millis(10_000);
    let (status, body) = poll(&app, DEVICE_CODE).await;
    assert_eq!(
        (status, &body["code"]),
        (400, &"unknown_device_code".into())
    );
    // Past its expires_in (900 s), a code started here is expired without asking.
    start(&app).await;
    let before = fake.polls().len();
    clock.advance_millis(900_000);
    let (status, body) = poll(&app, DEVICE_CODE).await;
    assert_eq!((status, &body["code"]), (410, &"expired_token".into()));
    assert_eq!(fake.polls().len(), before);
}
