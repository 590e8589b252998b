//! Key lifecycle on PostgreSQL, end to end through one server: expiry and
//! roll against the injected clock, the refused and accepted calls counted
//! and written back, and the audit log of it all. (The same points on
//! SQLite: `expiry`, `usage`, `audit`; two servers: `usage`,
//! `secret_scanning`.)

use std::sync::Arc;
use std::time::Duration;

use fal_core::{ManualClock, Timestamp};
use reqwest::Method;
use serde_json::{Value, json};

use crate::audit::{events, kinds};
use crate::expiry::{HOUR, key, roll, run, wrong_secret};
use crate::helpers::{TestApp, spawn_app_with};
use crate::postgres::Db;

/// The key's usage totals once they show `accepted` calls and `expired`
/// refusals (they are written back every 50 ms, so they arrive in steps).
async fn totals(app: &TestApp, id: &str, accepted: u64, expired: u64) -> Value {
    let mut last = Value::Null;
    for _ in 0..100 {
        let (status, _, body) = app
            .call(
                Method::GET,
                &format!("/keys/{id}/usage"),
                Some(&app.admin_auth()),
                None,
            )
            .await;
        assert_eq!(status, 200, "{body}");
        if body["totals"]["accepted"] == accepted && body["totals"]["expired"] == expired {
            return body["totals"].clone();
        }
        last = body;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("usage never reached {accepted} accepted, {expired} expired: {last}");
}

#[tokio::test]
async fn expiry_roll_usage_and_the_audit_log_on_postgresql() {
    let Some(db) = Db::new("lifecycle on postgresql").await else {
        return;
    };
    let clock = Arc::new(ManualClock::new(Timestamp(1_800_000_000_000)));
    let url = db.url.clone();
    let app = spawn_app_with(
        move |c| {
            c.demo = true;
            c.database_url = Some(url);
            c.throttle.failures = 0;
        },
        clock.clone(),
    )
    .await;
    let (old, old_id) = key(&app, json!({"scope": "API", "expires_in": "1h"})).await;
    assert_eq!(run(&app, &old).await.0, 200);
    // A malformed secret (bad checksum) is refused before any lookup and
    // counted nowhere; a well-formed one of another key is a wrong secret.
    assert_eq!(run(&app, &wrong_secret(&old_id)).await.0, 401);
    let (other, _) = key(&app, json!({"scope": "API"})).await;
    let other_secret = other.rsplit(':').next().unwrap();
    let wrong = format!("Key {old_id}:{other_secret}");
    assert_eq!(run(&app, &wrong).await.0, 401);

    // Rolled with ten minutes of grace: both pairs work, then the old stops.
    let (status, rolled) = roll(&app, &old_id, Some(r#"{"grace": "10m"}"#)).await;
    assert_eq!(status, 201, "{rolled}");
    let new = format!(
        "Key {}:{}",
        rolled["key_id"].as_str().unwrap(),
        rolled["key_secret"].as_str().unwrap()
    );
    assert_eq!(run(&app, &old).await.0, 200, "within its grace");
    assert_eq!(run(&app, &new).await.0, 200);
    clock.advance_millis(HOUR / 2);
    let (status, v) = run(&app, &old).await;
    assert_eq!((status, &v["code"]), (401, &json!("key_rolled")), "{v}");
    assert_eq!(
        run(&app, &new).await.0,
        200,
        "the new pair has its own hour"
    );
    clock.advance_millis(HOUR / 2);
    let (status, v) = run(&app, &new).await;
    assert_eq!((status, &v["code"]), (401, &json!("key_expired")), "{v}");

    // Counted, written back, read from PostgreSQL.
    let t = totals(&app, &old_id, 2, 1).await;
    assert_eq!(t["wrong_secret"], json!(1), "{t}");
    let new_id = rolled["key_id"].as_str().unwrap();
    totals(&app, new_id, 2, 1).await;

    // And recorded.
    let mut got = Vec::new();
    for _ in 0..100 {
        got = events(&app, &app.admin_auth(), "").await;
        if kinds(&got).contains(&"key.expired_on_use") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let kinds = kinds(&got);
    for want in ["key.generated", "key.rolled", "key.expired_on_use"] {
        assert!(kinds.contains(&want), "{want} in {kinds:?}");
    }
    drop(app);
    db.drop().await;
}
