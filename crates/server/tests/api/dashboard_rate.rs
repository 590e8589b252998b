//! A key's rate limit in the dashboard: set when generating, shown in the
//! table, changed and lifted with the row's form, refused with a message.

use reqwest::header::COOKIE;

use crate::dashboard::Browser;
use crate::helpers::spawn_app;

/// The table row of the key aliased `alias`, and its key id.
fn row<'a>(html: &'a str, alias: &str) -> (&'a str, String) {
    let row = html
        .split("<tr data-key-id=\"")
        .skip(1)
        .find(|r| r.contains(&format!("<td>{alias}</td>")))
        .unwrap_or_else(|| panic!("no row for {alias}: {html}"));
    let row = row.split("</tr>").next().unwrap();
    (row, row.split('"').next().unwrap().to_owned())
}

/// What the row shows as the key's limit.
fn shown_limit(row: &str) -> &str {
    row.split("<span class=\"rate-now\">")
        .nth(1)
        .unwrap()
        .split('<')
        .next()
        .unwrap()
}

#[tokio::test]
async fn a_limit_is_set_shown_changed_lifted_and_refused_with_a_message() {
    let app = spawn_app().await;
    let b = Browser::sign_in(&app).await;
    let page = b.get("/dashboard/keys").await.text().await.unwrap();
    assert!(
        page.contains("name=\"rate_limit\"") && page.contains("e.g. 100/s, 100/min, 100/h"),
        "{page}"
    );

    let made = b
        .post(
            "/dashboard/keys",
            &[
                ("scope", "API"),
                ("alias", "limited"),
                ("rate_limit", "100/s"),
            ],
        )
        .await;
    assert_eq!(made.status(), 303);
    assert_eq!(b.generate("free").await.status(), 303);
    let page = b.get("/dashboard/keys").await.text().await.unwrap();
    let (limited, id) = row(&page, "limited");
    assert_eq!(shown_limit(limited), "100/s", "{limited}");
    assert!(
        limited.contains("value=\"100/s\""),
        "the form holds it: {limited}"
    );
    let (free, _) = row(&page, "free");
    assert_eq!(shown_limit(free), "none", "{free}");

    // Changed with the row's form.
    let path = format!("/dashboard/keys/{id}/rate-limit");
    let changed = b.post(&path, &[("rate_limit", "5/min")]).await;
    assert_eq!(changed.status(), 200);
    let html = changed.text().await.unwrap();
    assert!(
        html.contains("is now limited to <code>5/min</code>"),
        "{html}"
    );
    assert_eq!(shown_limit(row(&html, "limited").0), "5/min");
    let listed = app.admin().list_all_keys().await.unwrap();
    let k = listed.iter().find(|k| k.key_id == id).unwrap();
    assert_eq!(k.rate_limit.as_deref(), Some("5/min"));

    // An invalid one is shown as the error, and changes nothing.
    let refused = b.post(&path, &[("rate_limit", "5/d")]).await;
    assert_eq!(refused.status(), 422);
    let html = refused.text().await.unwrap();
    assert!(
        html.contains("role=\"alert\">The rate limit was not changed: rate limit period &quot;d&quot; is unknown: use s, min or h"),
        "{html}"
    );
    assert_eq!(shown_limit(row(&html, "limited").0), "5/min");
    let refused = b
        .post(
            "/dashboard/keys",
            &[("scope", "API"), ("alias", "bad"), ("rate_limit", "fast")],
        )
        .await;
    assert_eq!(refused.status(), 422);
    let html = refused.text().await.unwrap();
    assert!(
        html.contains("The key was not generated: rate limit &quot;fast&quot; is not of the form"),
        "{html}"
    );
    assert!(!html.contains("<td>bad</td>"), "not generated: {html}");

    // Empty lifts it.
    let lifted = b.post(&path, &[("rate_limit", "")]).await;
    assert_eq!(lifted.status(), 200);
    let html = lifted.text().await.unwrap();
    assert!(html.contains("has no rate limit now"), "{html}");
    assert_eq!(shown_limit(row(&html, "limited").0), "none");
    let listed = app.admin().list_all_keys().await.unwrap();
    assert!(listed.iter().all(|k| k.rate_limit.is_none()), "{listed:?}");
}

#[tokio::test]
async fn the_rate_limit_form_needs_the_csrf_token_and_the_users_own_key() {
    let app = spawn_app().await;
    let b = Browser::sign_in(&app).await;
    let key = app.admin().create_key("API", "k").await.unwrap();
    let path = format!("/dashboard/keys/{}/rate-limit", key.key_id);
    let forged = b
        .http
        .post(format!("{}{path}", b.url))
        .header(COOKIE, &b.cookie)
        .form(&[("csrf", "wrong"), ("rate_limit", "1/s")])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    let (other, _) = app.other_user_key(fal_core::Scope::Admin).await;
    let theirs = b
        .post(
            &format!("/dashboard/keys/{other}/rate-limit"),
            &[("rate_limit", "1/s")],
        )
        .await;
    assert_eq!(theirs.status(), 404);
    assert!(theirs.text().await.unwrap().contains("No such key."));
    let keys = app.admin().list_all_keys().await.unwrap();
    assert!(keys.iter().all(|k| k.rate_limit.is_none()), "{keys:?}");
}
