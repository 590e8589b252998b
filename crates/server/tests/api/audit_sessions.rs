//! The audit log's sign-in events (issue 16): dashboard sign-ins with a
//! key, refused ones, GitHub sign-ins on the web and the CLI, sign-outs;
//! and that no secret, token, cookie or hash appears in any event.

use fal_core::Scope;
use reqwest::Method;
use serde_json::{Value, json};
use sqlx::Row;

use crate::audit::{
    AGENT, cli_sign_in, cookie_value, dashboard_post, dashboard_sign_in, events, github_app, kinds,
    page_csrf, send,
};
use crate::fake_github::{FakeGithub, GITHUB_TOKEN};
use crate::helpers::spawn_app;

#[tokio::test]
async fn dashboard_sign_ins_failures_actions_and_sign_outs_are_recorded() {
    let app = spawn_app().await;
    let (other_id, other_secret) = app.other_user_key(Scope::Api).await;
    // A wrong secret for the admin key: in the admin's log.
    let (status, _) = dashboard_sign_in(&app, &app.admin_id, "fal_sk_wrong").await;
    assert_eq!(status, 401);
    // An API-scope key: in its owner's log, not the admin's.
    let (status, _) = dashboard_sign_in(&app, &other_id, &other_secret).await;
    assert_eq!(status, 403);
    let (status, token) = dashboard_sign_in(&app, &app.admin_id, &app.admin_secret).await;
    assert_eq!(status, 303);
    let token = token.unwrap();
    let generate = [("scope", "API"), ("alias", "from the dashboard")];
    assert_eq!(
        dashboard_post(&app, &token, "/dashboard/keys", &generate).await,
        303
    );
    assert_eq!(
        dashboard_post(&app, &token, "/dashboard/logout", &[]).await,
        303
    );

    let all = events(&app, &app.admin_auth(), "").await;
    let want = [
        "session.signed_out",
        "key.generated",
        "session.signed_in",
        "session.sign_in_failed",
    ];
    assert_eq!(kinds(&all), want);
    for e in &all {
        assert_eq!(
            (&e["source"], &e["user_agent"]),
            (&json!("127.0.0.1"), &json!(AGENT))
        );
    }
    let (out, generated, signed_in, failed) = (&all[0], &all[1], &all[2], &all[3]);
    assert_eq!(failed["key_id"], app.admin_id.as_str());
    assert_eq!(failed["actor"]["key_id"], Value::Null);
    assert_eq!(failed["detail"]["reason"], "wrong_key");
    assert_eq!(signed_in["actor"]["key_id"], app.admin_id.as_str());
    assert_eq!(
        signed_in["detail"],
        json!({"method": "key", "via": "dashboard"})
    );
    let session = signed_in["actor"]["session_id"].as_str().unwrap();
    assert_eq!(generated["actor"]["session_id"], session);
    assert_eq!(out["actor"]["session_id"], session);
    assert_eq!(generated["detail"]["alias"], "from the dashboard");

    // The API key's owner has the refusal in theirs, but reads it only
    // with an ADMIN credential: their API key gets 403.
    let other = format!("Key {other_id}:{other_secret}");
    let (status, body) = send(&app, Method::GET, "/audit", &other, None, None).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("insufficient_scope")),
        "{body}"
    );
    let store = app.store().await;
    let owner = fal_core::UserId::from_stored(
        sqlx::query("SELECT user_id FROM api_keys WHERE key_id = $1")
            .bind(&other_id)
            .fetch_one(store.pool())
            .await
            .unwrap()
            .get::<String, _>(0),
    );
    let theirs = fal_store::AuditStore::list_audit(&store, &owner, &Default::default(), 10, None)
        .await
        .unwrap();
    let refusal = &theirs.events.first().unwrap().event;
    assert_eq!(refusal.kind, fal_core::AuditKind::SessionSignInFailed);
    assert_eq!(refusal.detail["reason"], "api_scope");
    store.close().await;
}

