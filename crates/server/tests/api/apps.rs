//! Apps have owners (issue 12, finding 2): a user registers apps only under
//! their own namespace and changes or removes only their own; operators
//! manage every app; upstreams are shown only to owners and operators.

use fal_core::Scope;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app, spawn_app_with};

/// A global address: no DNS, and never connected to by these tests.
const PUBLIC: &str = "http://93.184.215.14:9";

async fn post_app(app: &TestApp, auth: &str, owner: &str, name: &str) -> (u16, Value) {
    let body = json!({"owner": owner, "name": name, "upstream": format!("{PUBLIC}/{owner}")});
    let (status, _, resp) = app
        .call(Method::POST, "/apps", Some(auth), Some(&body.to_string()))
        .await;
    (status, resp)
}

fn listed<'a>(apps: &'a Value, name: &str) -> &'a Value {
    apps["apps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["app"] == name)
        .unwrap_or_else(|| panic!("{name} not listed: {apps}"))
}

#[tokio::test]
async fn bob_cannot_take_over_alices_app() {
    let app = spawn_app().await;
    let alice = app.github_user_auth("Alice", 101, Scope::Admin).await;
    let bob = app.github_user_auth("bob", 102, Scope::Admin).await;
    assert_eq!(post_app(&app, &alice, "alice", "sdxl").await.0, 201);

    // The attack: remove Alice's app, then register it with his upstream.
    let (status, _, resp) = app
        .call(Method::DELETE, "/apps/alice/sdxl", Some(&bob), None)
        .await;
    assert_eq!(status, 403, "{resp}");
    assert_eq!(resp["code"], "not_yours");
    assert!(resp["detail"].as_str().unwrap().contains("another user"));
    let (status, resp) = post_app(&app, &bob, "alice", "sdxl").await;
    assert_eq!(status, 409, "a taken name is 409 whoever asks: {resp}");
    let (status, resp) = post_app(&app, &bob, "alice", "other").await;
    assert_eq!(status, 403, "{resp}");
    assert_eq!(resp["code"], "not_yours");
    assert!(
        resp["detail"].as_str().unwrap().contains("\"bob\""),
        "{resp}"
    );
    let (status, resp) = post_app(&app, &bob, "fal-ai", "sdxl").await;
    assert_eq!(status, 403, "{resp}");
    assert_eq!(post_app(&app, &bob, "bob", "sdxl").await.0, 201);

    // Listings show an upstream only to its owner.
    let (status, _, apps) = app.call(Method::GET, "/apps", Some(&bob), None).await;
    assert_eq!(status, 200);
    let alices = listed(&apps, "alice/sdxl");
    assert!(alices.get("upstream").is_none(), "{alices}");
    assert!(alices.get("created_by").is_none(), "{alices}");
    assert_eq!(alices["yours"], false);
    assert_eq!(
        listed(&apps, "bob/sdxl")["upstream"],
        format!("{PUBLIC}/bob")
    );
    let (_, _, shown) = app
        .call(Method::GET, "/apps/alice/sdxl", Some(&bob), None)
        .await;
    assert!(shown.get("upstream").is_none(), "{shown}");
    let (_, _, shown) = app
        .call(Method::GET, "/apps/alice/sdxl", Some(&alice), None)
        .await;
    assert_eq!(shown["upstream"], format!("{PUBLIC}/alice"));

    // Alice's app is untouched, and hers to remove.
    let (status, _, _) = app
        .call(Method::DELETE, "/apps/alice/sdxl", Some(&alice), None)
        .await;
    assert_eq!(status, 204);
    let (status, _, _) = app
        .call(Method::DELETE, "/apps/bob/sdxl", Some(&alice), None)
        .await;
    assert_eq!(status, 403);
    let (status, _, _) = app
        .call(Method::DELETE, "/apps/bob/nothing", Some(&alice), None)
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn operators_manage_every_app() {
    // Operators: the bootstrap admin user, and GitHub users named by id or login.
    let app = spawn_app_with(
        |c| c.operators = vec!["4242".into(), "Carol".into()],
        std::sync::Arc::new(fal_core::SystemClock),
    )
    .await;
    let alice = app.github_user_auth("alice", 101, Scope::Admin).await;
    let dave = app
        .github_user_auth("dave-renamed", 4242, Scope::Admin)
        .await;
    let carol = app.github_user_auth("carol", 103, Scope::Admin).await;
    // Named by login, but not a GitHub user: not an operator.
    let (id, secret) = app.user_key("carol", None, Scope::Admin).await;
    let fake_carol = format!("Key {id}:{secret}");
    for name in ["a", "b", "c", "d"] {
        assert_eq!(post_app(&app, &alice, "alice", name).await.0, 201);
    }
    let (_, _, apps) = app.call(Method::GET, "/apps", Some(&dave), None).await;
    assert_eq!(
        listed(&apps, "alice/a")["upstream"],
        format!("{PUBLIC}/alice")
    );
    assert_eq!(listed(&apps, "alice/a")["yours"], true);
    let (status, _, _) = app
        .call(Method::DELETE, "/apps/alice/b", Some(&fake_carol), None)
        .await;
    assert_eq!(status, 403);
    for (who, name) in [(&app.admin_auth(), "a"), (&dave, "b"), (&carol, "c")] {
        let (status, _, resp) = app
            .call(
                Method::DELETE,
                &format!("/apps/alice/{name}"),
                Some(who),
                None,
            )
            .await;
        assert_eq!(status, 204, "{name}: {resp}");
    }
    // Operators register under any namespace; a taken name is still 409.
    assert_eq!(post_app(&app, &dave, "fal-ai", "x").await.0, 201);
    assert_eq!(post_app(&app, &carol, "alice", "d").await.0, 409);
    let (status, _) = post_app(&app, &app.admin_auth(), "alice", "e").await;
    assert_eq!(status, 201);
}
