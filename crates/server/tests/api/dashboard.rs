//! The dashboard's forms as a browser uses them: the one-time secret link,
//! aliases that look like placeholders or hide characters.

use reqwest::header::{COOKIE, LOCATION};

use crate::github_web::no_redirects;
use crate::helpers::{TestApp, spawn_app};

fn hidden_csrf(html: &str) -> String {
    let at =
        html.find("name=\"csrf\" value=\"").expect("a CSRF field") + "name=\"csrf\" value=\"".len();
    html[at..].split('"').next().unwrap().to_owned()
}

/// A signed-in dashboard: its session cookie.
pub struct Browser {
    pub cookie: String,
    pub http: reqwest::Client,
    pub url: String,
}

impl Browser {
    /// Signs in with the bootstrap ADMIN key through the form.
    pub async fn sign_in(app: &TestApp) -> Browser {
        let token = crate::sessions::dashboard_sign_in(app, &app.admin_id, &app.admin_secret).await;
        Browser {
            cookie: format!("fal_session={token}"),
            http: no_redirects(),
            url: app.url.clone(),
        }
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.url))
            .header(COOKIE, &self.cookie)
            .send()
            .await
            .unwrap()
    }

    /// Posts the generate form; returns the response (303 to the one-time
    /// link when it worked).
    pub async fn generate(&self, alias: &str) -> reqwest::Response {
        self.post("/dashboard/keys", &[("scope", "API"), ("alias", alias)])
            .await
    }

    /// Posts a form of the keys page with the page's CSRF token.
    pub async fn post(&self, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        let csrf = hidden_csrf(&self.get("/dashboard/keys").await.text().await.unwrap());
        let mut form = vec![("csrf", csrf.as_str())];
        form.extend_from_slice(fields);
        self.http
            .post(format!("{}{path}", self.url))
            .header(COOKIE, &self.cookie)
            .form(&form)
            .send()
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn a_head_request_does_not_use_up_the_one_time_secret_link() {
    let app = spawn_app().await;
    let b = Browser::sign_in(&app).await;
    let made = b.generate("laptop").await;
    assert_eq!(made.status(), 303);
    let link = made.headers()[LOCATION].to_str().unwrap().to_owned();
    assert!(link.starts_with("/dashboard/keys/created/"), "{link}");
    let head = b
        .http
        .head(format!("{}{link}", b.url))
        .header(COOKIE, &b.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    let shown = b.get(&link).await.text().await.unwrap();
    assert!(
        shown.contains("FAL_KEY_SECRET=\"fal_sk_"),
        "the secret after a HEAD: {shown}"
    );
    let again = b.get(&link).await.text().await.unwrap();
    assert!(!again.contains("fal_sk_"), "shown twice");
}

#[tokio::test]
async fn an_alias_is_shown_as_typed_never_filled_in() {
    let app = spawn_app().await;
    let b = Browser::sign_in(&app).await;
    let alias = "{{csrf}} {{{nav}}} {{key_id}}";
    assert_eq!(b.generate(alias).await.status(), 303);
    let keys = b.get("/dashboard/keys").await.text().await.unwrap();
    let csrf = hidden_csrf(&keys);
    assert!(keys.contains(alias), "the alias as typed: {keys}");
    let key_id = keys
        .split("data-key-id=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    let confirm = b
        .get(&format!("/dashboard/keys/{key_id}/revoke"))
        .await
        .text()
        .await
        .unwrap();
    assert!(confirm.contains(&format!("({alias}, API)")), "{confirm}");
    assert_eq!(
        confirm.matches(&csrf).count(),
        2,
        "the CSRF token only in the two forms (sign-out, revoke): {confirm}"
    );
}

#[tokio::test]
async fn aliases_with_bidi_or_zero_width_characters_are_refused_in_the_dashboard() {
    let app = spawn_app().await;
    let b = Browser::sign_in(&app).await;
    for (alias, code) in [("evil\u{202E}gpj.exe", "U+202E"), ("a\u{200B}b", "U+200B")] {
        let resp = b.generate(alias).await;
        assert_eq!(resp.status(), 422, "{alias:?}");
        let html = resp.text().await.unwrap();
        assert!(html.contains(code) && html.contains("remove it"), "{html}");
    }
    let keys = b.get("/dashboard/keys").await.text().await.unwrap();
    assert!(
        keys.contains("No keys yet") || !keys.contains("evil"),
        "{keys}"
    );
}