#[tokio::test]
async fn github_sign_ins_on_the_web_and_the_cli_and_their_sign_outs_are_recorded() {
    let fake = FakeGithub::start();
    let (app, clock) = github_app(&fake).await;
    let web = crate::github_web::sign_in(&app, &fake, false).await;
    assert_eq!(web.status(), 303);
    let (access, refresh) = cli_sign_in(&app, &clock).await;
    let bearer = format!("Bearer {access}");
    let all = events(&app, &bearer, "").await;
    assert_eq!(kinds(&all), ["session.signed_in", "session.signed_in"]);
    assert_eq!(all[0]["detail"], json!({"method": "github", "via": "cli"}));
    assert_eq!(
        all[1]["detail"],
        json!({"method": "github", "via": "dashboard"})
    );
    assert_eq!(all[0]["source"], "127.0.0.1");
    assert_ne!(all[0]["actor"]["session_id"], all[1]["actor"]["session_id"]);
    let (_, me) = send(&app, Method::GET, "/users/current", &bearer, None, None).await;
    let me = fal_core::UserId::from_stored(me["user_id"].as_str().unwrap().to_owned());
    // The CLI's logout: one event, for the session it ends (read from
    // storage: the session's token works no more).
    let body = Some(json!({"refresh_token": refresh}));
    assert_eq!(
        send(&app, Method::POST, "/auth/logout", &bearer, body, None)
            .await
            .0,
        204
    );
    let store = app.store().await;
    let filter = fal_store::AuditFilter {
        kind: Some(fal_core::AuditKind::SessionSignedOut),
        key_id: None,
    };
    let out = fal_store::AuditStore::list_audit(&store, &me, &filter, 10, None)
        .await
        .unwrap();
    store.close().await;
    assert_eq!(out.events.len(), 1);
    let out = &out.events[0].event;
    assert_eq!(out.user_agent.as_ref().map(|u| u.as_str()), Some(AGENT));
    let cli_session = all[0]["actor"]["session_id"].as_str();
    assert_eq!(out.actor.session_id.as_deref(), cli_session);
}

#[tokio::test]
async fn no_secret_token_cookie_or_hash_appears_in_any_event() {
    let fake = FakeGithub::start();
    let (app, clock) = github_app(&fake).await;
    let admin = app.admin_auth();
    let mut secrets = vec![app.admin_secret.clone(), GITHUB_TOKEN.to_owned()];
    for scope in ["API", "ADMIN"] {
        let body = Some(json!({"scope": scope}));
        let (_, made) = send(&app, Method::POST, "/keys", &admin, body, None).await;
        secrets.push(made["key_secret"].as_str().unwrap().to_owned());
    }
    // A secret typed into the key id field is never kept.
    dashboard_sign_in(&app, &app.admin_secret, &app.admin_secret).await;
    dashboard_sign_in(&app, &app.admin_id, "fal_sk_typo").await;
    let (_, cookie) = dashboard_sign_in(&app, &app.admin_id, &app.admin_secret).await;
    let cookie = cookie.unwrap();
    secrets.push(page_csrf(&app, &cookie).await);
    dashboard_post(&app, &cookie, "/dashboard/keys", &[("scope", "API")]).await;
    dashboard_post(&app, &cookie, "/dashboard/logout", &[]).await;
    secrets.push(cookie);
    let web = crate::github_web::sign_in(&app, &fake, false).await;
    secrets.extend(cookie_value(&web, "fal_session"));
    let (access, refresh) = cli_sign_in(&app, &clock).await;
    let body = Some(json!({"refresh_token": refresh}));
    send(
        &app,
        Method::POST,
        "/auth/logout",
        &format!("Bearer {access}"),
        body,
        None,
    )
    .await;
    secrets.extend([access, refresh]);

    let store = app.store().await;
    let hashes = "SELECT secret_hash AS h FROM api_keys UNION ALL \
                  SELECT access_hash FROM sessions UNION ALL \
                  SELECT refresh_hash FROM sessions WHERE refresh_hash IS NOT NULL";
    for row in sqlx::query(hashes).fetch_all(store.pool()).await.unwrap() {
        secrets.push(row.get::<String, _>(0));
    }
    let pepper = std::fs::read_to_string(app.dir.path().join("pepper")).unwrap();
    secrets.push(pepper.trim().to_owned());
    let columns = [
        "kind",
        "user_id",
        "actor_user_id",
        "actor_key_id",
        "actor_session_id",
    ]
    .into_iter()
    .chain(["source", "user_agent", "key_id", "app", "detail"]);
    let mut stored = String::new();
    let rows = sqlx::query("SELECT * FROM audit_events")
        .fetch_all(store.pool())
        .await
        .unwrap();
    for row in &rows {
        for c in columns.clone() {
            stored.push_str(&row.get::<Option<String>, _>(c).unwrap_or_default());
            stored.push('\n');
        }
    }
    store.close().await;
    assert!(rows.len() >= 8, "{stored}");
    let listed = serde_json::to_string(&events(&app, &admin, "limit=100").await).unwrap();
    for s in secrets.iter().filter(|s| s.len() >= 16) {
        assert!(
            !stored.contains(s.as_str()),
            "a secret is stored in an event: {s}"
        );
        assert!(
            !listed.contains(s.as_str()),
            "a secret is listed in /audit: {s}"
        );
        // Nor the part after the id of a `Key id:secret` pair.
        let tail = &s[s.len() - 16..];
        assert!(!stored.contains(tail), "part of a secret is stored: {tail}");
    }
}

