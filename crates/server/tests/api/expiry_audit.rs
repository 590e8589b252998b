//! `key.expired_on_use`: a client still presenting an expired key's right
//! secret is recorded in the owner's audit log, with where it came from,
//! once an hour per key, on both forwarding paths.

use std::time::Duration;

use serde_json::{Value, json};

use crate::audit::events;
use crate::expiry::{HOUR, demo, key, run, wrong_secret};
use crate::helpers::TestApp;

/// The admin's `key.expired_on_use` events once there are `n` (the event
/// is written by a task of its own, after the refusal).
async fn expired_uses(app: &TestApp, n: usize) -> Vec<Value> {
    for _ in 0..100 {
        let got = events(app, &app.admin_auth(), "kind=key.expired_on_use").await;
        if got.len() >= n {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    events(app, &app.admin_auth(), "kind=key.expired_on_use").await
}

#[tokio::test]
async fn an_expired_keys_use_is_recorded_once_an_hour_with_where_it_came_from() {
    for hand_path in [true, false] {
        let (app, clock) = demo(hand_path).await;
        let (api, api_id) = key(&app, json!({"scope": "API", "expires_in": "1h"})).await;
        assert_eq!(run(&app, &api).await.0, 200);
        // A wrong secret of the same id is no use of the key: nothing.
        clock.advance_millis(HOUR);
        assert_eq!(run(&app, &wrong_secret(&api_id)).await.0, 401);
        for _ in 0..3 {
            assert_eq!(run(&app, &api).await.0, 401, "hand path {hand_path}");
        }
        let got = expired_uses(&app, 1).await;
        assert_eq!(got.len(), 1, "hand path {hand_path}: {got:?}");
        assert_eq!(got[0]["key_id"], json!(api_id));
        assert_eq!(got[0]["source"], json!("127.0.0.1"), "{}", got[0]);
        // A second event only an hour later.
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(expired_uses(&app, 2).await.len(), 1);
        clock.advance_millis(HOUR);
        assert_eq!(run(&app, &api).await.0, 401);
        assert_eq!(
            expired_uses(&app, 2).await.len(),
            2,
            "hand path {hand_path}"
        );
    }
}