/// A dashboard page with the session cookie: status and HTML.
async fn page(app: &crate::helpers::TestApp, token: &str, path: &str) -> (u16, String) {
    let resp = crate::github_web::no_redirects()
        .get(format!("{}{path}", app.url))
        .header(reqwest::header::COOKIE, format!("fal_session={token}"))
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

#[tokio::test]
async fn the_activity_page_pages_filters_and_escapes() {
    let app = spawn_app().await;
    let marked = "<b>probe</b> & co";
    for _ in 0..51 {
        let made = app
            .http
            .post(format!("{}/keys", app.url))
            .header("authorization", app.admin_auth())
            .header(reqwest::header::USER_AGENT, marked)
            .json(&json!({"scope": "API"}))
            .send()
            .await
            .unwrap();
        assert_eq!(made.status(), 201);
    }
    let (_, token) = dashboard_sign_in(&app, &app.admin_id, &app.admin_secret).await;
    let token = token.unwrap();
    let (status, first) = page(&app, &token, "/dashboard/activity").await;
    assert_eq!(status, 200);
    assert!(
        first.contains("href=\"/dashboard/activity\""),
        "the nav links to it"
    );
    assert_eq!(first.matches("<tr class=\"event\"").count(), 50);
    assert!(first.contains("data-kind=\"session.signed_in\""));
    assert!(
        first.contains("&lt;b&gt;probe&lt;/b&gt; &amp; co"),
        "escaped"
    );
    assert!(!first.contains(marked));
    let at = first
        .find("/dashboard/activity?cursor=")
        .expect("a link to older events");
    let next = first[at..].split('"').next().unwrap().replace("&amp;", "&");
    let (status, second) = page(&app, &token, &next).await;
    assert_eq!(status, 200);
    assert_eq!(second.matches("<tr class=\"event\"").count(), 2);
    assert!(
        !second.contains("/dashboard/activity?cursor="),
        "no page after the last"
    );
    let (status, only) = page(&app, &token, "/dashboard/activity?kind=session.signed_in").await;
    assert_eq!(status, 200);
    assert_eq!(only.matches("<tr class=\"event\"").count(), 1);
    let (status, bad) = page(&app, &token, "/dashboard/activity?kind=%3Cscript%3E").await;
    assert_eq!(status, 422);
    assert!(!bad.contains("<script>"));
}
